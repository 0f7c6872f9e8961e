//! The fleet on Postgres.

use crate::store::postgres::PgStore;

fleet_store_impl!(PgStore, sqlx::Postgres);

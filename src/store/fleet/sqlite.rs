//! The fleet on SQLite.

use crate::store::sqlite::SqliteStore;

fleet_store_impl!(SqliteStore, sqlx::Sqlite);

//! The fleet on Postgres.

use crate::store::postgres::PgStore;

impl PgStore {
    async fn fleet_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool().begin().await
    }
}

fleet_store_impl!(PgStore, sqlx::Postgres);

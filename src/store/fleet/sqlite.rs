//! The fleet on SQLite.

use crate::store::sqlite::SqliteStore;

impl SqliteStore {
    /// Writes take the database's write lock up front: a deferred
    /// transaction that reads first could not upgrade while another
    /// connection writes (SQLite would fail it instead of waiting).
    async fn fleet_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool().begin_with("BEGIN IMMEDIATE").await
    }
}

fleet_store_impl!(SqliteStore, sqlx::Sqlite);

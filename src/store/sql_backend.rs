//! The seam between the SQL shared by both backends and what only one of
//! them does.
//!
//! Both sqlx drivers accept the same `$n` placeholders and the same Rust
//! types for the fleet's columns, so the fleet's queries (`fleet/sql/`) are
//! written once and compiled once per backend: `sqlite.rs` and
//! `postgres.rs` each include that folder as a module, after naming their
//! store `This`. Everything the shared code asks of a backend goes through
//! [`SqlBackend`], so the compiler checks the contract.

use super::StoreError;
use sqlx::{Pool, Transaction};
use std::future::Future;

/// What the shared SQL needs from a backend.
pub(crate) trait SqlBackend {
    /// The sqlx driver.
    type Db: sqlx::Database;

    /// The query pool.
    fn pool(&self) -> &Pool<Self::Db>;

    /// The transaction of a write (a key's rotation or revocation, a fleet
    /// change). SQLite takes the write lock up front (see `sqlite.rs`);
    /// Postgres begins a plain transaction.
    fn write_tx(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, StoreError>> + Send;
}

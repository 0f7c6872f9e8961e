//! The seam between the SQL shared by both backends and what only one of
//! them does.
//!
//! Both sqlx drivers accept the same `$n` placeholders and the same Rust
//! types for almost every column, so the queries (`keys_sql.rs`,
//! `places_sql.rs`, `fleet/sql/`) are written once and compiled once per backend:
//! `sqlite.rs` and `postgres.rs` (and `fleet/sqlite.rs`, `fleet/postgres.rs`)
//! include them as modules, after naming their store `This`. Everything the
//! shared code asks of a backend goes through [`SqlBackend`], so the
//! compiler checks the contract.

use super::StoreError;
use super::watch::{KeyChangeSink, LocalChanges};
use chrono::{DateTime, Utc};
use sqlx::{Pool, Transaction};
use std::future::Future;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type TxResult<DB> = Result<Transaction<'static, DB>, StoreError>;

/// What the shared SQL needs from a backend.
pub(crate) trait SqlBackend {
    /// The sqlx driver.
    type Db: sqlx::Database;
    /// A key id as this backend binds it (Postgres keeps the predecessor's
    /// `SERIAL`, an INT4).
    type KeyId;

    /// The `api_keys` columns read into a `KeyRecord`: Postgres reads its
    /// INT4 id as `BIGINT` and its UTC-holding `TIMESTAMP` columns
    /// `AT TIME ZONE 'UTC'`.
    const KEY_COLUMNS: &'static str;
    /// The `api_key_events` columns read into a `KeyEvent`.
    const EVENT_COLUMNS: &'static str;
    /// What a new key's `created_at` is written as, from `$6` (a UTC instant).
    const CREATED_AT_VALUE: &'static str;
    /// How a marker is sent on the key change channel (see
    /// `KeyStore::send_change_marker`): the statement, or `None` where there
    /// is no channel.
    const SEND_MARKER: Option<&'static str>;

    /// The query pool.
    fn pool(&self) -> &Pool<Self::Db>;

    /// Runs this backend's embedded migrations.
    fn run_migrations(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The transaction of a write (a key's rotation or revocation, a fleet
    /// change).
    fn write_tx(&self) -> impl Future<Output = TxResult<Self::Db>> + Send;

    /// The transaction that stores the first key: no other process may see
    /// the table empty until it commits.
    fn first_key_tx(&self) -> impl Future<Output = TxResult<Self::Db>> + Send;

    /// The `last_used_at` flush of a non-empty batch.
    fn write_key_use(
        &self,
        uses: &[(i64, DateTime<Utc>)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A key id as the backend binds it; `NotFound` where no such key can
    /// exist.
    fn key_id_param(key_id: i64) -> Result<Self::KeyId, StoreError>;

    /// The key changes made through this process.
    fn local_changes(&self) -> &LocalChanges;

    /// Starts the watch for key changes made by other processes.
    fn watch_changes(&self, sink: KeyChangeSink, shutdown: CancellationToken) -> JoinHandle<()>;
}

//! The embedded backend: one SQLite file, created on first start.
//!
//! The key store's SQL is shared with Postgres (`keys_sql.rs`); this file
//! holds what only SQLite does.

use super::sql_backend::SqlBackend;
use super::watch::{self, KeyChangeSink, LocalChanges};
use super::{PoolOptions, StoreError};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::str::FromStr;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
    local: LocalChanges,
}

impl super::PoolStats for SqliteStore {
    fn pool_connections(&self) -> super::PoolConnections {
        super::PoolConnections::of(self.pool.size(), self.pool.num_idle())
    }
}

impl SqliteStore {
    pub async fn connect(url: &str, pool: &PoolOptions) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Config("the SQLite database URL cannot be parsed".into()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Waiting for another writer's lock ends a little before the
            // client's deadline, so SQLite gives up itself (the statement
            // never runs) rather than leaving it to run after the caller
            // was told it failed.
            .busy_timeout(pool.query_timeout * 4 / 5);
        let pool = SqlitePoolOptions::new()
            .max_connections(pool.max_connections.max(1))
            .acquire_timeout(pool.acquire_timeout)
            // A connection to a local file does not go stale: skip sqlx's
            // ping (a round trip to the connection's thread) per checkout.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            local: LocalChanges::default(),
        })
    }
}

impl SqlBackend for SqliteStore {
    type Db = Sqlite;
    type KeyId = i64;

    const KEY_COLUMNS: &'static str = "key_id, user_id, email, name, api_key_prefix, scopes, \
         created_at, last_used_at, expires_at, revoked_at, is_active, created_by, \
         rate_limit_per_minute, monthly_quota, allowed_ips";
    const EVENT_COLUMNS: &'static str = "key_id, user_id, event, actor, detail, at";
    const CREATED_AT_VALUE: &'static str = "$6";
    const SEND_MARKER: Option<&'static str> = None;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The transaction of a write (a key's rotation or revocation, a fleet
    /// change): it takes the database's write lock up front, since a
    /// deferred transaction that reads first could not upgrade while
    /// another connection writes (SQLite would fail it instead of waiting).
    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn run_migrations(&self) -> Result<(), StoreError> {
        Ok(MIGRATOR.run(&self.pool).await?)
    }

    /// BEGIN IMMEDIATE takes the write lock first, so two processes cannot
    /// both see an empty table.
    async fn first_key_tx(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.write_tx().await
    }

    async fn write_key_use(&self, uses: &[(i64, DateTime<Utc>)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (key_id, at) in uses {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $2 \
                 WHERE key_id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
            )
            .bind(key_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// SQLite's `INTEGER` key id holds any `i64`.
    fn key_id_param(key_id: i64) -> Result<i64, StoreError> {
        Ok(key_id)
    }

    fn local_changes(&self) -> &LocalChanges {
        &self.local
    }

    fn watch_changes(&self, sink: KeyChangeSink, shutdown: CancellationToken) -> JoinHandle<()> {
        watch::watch_sqlite(self.pool.clone(), sink, shutdown)
    }
}

/// The store the shared key SQL is compiled for (see `sql_backend.rs`).
type This = SqliteStore;

// Included by both backends on purpose: one text, two sets of concrete types.
#[allow(clippy::duplicate_mod)]
#[path = "keys_sql.rs"]
mod keys_sql;

// Included by both backends on purpose: one text, two sets of concrete types.
#[allow(clippy::duplicate_mod)]
#[path = "places_sql.rs"]
mod places_sql;

// Included by both backends on purpose: one text, two sets of concrete types.
#[allow(clippy::duplicate_mod)]
#[path = "console_sql.rs"]
mod console_sql;

// Included by both backends on purpose: one text, two sets of concrete types.
#[allow(clippy::duplicate_mod)]
#[path = "usage_sql.rs"]
mod usage_sql;

// Included by both backends on purpose: one text, two sets of concrete types.
#[allow(clippy::duplicate_mod)]
#[path = "limit_counts_sql.rs"]
mod limit_counts_sql;

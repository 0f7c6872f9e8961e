//! Storage: one interface, two backends chosen by the database URL's scheme.
//!
//! `sqlite://PATH` (the default, an embedded file created on first start) and
//! `postgres://…` (production; replicas share it). Each backend has its own
//! embedded migrations under `migrations/`.

pub mod console;
mod deadline;
mod error;
pub mod fleet;
mod keys;
pub mod limit_counts;
pub mod places;
pub mod postgres;
mod sql_backend;
pub mod sqlite;
pub mod usage;
pub mod watch;

pub use console::ConsoleStore;
pub use error::StoreError;
pub use fleet::FleetStore;
pub use keys::{
    Identity, KeyEvent, KeyHashRow, KeyRecord, KeyState, KeyStore, LimitsSet, NewKey, RevokeTarget,
};
pub use limit_counts::{LimitCount, LimitCountStore};
pub use places::PlaceStore;
pub use usage::UsageStore;
pub use watch::{KeyChange, KeyChangeSink};

use std::sync::Arc;
use std::time::Duration;

/// Everything the server keeps in a database.
pub trait Store:
    KeyStore + FleetStore + ConsoleStore + PlaceStore + UsageStore + LimitCountStore + PoolStats
{
}

impl<T> Store for T where
    T: KeyStore + FleetStore + ConsoleStore + PlaceStore + UsageStore + LimitCountStore + PoolStats
{
}

/// A pool's connections at one moment (for the metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolConnections {
    pub idle: u32,
    pub in_use: u32,
}

impl PoolConnections {
    /// From sqlx's figures: `size` open connections, `idle` of them idle.
    pub fn of(size: u32, idle: usize) -> Self {
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        Self {
            idle,
            in_use: size - idle,
        }
    }
}

/// What the database pool holds now.
pub trait PoolStats {
    fn pool_connections(&self) -> PoolConnections;
}

/// A shared handle to the store.
pub type Db = Arc<dyn Store>;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Reads the scheme; anything but SQLite or Postgres is an error, never
    /// a silent new file.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::Config(format!(
                "unsupported database URL scheme '{}': use sqlite://PATH or postgres://USER@HOST/DB",
                scheme.chars().take(32).collect::<String>()
            ))),
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Postgres: a pooled connection idle this long is pinged before it
    /// serves a query; busier ones are not (see `postgres.rs`).
    pub ping_when_idle_for: Duration,
    /// The longest any store call may take, waiting for a connection
    /// included; past it the call fails as [`StoreError::TimedOut`]. It is
    /// enforced by the client, so it holds even when the network drops
    /// packets; Postgres also cancels a statement itself a little earlier
    /// (`statement_timeout`), which keeps the connection usable.
    pub query_timeout: Duration,
    /// The longest the health check's ping may take.
    pub ping_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(3),
            ping_when_idle_for: Duration::from_secs(5),
            query_timeout: Duration::from_secs(5),
            ping_timeout: Duration::from_millis(1500),
        }
    }
}

/// Opens the database the URL names (without running migrations). Every
/// call on it has a deadline (see [`PoolOptions::query_timeout`]).
pub async fn connect(url: &str, pool: &PoolOptions) -> Result<Db, StoreError> {
    let abandoned = deadline::Abandoned::default();
    let store: Db = match Backend::from_url(url)? {
        Backend::Sqlite => Arc::new(sqlite::SqliteStore::connect(url, pool).await?),
        Backend::Postgres => {
            Arc::new(postgres::PgStore::connect(url, pool, abandoned.clone()).await?)
        }
    };
    Ok(Arc::new(deadline::Deadlines::new(store, pool, abandoned)))
}

/// Opens the database and brings its schema up to date.
pub async fn open(url: &str, pool: &PoolOptions) -> Result<Db, StoreError> {
    let db = connect(url, pool).await?;
    db.migrate().await?;
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_picks_the_backend() {
        assert_eq!(
            Backend::from_url("sqlite://fleetmind.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        for bad in ["mysql://x", "fleetmind.db", "", "file:foo"] {
            let err = Backend::from_url(bad).unwrap_err().to_string();
            assert!(err.contains("unsupported database URL scheme"), "{err}");
        }
    }
}

//! The one error type of the storage boundary.

use crate::fleet::FleetError;

/// What can go wrong in the store. Messages never carry SQL, row data or
/// driver text; the source error is kept for the server's own logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or did not answer in time.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The call passed its deadline (the database is slow, or the network
    /// to it drops packets); whatever it was doing was abandoned.
    #[error("the database did not answer in time")]
    TimedOut,
    /// A row with the same unique value exists.
    #[error("{0}")]
    Conflict(String),
    /// The row does not exist (or belongs to another tenant).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The fleet's rules refused the request (a field out of range, a
    /// state machine); the message says why.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// A setting is wrong (for example the database URL).
    #[error("{0}")]
    Config(String),
    /// Anything else the database said; details go to the log only.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the failure says nothing about the request itself (the store is
    /// down or broken), so that callers answer 503 rather than 401/404.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::TimedOut
                | StoreError::Database(_)
                | StoreError::Migrate(_)
        )
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(err),
            sqlx::Error::Database(ref db) if gave_up_waiting(db.as_ref()) => StoreError::TimedOut,
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                StoreError::Conflict("a row with the same unique value already exists".into())
            }
            other => StoreError::Database(other),
        }
    }
}

/// Postgres cancelled the statement at `statement_timeout`, or SQLite
/// waited its `busy_timeout` for another writer's lock (SQLITE_BUSY and its
/// extended codes): the database's own side of the deadline.
fn gave_up_waiting(err: &dyn sqlx::error::DatabaseError) -> bool {
    let code = err.code();
    if err
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        return code.as_deref() == Some("57014");
    }
    err.try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .is_some()
        && code
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| c & 0xff == 5)
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(err)
    }
}

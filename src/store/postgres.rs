//! The production backend: Postgres, shared by every replica.
//!
//! The predecessor's `api_keys` columns keep their types (`key_id SERIAL`,
//! `created_at`/`last_used_at` as `TIMESTAMP` holding UTC); sessions run
//! with `timezone=UTC` so that both servers read and write the same instants.
//! The key store's SQL is shared with SQLite (`keys_sql.rs`); this file holds
//! what only Postgres does.

use super::deadline::Abandoned;
use super::sql_backend::SqlBackend;
use super::watch::{self, KeyChangeSink, ListenTarget, LocalChanges};
use super::{PoolOptions, StoreError};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    /// Where the `LISTEN` connection goes, apart from the query pool.
    listen: ListenTarget,
    local: LocalChanges,
}

impl super::PoolStats for PgStore {
    fn pool_connections(&self) -> super::PoolConnections {
        super::PoolConnections::of(self.pool.size(), self.pool.num_idle())
    }
}

impl PgStore {
    /// `abandoned` tells when a call on this store was last given up
    /// (see `after_release` below).
    pub async fn connect(
        url: &str,
        pool: &PoolOptions,
        abandoned: Abandoned,
    ) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::Config("the Postgres database URL cannot be parsed".into()))?
            .options(session_settings(pool))
            .application_name("fleetmind");
        let listen = ListenTarget {
            options: options.clone(),
            connect_timeout: pool.acquire_timeout,
        };
        let ping_when_idle_for = pool.ping_when_idle_for;
        let ping_timeout = pool.ping_timeout;
        let pool = PgPoolOptions::new()
            .max_connections(pool.max_connections.max(1))
            .acquire_timeout(pool.acquire_timeout)
            // sqlx pings every connection it hands out: a round trip per
            // query. A connection in steady use has just proved itself (sqlx
            // also pings it when it comes back); only one that sat idle is
            // tested again, since the server or the network may have
            // dropped it meanwhile.
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= ping_when_idle_for {
                        ping_within(conn, ping_timeout).await?;
                    }
                    Ok(true)
                })
            })
            // A connection comes back here also when its query was abandoned
            // (deadline passed, caller gone), half-read. sqlx then pings it
            // with no time limit, which over a network that drops packets
            // never ends and keeps the connection's place in the pool
            // forever. Pinged here first, within a limit, it either proves
            // itself or is closed (an error closes it without a goodbye), so
            // the pool opens a fresh one once the network is back. Only
            // while calls are being abandoned: otherwise this would be a
            // second round trip per query (sqlx's own ping follows).
            .after_release(move |conn, _meta| {
                let abandoned = abandoned.clone();
                Box::pin(async move {
                    if abandoned.within(ABANDONED_LATELY) {
                        ping_within(conn, ping_timeout).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            listen,
            local: LocalChanges::default(),
        })
    }
}

impl SqlBackend for PgStore {
    type Db = Postgres;
    type KeyId = i32;

    const KEY_COLUMNS: &'static str = "key_id::BIGINT AS key_id, user_id, email, name, \
         api_key_prefix, scopes, created_at AT TIME ZONE 'UTC' AS created_at, \
         last_used_at AT TIME ZONE 'UTC' AS last_used_at, \
         expires_at, revoked_at, is_active, created_by, \
         rate_limit_per_minute, monthly_quota, allowed_ips";
    const EVENT_COLUMNS: &'static str =
        "key_id::BIGINT AS key_id, user_id, event, actor, detail, at";
    const CREATED_AT_VALUE: &'static str = "$6 AT TIME ZONE 'UTC'";
    // The channel of `watch::PG_CHANNEL`, which the key triggers notify too.
    const SEND_MARKER: Option<&'static str> = Some("SELECT pg_notify('fleetmind_api_keys', $1)");

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The transaction of a write (a key's rotation or revocation, a fleet
    /// change): a plain transaction.
    async fn write_tx(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Migrations run without `statement_timeout` (an index on a big table
    /// or another replica's migration lock may rightly take longer), on a
    /// connection that is closed afterwards rather than returned with that
    /// setting.
    async fn run_migrations(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut *conn)
            .await?;
        let ran = MIGRATOR.run_direct(&mut *conn).await;
        let _ = conn.close().await;
        Ok(ran?)
    }

    /// The lock serialises replicas that start at the same moment, so two
    /// processes cannot both see an empty table.
    async fn first_key_tx(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// One statement for the whole batch.
    async fn write_key_use(&self, uses: &[(i64, DateTime<Utc>)]) -> Result<(), StoreError> {
        // An id no key can have is skipped.
        let (ids, ats): (Vec<i32>, Vec<DateTime<Utc>>) = uses
            .iter()
            .filter_map(|(id, at)| Some((Self::key_id_param(*id).ok()?, *at)))
            .unzip();
        sqlx::query(
            "UPDATE api_keys AS k SET last_used_at = u.at AT TIME ZONE 'UTC' \
             FROM UNNEST($1::INT4[], $2::TIMESTAMPTZ[]) AS u(key_id, at) \
             WHERE k.key_id = u.key_id \
               AND (k.last_used_at IS NULL OR k.last_used_at < u.at AT TIME ZONE 'UTC')",
        )
        .bind(&ids)
        .bind(&ats)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `key_id` is the predecessor's `SERIAL` (INT4); an id outside its range
    /// cannot exist.
    fn key_id_param(key_id: i64) -> Result<i32, StoreError> {
        i32::try_from(key_id).map_err(|_| StoreError::NotFound("key"))
    }

    fn local_changes(&self) -> &LocalChanges {
        &self.local
    }

    fn watch_changes(&self, sink: KeyChangeSink, shutdown: CancellationToken) -> JoinHandle<()> {
        watch::watch_postgres(self.listen.clone(), sink, shutdown)
    }
}

/// How long after a call was abandoned released connections are pinged
/// within a limit: the abandoned connection comes back at once, this is
/// room for a loaded machine.
const ABANDONED_LATELY: Duration = Duration::from_secs(5);

/// The session settings of every connection (sent at connect, so a pooled
/// connection cannot lose them):
/// - `timezone=UTC`, so both servers read and write the same instants;
/// - `statement_timeout` a little below the client's deadline, so a merely
///   slow statement is cancelled by the server and its connection stays
///   usable (the client's deadline is left for a network that does not
///   answer at all);
/// - `idle_in_transaction_session_timeout`, so a transaction whose client
///   gave up (deadline passed, network gone) does not hold its locks;
/// - TCP keepalive probes from the server, so it notices a client that
///   vanished. sqlx 0.8 has no setting for keepalive on its own (client)
///   socket; the client side is covered by the deadline instead.
fn session_settings(pool: &PoolOptions) -> [(&'static str, String); 6] {
    let query_ms = pool.query_timeout.as_millis().max(1);
    [
        ("timezone", "UTC".into()),
        ("statement_timeout", (query_ms * 4 / 5).max(1).to_string()),
        (
            "idle_in_transaction_session_timeout",
            (query_ms * 2).to_string(),
        ),
        ("tcp_keepalives_idle", "30".into()),
        ("tcp_keepalives_interval", "10".into()),
        ("tcp_keepalives_count", "3".into()),
    ]
}

/// A round trip that must end within `limit`; an error otherwise, which
/// makes the pool close the connection.
async fn ping_within(conn: &mut PgConnection, limit: Duration) -> Result<(), sqlx::Error> {
    match tokio::time::timeout(limit, sqlx::Connection::ping(conn)).await {
        Ok(answered) => answered,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the database connection did not answer a ping in time",
        ))),
    }
}

/// The store the shared key SQL is compiled for (see `sql_backend.rs`).
type This = PgStore;

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

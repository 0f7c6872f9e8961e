//! The production backend: Postgres, shared by every replica.
//!
//! The predecessor's `api_keys` columns keep their types (`key_id SERIAL`,
//! `created_at`/`last_used_at` as `TIMESTAMP` holding UTC); sessions run
//! with `timezone=UTC` so that both servers read and write the same instants.
//! The key store's SQL is shared with SQLite (`keys_sql.rs`); this file holds
//! what only Postgres does.

use super::watch::LocalChanges;
use super::{PoolOptions, StoreError};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use std::str::FromStr;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    /// One connection for `LISTEN`, apart from the query pool.
    listen_pool: PgPool,
    local: LocalChanges,
}

impl PgStore {
    pub async fn connect(url: &str, pool: &PoolOptions) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::Config("the Postgres database URL cannot be parsed".into()))?
            .options([("timezone", "UTC")])
            .application_name("fleetmind");
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(pool.acquire_timeout)
            .connect_lazy_with(options.clone());
        let ping_when_idle_for = pool.ping_when_idle_for;
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
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            listen_pool,
            local: LocalChanges::default(),
        })
    }

    /// The pool, for the fleet tables that live beside the keys.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The transaction of a write (a key's rotation or revocation, a fleet
    /// change): a plain transaction.
    pub(in crate::store) async fn write_tx(
        &self,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
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
            .filter_map(|(id, at)| Some((key_id_param(*id).ok()?, *at)))
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
}

/// `key_id` is the predecessor's `SERIAL` (INT4); an id outside its range
/// cannot exist.
fn key_id_param(key_id: i64) -> Result<i32, StoreError> {
    i32::try_from(key_id).map_err(|_| StoreError::NotFound("key"))
}

key_store_impl! {
    store: PgStore,
    db: sqlx::Postgres,
    watch: watch_postgres(listen_pool),
    key_columns: "key_id::BIGINT AS key_id, user_id, email, name, api_key_prefix, scopes, \
                  created_at AT TIME ZONE 'UTC' AS created_at, \
                  last_used_at AT TIME ZONE 'UTC' AS last_used_at, \
                  expires_at, revoked_at, is_active, created_by",
    event_columns: "key_id::BIGINT AS key_id, user_id, event, actor, detail, at",
    created_at_value: "$6 AT TIME ZONE 'UTC'",
}

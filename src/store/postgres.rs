//! The production backend: Postgres, shared by every replica.
//!
//! The predecessor's `api_keys` columns keep their types (`key_id SERIAL`,
//! `created_at`/`last_used_at` as `TIMESTAMP` holding UTC); sessions run
//! with `timezone=UTC` so that both servers read and write the same instants.

use super::keys::{KeyEvent, KeyRecord, KeyStore, NewKey, RevokeTarget};
use super::watch::{self, KeyChangeSink, LocalChanges};
use super::{PoolOptions, StoreError};
use crate::keys::KeyHash;
use crate::scopes::Scopes;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use std::str::FromStr;
use tokio_util::sync::CancellationToken;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The columns [`key_from_row`] reads, as a literal for `concat!`.
macro_rules! key_columns {
    () => {
        "key_id::BIGINT AS key_id, user_id, email, name, api_key_prefix, scopes, \
         created_at AT TIME ZONE 'UTC' AS created_at, \
         last_used_at AT TIME ZONE 'UTC' AS last_used_at, \
         expires_at, revoked_at, is_active, created_by"
    };
}

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
        let pool = PgPoolOptions::new()
            .max_connections(pool.max_connections.max(1))
            .acquire_timeout(pool.acquire_timeout)
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
}

fn key_from_row(row: &PgRow) -> Result<KeyRecord, sqlx::Error> {
    Ok(KeyRecord {
        key_id: row.try_get("key_id")?,
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        prefix: row.try_get("api_key_prefix")?,
        scopes: Scopes::from_storage(row.try_get::<Option<String>, _>("scopes")?.as_deref()),
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        is_active: row
            .try_get::<Option<bool>, _>("is_active")?
            .unwrap_or(false),
        created_by: row.try_get("created_by")?,
    })
}

async fn insert_key_tx(
    tx: &mut Transaction<'_, Postgres>,
    key: &NewKey,
    event: &str,
    detail: Option<&str>,
) -> Result<KeyRecord, StoreError> {
    let row = sqlx::query(concat!(
        "INSERT INTO api_keys (user_id, email, name, api_key_hash, api_key_prefix, created_at, \
         is_active, scopes, expires_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6 AT TIME ZONE 'UTC', true, $7, $8, $9) RETURNING ",
        key_columns!()
    ))
    .bind(&key.user_id)
    .bind(&key.email)
    .bind(&key.name)
    .bind(key.hash.as_hex())
    .bind(&key.prefix)
    .bind(Utc::now())
    .bind(key.scopes.to_storage())
    .bind(key.expires_at)
    .bind(&key.created_by)
    .fetch_one(&mut **tx)
    .await?;
    let record = key_from_row(&row)?;
    insert_event_tx(tx, &record, event, &key.created_by, detail).await?;
    Ok(record)
}

async fn insert_event_tx(
    tx: &mut Transaction<'_, Postgres>,
    key: &KeyRecord,
    event: &str,
    actor: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_key_events (key_id, user_id, event, actor, detail, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(key.key_id as i32)
    .bind(&key.user_id)
    .bind(event)
    .bind(actor)
    .bind(detail)
    .bind(Utc::now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `key_id` is the predecessor's `SERIAL` (INT4); an id outside its range
/// cannot exist.
fn key_id_param(key_id: i64) -> Result<i32, StoreError> {
    i32::try_from(key_id).map_err(|_| StoreError::NotFound("key"))
}

#[async_trait]
impl KeyStore for PgStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE api_key_hash = $1"
        ))
        .bind(hash.as_hex())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(key_from_row).transpose()?)
    }

    async fn key_by_id(&self, key_id: i64) -> Result<Option<KeyRecord>, StoreError> {
        let Ok(key_id) = i32::try_from(key_id) else {
            return Ok(None);
        };
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE key_id = $1"
        ))
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(key_from_row).transpose()?)
    }

    async fn user_id_for_email(
        &self,
        normalized_email: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM api_keys WHERE lower(trim(email)) = $1 \
             ORDER BY key_id LIMIT 1",
        )
        .bind(normalized_email)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let record = insert_key_tx(&mut tx, key, "created", None).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn insert_first_key(&self, key: &NewKey) -> Result<Option<KeyRecord>, StoreError> {
        // The lock serialises replicas that start at the same moment, so two
        // processes cannot both see an empty table.
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
            .fetch_one(&mut *tx)
            .await?;
        if existing > 0 {
            return Ok(None);
        }
        let record = insert_key_tx(&mut tx, key, "created", Some("first start")).await?;
        tx.commit().await?;
        Ok(Some(record))
    }

    async fn rotate_key(
        &self,
        old_key_id: i64,
        old_expires_at: DateTime<Utc>,
        new: &NewKey,
    ) -> Result<KeyRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let old = sqlx::query(concat!(
            "UPDATE api_keys SET expires_at = CASE \
               WHEN expires_at IS NOT NULL AND expires_at < $2 THEN expires_at ELSE $2 END \
             WHERE key_id = $1 AND is_active = true AND revoked_at IS NULL \
               AND (expires_at IS NULL OR expires_at > $3) \
             RETURNING ",
            key_columns!(),
            ""
        ))
        .bind(key_id_param(old_key_id)?)
        .bind(old_expires_at)
        // An expired key has no successor, even if it expired after the
        // caller looked at it.
        .bind(Utc::now())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(old) = old.as_ref().map(key_from_row).transpose()? else {
            return Err(StoreError::NotFound("active key"));
        };
        let detail = format!("rotation of key {old_key_id}");
        let record = insert_key_tx(&mut tx, new, "created", Some(&detail)).await?;
        let detail = format!(
            "replaced by key {}; old key valid until {}",
            record.key_id,
            old_expires_at.to_rfc3339()
        );
        insert_event_tx(&mut tx, &old, "rotated", &new.created_by, Some(&detail)).await?;
        tx.commit().await?;
        self.local.changed();
        Ok(record)
    }

    async fn revoke_keys(
        &self,
        target: &RevokeTarget,
        actor: &str,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = Utc::now();
        let query = match target {
            RevokeTarget::KeyId(id) => sqlx::query(concat!(
                "UPDATE api_keys SET is_active = false, revoked_at = $1 \
                 WHERE key_id = $2 AND (is_active = true AND revoked_at IS NULL) \
                 RETURNING ",
                key_columns!(),
                ""
            ))
            .bind(now)
            .bind(key_id_param(*id)?),
            RevokeTarget::Email(email) => sqlx::query(concat!(
                "UPDATE api_keys SET is_active = false, revoked_at = $1 \
                 WHERE lower(trim(email)) = $2 AND (is_active = true AND revoked_at IS NULL) \
                 RETURNING ",
                key_columns!(),
                ""
            ))
            .bind(now)
            .bind(crate::keys::normalize_email(email)),
        };
        let rows = query.fetch_all(&mut *tx).await?;
        let revoked = rows
            .iter()
            .map(key_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        for key in &revoked {
            insert_event_tx(&mut tx, key, "revoked", actor, None).await?;
        }
        tx.commit().await?;
        self.local.changed();
        Ok(revoked)
    }

    async fn list_keys(&self, email: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = match email {
            Some(email) => {
                sqlx::query(concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM api_keys WHERE lower(trim(email)) = $1 \
                     ORDER BY key_id DESC"
                ))
                .bind(crate::keys::normalize_email(email))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM api_keys ORDER BY key_id DESC"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(rows
            .iter()
            .map(key_from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn count_keys(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn record_key_use(&self, uses: &[(i64, DateTime<Utc>)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        // One statement for the whole batch.
        let ids: Vec<i32> = uses
            .iter()
            .filter_map(|(id, _)| i32::try_from(*id).ok())
            .collect();
        let ats: Vec<DateTime<Utc>> = uses
            .iter()
            .filter(|(id, _)| i32::try_from(*id).is_ok())
            .map(|(_, at)| *at)
            .collect();
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

    async fn key_events(&self, key_id: i64) -> Result<Vec<KeyEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT key_id::BIGINT AS key_id, user_id, event, actor, detail, at \
             FROM api_key_events WHERE key_id = $1 ORDER BY event_id",
        )
        .bind(key_id_param(key_id)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(KeyEvent {
                    key_id: row.try_get("key_id")?,
                    user_id: row.try_get("user_id")?,
                    event: row.try_get("event")?,
                    actor: row.try_get("actor")?,
                    detail: row.try_get("detail")?,
                    at: row.try_get("at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(Into::into)
    }

    fn watch_key_changes(
        &self,
        sink: KeyChangeSink,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        self.local.subscribe(&sink);
        watch::watch_postgres(self.listen_pool.clone(), sink, shutdown)
    }
}

//! The embedded backend: one SQLite file, created on first start.

use super::keys::{KeyEvent, KeyRecord, KeyStore, NewKey, RevokeTarget};
use super::watch::{self, KeyChangeSink, LocalChanges};
use super::{PoolOptions, StoreError};
use crate::keys::KeyHash;
use crate::scopes::Scopes;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The columns [`key_from_row`] reads, as a literal for `concat!`.
macro_rules! key_columns {
    () => {
        "key_id, user_id, email, name, api_key_prefix, scopes, created_at, last_used_at, \
         expires_at, revoked_at, is_active, created_by"
    };
}

pub struct SqliteStore {
    pool: SqlitePool,
    local: LocalChanges,
}

impl SqliteStore {
    pub async fn connect(url: &str, pool: &PoolOptions) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Config("the SQLite database URL cannot be parsed".into()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(pool.max_connections.max(1))
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            local: LocalChanges::default(),
        })
    }

    /// The pool, for the fleet tables that live beside the keys.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn key_from_row(row: &SqliteRow) -> Result<KeyRecord, sqlx::Error> {
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
    tx: &mut Transaction<'_, Sqlite>,
    key: &NewKey,
    event: &str,
    detail: Option<&str>,
) -> Result<KeyRecord, StoreError> {
    let now = Utc::now();
    let row = sqlx::query(concat!(
        "INSERT INTO api_keys (user_id, email, name, api_key_hash, api_key_prefix, created_at, \
         is_active, scopes, expires_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9) RETURNING ",
        key_columns!(),
        ""
    ))
    .bind(&key.user_id)
    .bind(&key.email)
    .bind(&key.name)
    .bind(key.hash.as_hex())
    .bind(&key.prefix)
    .bind(now)
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
    tx: &mut Transaction<'_, Sqlite>,
    key: &KeyRecord,
    event: &str,
    actor: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_key_events (key_id, user_id, event, actor, detail, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(key.key_id)
    .bind(&key.user_id)
    .bind(event)
    .bind(actor)
    .bind(detail)
    .bind(Utc::now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl KeyStore for SqliteStore {
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
        // BEGIN IMMEDIATE takes the write lock first, so two processes cannot
        // both see an empty table.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let old = sqlx::query(concat!(
            "UPDATE api_keys SET expires_at = CASE \
               WHEN expires_at IS NOT NULL AND expires_at < $2 THEN expires_at ELSE $2 END \
             WHERE key_id = $1 AND is_active = 1 AND revoked_at IS NULL \
               AND (expires_at IS NULL OR expires_at > $3) \
             RETURNING ",
            key_columns!(),
            ""
        ))
        .bind(old_key_id)
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = Utc::now();
        let query = match target {
            RevokeTarget::KeyId(id) => sqlx::query(concat!(
                "UPDATE api_keys SET is_active = 0, revoked_at = $1 \
                 WHERE key_id = $2 AND (is_active = 1 AND revoked_at IS NULL) \
                 RETURNING ",
                key_columns!(),
                ""
            ))
            .bind(now)
            .bind(*id),
            RevokeTarget::Email(email) => sqlx::query(concat!(
                "UPDATE api_keys SET is_active = 0, revoked_at = $1 \
                 WHERE lower(trim(email)) = $2 AND (is_active = 1 AND revoked_at IS NULL) \
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

    async fn key_events(&self, key_id: i64) -> Result<Vec<KeyEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT key_id, user_id, event, actor, detail, at FROM api_key_events \
             WHERE key_id = $1 ORDER BY event_id",
        )
        .bind(key_id)
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
        watch::watch_sqlite(self.pool.clone(), sink, shutdown)
    }
}

//! The key store's SQL, written once and compiled once per backend:
//! `sqlite.rs` and `postgres.rs` each include this file as their module
//! `keys_sql`, after naming their store `This`. What really differs (the
//! columns read back, the value written to `created_at`, the key id's type,
//! the transactions, the change watch) is asked of the backend through
//! [`SqlBackend`].
//!
//! The boolean literals `true` and `false` mean 1 and 0 to SQLite (since
//! 3.23), so the statements that use them are the same text on both.

use super::This;
use crate::keys::{KeyHash, normalize_email};
use crate::limits::{KeyLimits, LimitsChange};
use crate::scopes::Scopes;
use crate::store::sql_backend::SqlBackend;
use crate::store::watch::KeyChangeSink;
use crate::store::{
    Identity, KeyEvent, KeyHashRow, KeyRecord, KeyStore, LimitsSet, NewKey, RevokeTarget,
    StoreError,
};
use crate::tenant::UserId;
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::sync::LazyLock;
use tokio_util::sync::CancellationToken;

type Db = <This as SqlBackend>::Db;
type DbRow = <Db as sqlx::Database>::Row;
type Tx<'c> = sqlx::Transaction<'c, Db>;

const KEY_COLUMNS: &str = <This as SqlBackend>::KEY_COLUMNS;

static INSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO api_keys (user_id, email, name, api_key_hash, api_key_prefix, \
         created_at, is_active, scopes, expires_at, created_by, \
         rate_limit_per_minute, monthly_quota, allowed_ips) \
         VALUES ($1, $2, $3, $4, $5, {}, true, $7, $8, $9, $10, $11, $12) RETURNING {KEY_COLUMNS}",
        <This as SqlBackend>::CREATED_AT_VALUE
    )
});

/// The key and, if rotation retired it, its successor: read with the key on
/// a cache miss (one primary-key probe), so that refusing it later needs no
/// query and admitting a valid key none more.
static BY_HASH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {KEY_COLUMNS}, (SELECT CAST(s.successor_key_id AS BIGINT) \
           FROM api_key_successors s WHERE s.key_id = api_keys.key_id) AS successor_key_id \
         FROM api_keys WHERE api_key_hash = $1"
    )
});

/// Names the key that replaced a rotated one (the latest, if rotated again).
const SUCCESSOR: &str = "INSERT INTO api_key_successors (key_id, successor_key_id) \
     VALUES ($1, $2) ON CONFLICT (key_id) DO UPDATE SET successor_key_id = excluded.successor_key_id";

static BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = $1"));

/// Shortens the old key's life (never lengthens it), if it is still active.
static ROTATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE api_keys SET expires_at = CASE \
           WHEN expires_at IS NOT NULL AND expires_at < $2 THEN expires_at ELSE $2 END \
         WHERE key_id = $1 AND is_active = true AND revoked_at IS NULL \
           AND (expires_at IS NULL OR expires_at > $3) \
         RETURNING {KEY_COLUMNS}"
    )
});

/// Locks a key's row until the transaction ends and reads it: an update
/// that writes nothing new, the one row lock both backends spell alike. No
/// change is reported for it: Postgres' trigger compares whole rows, and
/// SQLite's counter triggers watch other columns than `key_id`.
static LOCK_ID: LazyLock<String> = LazyLock::new(|| {
    format!("UPDATE api_keys SET key_id = key_id WHERE key_id = $1 RETURNING {KEY_COLUMNS}")
});

static SET_LIMITS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE api_keys SET rate_limit_per_minute = $2, monthly_quota = $3, allowed_ips = $4 \
         WHERE key_id = $1 RETURNING {KEY_COLUMNS}"
    )
});

static REVOKE_ID: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE api_keys SET is_active = false, revoked_at = $1 \
         WHERE key_id = $2 AND (is_active = true AND revoked_at IS NULL) \
           AND (expires_at IS NULL OR expires_at > $1) \
         RETURNING {KEY_COLUMNS}"
    )
});

static REVOKE_EMAIL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE api_keys SET is_active = false, revoked_at = $1 \
         WHERE lower(trim(email)) = $2 AND (is_active = true AND revoked_at IS NULL) \
           AND (expires_at IS NULL OR expires_at > $1) \
         RETURNING {KEY_COLUMNS}"
    )
});

static LIST_OF_EMAIL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE lower(trim(email)) = $1 ORDER BY key_id DESC")
});

static LIST_OF_USER: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY key_id DESC")
});

static LIST_ALL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY key_id DESC"));

static EVENTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM api_key_events WHERE key_id = $1 ORDER BY event_id",
        <This as SqlBackend>::EVENT_COLUMNS
    )
});

/// Reads the columns of `KEY_COLUMNS`.
fn key_from_row(row: &DbRow) -> Result<KeyRecord, sqlx::Error> {
    Ok(KeyRecord {
        identity: Identity {
            user_id: UserId::new(row.try_get::<String, _>("user_id")?),
            key_id: row.try_get("key_id")?,
            key_prefix: row.try_get("api_key_prefix")?,
            scopes: Scopes::from_storage(row.try_get::<Option<String>, _>("scopes")?.as_deref()),
            expires_at: row.try_get("expires_at")?,
            limits: KeyLimits::from_storage(
                row.try_get("rate_limit_per_minute")?,
                row.try_get("monthly_quota")?,
                row.try_get::<Option<String>, _>("allowed_ips")?.as_deref(),
            ),
        },
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
        is_active: row
            .try_get::<Option<bool>, _>("is_active")?
            .unwrap_or(false),
        created_by: row.try_get("created_by")?,
        successor_key_id: None,
    })
}

/// Stores `key` and its `event`, whose detail is `context` (if any)
/// followed by what was granted. Also used by `console_sql` (a key issued
/// by an invitation is stored in the claim's transaction).
pub(super) async fn insert_key_tx(
    tx: &mut Tx<'_>,
    key: &NewKey,
    event: &str,
    context: Option<&str>,
) -> Result<KeyRecord, StoreError> {
    let (rate, quota, ips) = key.limits.to_storage();
    let row = sqlx::query(INSERT.as_str())
        .bind(&key.user_id)
        .bind(&key.email)
        .bind(&key.name)
        .bind(key.hash.as_hex())
        .bind(&key.prefix)
        .bind(key.created_at)
        .bind(key.scopes.to_storage())
        .bind(key.expires_at)
        .bind(&key.created_by)
        .bind(rate)
        .bind(quota)
        .bind(ips)
        .fetch_one(&mut **tx)
        .await?;
    let record = key_from_row(&row)?;
    let detail = match context {
        Some(context) => format!("{context}; {}", key.grant()),
        None => key.grant(),
    };
    insert_event_tx(
        tx,
        record.key_id,
        record.user_id.as_str(),
        event,
        &key.created_by,
        Some(&detail),
        key.created_at,
    )
    .await?;
    Ok(record)
}

/// Appends an event to the audit trail, dated `at` (the caller's clock).
async fn insert_event_tx(
    tx: &mut Tx<'_>,
    key_id: i64,
    user_id: &str,
    event: &str,
    actor: &str,
    detail: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_key_events (key_id, user_id, event, actor, detail, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(This::key_id_param(key_id)?)
    .bind(user_id)
    .bind(event)
    .bind(actor)
    .bind(detail)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl KeyStore for This {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.run_migrations().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(BY_HASH.as_str())
            .bind(hash.as_hex())
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut record = key_from_row(&row)?;
        record.successor_key_id = row.try_get("successor_key_id")?;
        Ok(Some(record))
    }

    async fn key_by_id(&self, key_id: i64) -> Result<Option<KeyRecord>, StoreError> {
        // An id the backend cannot hold names no key.
        let Ok(key_id) = This::key_id_param(key_id) else {
            return Ok(None);
        };
        let row = sqlx::query(BY_ID.as_str())
            .bind(key_id)
            .fetch_optional(self.pool())
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
        .fetch_optional(self.pool())
        .await?)
    }

    async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        let mut tx = self.pool().begin().await?;
        let record = insert_key_tx(&mut tx, key, "created", None).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn insert_first_key(&self, key: &NewKey) -> Result<Option<KeyRecord>, StoreError> {
        let mut tx = self.first_key_tx().await?;
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
        let mut tx = self.write_tx().await?;
        let old = sqlx::query(ROTATE.as_str())
            .bind(This::key_id_param(old_key_id)?)
            .bind(old_expires_at)
            // An expired key has no successor, even if it expired after the
            // caller looked at it (the successor's issue is the rotation's
            // instant).
            .bind(new.created_at)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(old) = old.as_ref().map(key_from_row).transpose()? else {
            return Err(StoreError::NotFound("active key"));
        };
        let detail = format!("rotation of key {old_key_id}");
        let record = insert_key_tx(&mut tx, new, "created", Some(&detail)).await?;
        sqlx::query(SUCCESSOR)
            .bind(This::key_id_param(old.key_id)?)
            .bind(This::key_id_param(record.key_id)?)
            .execute(&mut *tx)
            .await?;
        let detail = format!(
            "replaced by key {}; old key valid until {}; {}",
            record.key_id,
            old_expires_at.to_rfc3339(),
            new.grant()
        );
        insert_event_tx(
            &mut tx,
            old.key_id,
            old.user_id.as_str(),
            "rotated",
            &new.created_by,
            Some(&detail),
            new.created_at,
        )
        .await?;
        tx.commit().await?;
        self.local_changes().changed();
        Ok(record)
    }

    async fn revoke_keys(
        &self,
        target: &RevokeTarget,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let mut tx = self.write_tx().await?;
        let query = match target {
            RevokeTarget::KeyId(id) => sqlx::query(REVOKE_ID.as_str())
                .bind(now)
                .bind(This::key_id_param(*id)?),
            RevokeTarget::Email(email) => sqlx::query(REVOKE_EMAIL.as_str())
                .bind(now)
                .bind(normalize_email(email)),
        };
        let rows = query.fetch_all(&mut *tx).await?;
        let revoked = rows
            .iter()
            .map(key_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        for key in &revoked {
            insert_event_tx(
                &mut tx,
                key.key_id,
                key.user_id.as_str(),
                "revoked",
                actor,
                None,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        self.local_changes().changed();
        Ok(revoked)
    }

    async fn record_denied(
        &self,
        key_id: i64,
        user_id: &UserId,
        actor: &str,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        insert_event_tx(
            &mut tx,
            key_id,
            user_id.as_str(),
            "denied",
            actor,
            Some(detail),
            at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_key_limits(
        &self,
        key_id: i64,
        change: &LimitsChange,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<LimitsSet, StoreError> {
        let id = This::key_id_param(key_id)?;
        let mut tx = self.write_tx().await?;
        let before = sqlx::query(LOCK_ID.as_str())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(before) = before.as_ref().map(key_from_row).transpose()? else {
            return Err(StoreError::NotFound("key"));
        };
        let limits = change.apply(&before.limits);
        if limits == before.limits {
            tx.commit().await?;
            return Ok(LimitsSet {
                after: before.clone(),
                before,
            });
        }
        let (rate, quota, ips) = limits.to_storage();
        let row = sqlx::query(SET_LIMITS.as_str())
            .bind(id)
            .bind(rate)
            .bind(quota)
            .bind(ips)
            .fetch_one(&mut *tx)
            .await?;
        let after = key_from_row(&row)?;
        let detail = format!("{} → {}", before.limits, after.limits);
        insert_event_tx(
            &mut tx,
            after.key_id,
            after.user_id.as_str(),
            "limits_changed",
            actor,
            Some(&detail),
            now,
        )
        .await?;
        tx.commit().await?;
        self.local_changes().changed();
        Ok(LimitsSet { before, after })
    }

    async fn list_keys(&self, email: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = match email {
            Some(email) => {
                sqlx::query(LIST_OF_EMAIL.as_str())
                    .bind(normalize_email(email))
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query(LIST_ALL.as_str())
                    .fetch_all(self.pool())
                    .await?
            }
        };
        Ok(rows
            .iter()
            .map(key_from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn tenant_keys(&self, user: &UserId) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(LIST_OF_USER.as_str())
            .bind(user.as_str())
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(key_from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn key_hashes_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<KeyHashRow>, StoreError> {
        // `key_id > $1` walks the primary key; the CAST makes the id BIGINT
        // on both (Postgres keeps the predecessor's INT4).
        let rows = sqlx::query(
            "SELECT CAST(key_id AS BIGINT) AS key_id, api_key_hash FROM api_keys \
             WHERE key_id > $1 ORDER BY key_id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let hex: String = row.try_get("api_key_hash")?;
            // A stored hash that is not 64 hex digits cannot match any key:
            // there is nothing to know about it.
            let Some(hash) = KeyHash::from_stored(&hex) else {
                continue;
            };
            keys.push(KeyHashRow {
                key_id: row.try_get("key_id")?,
                hash,
            });
        }
        Ok(keys)
    }

    async fn send_change_marker(&self, marker: &KeyHash) -> Result<bool, StoreError> {
        let Some(sql) = <This as SqlBackend>::SEND_MARKER else {
            return Ok(false);
        };
        sqlx::query(sql)
            .bind(marker.as_hex())
            .execute(self.pool())
            .await?;
        Ok(true)
    }

    async fn count_keys(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
            .fetch_one(self.pool())
            .await?)
    }

    async fn record_key_use(&self, uses: &[(i64, DateTime<Utc>)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        self.write_key_use(uses).await
    }

    async fn key_events(&self, key_id: i64) -> Result<Vec<KeyEvent>, StoreError> {
        Ok(sqlx::query_as(EVENTS.as_str())
            .bind(This::key_id_param(key_id)?)
            .fetch_all(self.pool())
            .await?)
    }

    fn watch_key_changes(
        &self,
        sink: KeyChangeSink,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        self.local_changes().subscribe(&sink);
        self.watch_changes(sink, shutdown)
    }
}

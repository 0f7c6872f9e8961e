//! The console store's SQL, written once and compiled once per backend:
//! `sqlite.rs` and `postgres.rs` each include this file as their module
//! `console_sql`, after naming their store `This` (see `sql_backend.rs`).
//! Only the binding of `api_key_events.key_id` differs, through
//! [`SqlBackend::key_id_param`].

use super::This;
use super::keys_sql::insert_key_tx;
use crate::keys::KeyHash;
use crate::scopes::Scopes;
use crate::store::console::*;
use crate::store::sql_backend::SqlBackend;
use crate::store::{KeyRecord, NewKey, StoreError};
use crate::tenant::UserId;
use async_trait::async_trait;
use sqlx::Row;

#[async_trait]
impl ConsoleStore for This {
    async fn insert_session(&self, s: &NewSession, purge_before: i64) -> Result<(), StoreError> {
        sqlx::query(PURGE_SESSIONS)
            .bind(purge_before)
            .execute(self.pool())
            .await?;
        sqlx::query(INSERT_SESSION)
            .bind(&s.token_hash)
            .bind(s.key_id)
            .bind(s.key_hash.as_hex())
            .bind(s.user_id.as_str())
            .bind(s.at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(SELECT_SESSION)
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let key_hash: String = row.try_get("key_hash")?;
        let Some(key_hash) = KeyHash::from_stored(&key_hash) else {
            return Ok(None);
        };
        Ok(Some(SessionRow {
            key_id: row.try_get("key_id")?,
            key_hash,
            user_id: UserId::new(row.try_get::<String, _>("user_id")?),
            created_at: row.try_get("created_at")?,
            last_seen_at: row.try_get("last_seen_at")?,
        }))
    }

    async fn touch_session(&self, token_hash: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(TOUCH_SESSION)
            .bind(token_hash)
            .bind(at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query(DELETE_SESSION)
            .bind(token_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn insert_invite(
        &self,
        invite: &NewInvite,
        actor: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let invite_id: i64 = sqlx::query_scalar(INSERT_INVITE)
            .bind(&invite.token_hash)
            .bind(&invite.email)
            .bind(invite.scopes.to_storage())
            .bind(invite.invited_by_key_id)
            .bind(invite.created_at)
            .bind(invite.expires_at)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(INSERT_EVENT)
            .bind(This::key_id_param(invite.invited_by_key_id)?)
            .bind(invite.invited_by_user.as_str())
            .bind("invited")
            .bind(actor)
            .bind(invited_detail(invite_id, invite))
            .bind(at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(invite_id)
    }

    async fn invite(&self, token_hash: &str) -> Result<Option<InviteRow>, StoreError> {
        let row = sqlx::query(SELECT_INVITE)
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(InviteRow {
            invite_id: row.try_get("invite_id")?,
            email: row.try_get("email")?,
            scopes: Scopes::from_storage(Some(&row.try_get::<String, _>("scopes")?)),
            expires_at: row.try_get("expires_at")?,
            claimed_at: row.try_get("claimed_at")?,
        }))
    }

    async fn claim_invite(
        &self,
        invite_id: i64,
        at: i64,
        key: &NewKey,
        actor: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let mut tx = self.write_tx().await?;
        let claimed = sqlx::query(CLAIM_INVITE)
            .bind(invite_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        if claimed.rows_affected() != 1 {
            return Ok(None);
        }
        let context = format!("invitation {invite_id}");
        let record = insert_key_tx(&mut tx, key, "created", Some(&context)).await?;
        sqlx::query(INVITE_KEY)
            .bind(invite_id)
            .bind(record.key_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(INSERT_EVENT)
            .bind(This::key_id_param(record.key_id)?)
            .bind(record.user_id.as_str())
            .bind("invite_claimed")
            .bind(actor)
            .bind(&context)
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(record))
    }
}

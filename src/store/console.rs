//! The web console's tables: sign-in sessions and one-time invitations
//! (issue 12). Tokens arrive here already hashed; times are Unix seconds.
//!
//! The SQL is the same text on both backends (`$n` placeholders, integer
//! times), in `console_sql.rs`, compiled once per backend like `keys_sql.rs`.

use super::{KeyRecord, NewKey, StoreError};
use crate::keys::KeyHash;
use crate::scopes::Scopes;
use crate::tenant::UserId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A session about to be stored.
pub struct NewSession {
    /// SHA-256 hex of the cookie's token.
    pub token_hash: String,
    /// The key the session was opened with; checked on every request.
    pub key_id: i64,
    pub key_hash: KeyHash,
    pub user_id: UserId,
    pub at: i64,
}

/// A stored session.
pub struct SessionRow {
    pub key_id: i64,
    pub key_hash: KeyHash,
    pub user_id: UserId,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// An invitation about to be stored.
pub struct NewInvite {
    pub token_hash: String,
    /// Normalised (trimmed, lower-cased).
    pub email: String,
    pub scopes: Scopes,
    /// The admin key that invites, and its tenant (for the `invited` event).
    pub invited_by_key_id: i64,
    pub invited_by_user: UserId,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A stored invitation.
pub struct InviteRow {
    pub invite_id: i64,
    pub email: String,
    pub scopes: Scopes,
    pub expires_at: i64,
    pub claimed_at: Option<i64>,
}

/// The console's storage.
#[async_trait]
pub trait ConsoleStore: Send + Sync + 'static {
    /// Stores a session, and drops sessions created before `purge_before`.
    async fn insert_session(
        &self,
        session: &NewSession,
        purge_before: i64,
    ) -> Result<(), StoreError>;

    async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError>;

    /// Notes a request of the session (for the idle limit).
    async fn touch_session(&self, token_hash: &str, at: i64) -> Result<(), StoreError>;

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;

    /// Stores an invitation and its `invited` event (on the inviting key,
    /// actor `actor`, dated `at`: the instant of `invite.created_at`) in
    /// one transaction; returns its id.
    async fn insert_invite(
        &self,
        invite: &NewInvite,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError>;

    async fn invite(&self, token_hash: &str) -> Result<Option<InviteRow>, StoreError>;

    /// Claims the invitation `at` and stores the key it issues (with the
    /// key's `created` event, detail `invitation <id>`, and its
    /// `invite_claimed` event, both dated `key.created_at`) in one
    /// transaction. `None`, with nothing written, when it was
    /// claimed before; if storing the key fails, the claim is undone with it
    /// and the invitation stays claimable.
    async fn claim_invite(
        &self,
        invite_id: i64,
        at: i64,
        key: &NewKey,
        actor: &str,
    ) -> Result<Option<KeyRecord>, StoreError>;
}

pub(crate) const INSERT_SESSION: &str = "INSERT INTO console_sessions \
     (token_hash, key_id, key_hash, user_id, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $5)";
pub(crate) const PURGE_SESSIONS: &str = "DELETE FROM console_sessions WHERE created_at < $1";
pub(crate) const SELECT_SESSION: &str = "SELECT key_id, key_hash, user_id, created_at, last_seen_at \
     FROM console_sessions WHERE token_hash = $1";
pub(crate) const TOUCH_SESSION: &str =
    "UPDATE console_sessions SET last_seen_at = $2 WHERE token_hash = $1 AND last_seen_at < $2";
pub(crate) const DELETE_SESSION: &str = "DELETE FROM console_sessions WHERE token_hash = $1";
pub(crate) const INSERT_INVITE: &str = "INSERT INTO console_invites \
     (token_hash, email, scopes, invited_by_key_id, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING invite_id";
pub(crate) const SELECT_INVITE: &str = "SELECT invite_id, email, scopes, expires_at, claimed_at \
     FROM console_invites WHERE token_hash = $1";
pub(crate) const CLAIM_INVITE: &str =
    "UPDATE console_invites SET claimed_at = $2 WHERE invite_id = $1 AND claimed_at IS NULL";
pub(crate) const INVITE_KEY: &str =
    "UPDATE console_invites SET claimed_key_id = $2 WHERE invite_id = $1";
pub(crate) const INSERT_EVENT: &str = "INSERT INTO api_key_events \
     (key_id, user_id, event, actor, detail, at) VALUES ($1, $2, $3, $4, $5, $6)";

/// What the `invited` event says: never the email or the token.
pub(crate) fn invited_detail(invite_id: i64, invite: &NewInvite) -> String {
    let expires = DateTime::<Utc>::from_timestamp(invite.expires_at, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    format!(
        "invitation {invite_id}; scopes {}; expires {expires}",
        invite.scopes
    )
}

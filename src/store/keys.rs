//! The `api_keys` table and its audit trail, as seen by the rest of the server.

use super::StoreError;
use super::watch::KeyChangeSink;
use crate::keys::KeyHash;
use crate::limits::{KeyLimits, LimitsChange};
use crate::scopes::Scopes;
use crate::tenant::UserId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;
use tokio_util::sync::CancellationToken;

/// What a verified key says about its caller: the part of its row that
/// serving a request needs. Held once: in [`KeyRecord`] as read, then (in
/// an `Arc`) as the request's `auth::Caller`, which the verification cache
/// keeps.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: UserId,
    pub key_id: i64,
    /// The key's first 12 characters, safe to show and log.
    pub key_prefix: String,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
    /// The key's rate, quota and allowed addresses, read with the key: the
    /// auth layer reads them as `caller.limits`.
    pub limits: KeyLimits,
}

/// One row of `api_keys`, without the hash (nothing outside the store
/// needs it): the caller's [`Identity`] and what only managing the key
/// needs. It reads as its identity too (`record.key_id`), through `Deref`.
#[derive(Clone)]
pub struct KeyRecord {
    pub identity: Identity,
    pub email: String,
    pub name: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub created_by: Option<String>,
    /// The key that replaced this one by rotation, if any. Read only by the
    /// lookup by hash (`None` from the other queries): it is what lets a
    /// refusal say "replaced by rotation" rather than "expired".
    pub successor_key_id: Option<i64>,
}

impl std::ops::Deref for KeyRecord {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.identity
    }
}

/// Whether a key may be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Active,
    Revoked,
    Expired,
}

impl KeyState {
    /// The one rule: a revoked key is revoked whatever the time; otherwise a
    /// key is expired from the instant `expires_at` itself.
    pub fn of(revoked: bool, expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        if revoked {
            KeyState::Revoked
        } else if expires_at.is_some_and(|at| at <= now) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }
}

impl KeyRecord {
    /// Revoked or deactivated: refused whatever the time.
    pub fn is_revoked(&self) -> bool {
        !self.is_active || self.revoked_at.is_some()
    }

    pub fn state(&self, now: DateTime<Utc>) -> KeyState {
        KeyState::of(self.is_revoked(), self.expires_at, now)
    }
}

// Emails are personal data and stay out of logs: Debug leaves them out.
impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("identity", &self.identity)
            .field("is_active", &self.is_active)
            .finish_non_exhaustive()
    }
}

/// A key about to be stored.
#[derive(Clone)]
pub struct NewKey {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub hash: KeyHash,
    pub prefix: String,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
    /// Who issued it: `cli`, `bootstrap`, or `key:<id>` for an admin key.
    pub created_by: String,
    pub limits: KeyLimits,
    /// When it is issued (the issuer's clock): the row's `created_at` and
    /// its `created` event's time; for a successor, the rotation's.
    pub created_at: DateTime<Utc>,
}

impl NewKey {
    /// What the key is granted, for its audit events: name, scopes and
    /// expiry (never the key or its hash, never the email). The name is
    /// quoted with Rust's escapes, so that a name holding `;`, quotes or
    /// invisible characters cannot pass for other fields.
    pub fn grant(&self) -> String {
        let name = match &self.name {
            Some(name) => format!("name {name:?}"),
            None => "no name".to_owned(),
        };
        let expires = match self.expires_at {
            Some(at) => at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            None => "never".to_owned(),
        };
        let mut grant = format!("{name}; scopes {}; expires {expires}", self.scopes);
        if !self.limits.is_unlimited() {
            grant.push_str(&format!("; limits {}", self.limits));
        }
        grant
    }
}

/// A key's row before and after [`KeyStore::set_key_limits`].
#[derive(Debug, Clone)]
pub struct LimitsSet {
    pub before: KeyRecord,
    pub after: KeyRecord,
}

impl LimitsSet {
    /// Whether the limits moved (an event was written).
    pub fn changed(&self) -> bool {
        self.before.limits != self.after.limits
    }
}

/// Which keys to revoke.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    KeyId(i64),
    /// Every active key of this email (compared trimmed and lower-cased).
    Email(String),
}

/// One key as the set of known keys sees it (`auth::known_keys`): no more
/// than its id and its hash.
#[derive(Clone)]
pub struct KeyHashRow {
    pub key_id: i64,
    pub hash: KeyHash,
}

/// One entry of the append-only audit trail.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct KeyEvent {
    pub key_id: i64,
    pub user_id: String,
    /// `created`, `rotated`, `revoked`, `limits_changed` (detail: the limits
    /// before → after), or `denied` (a call of the key refused for lack of
    /// scope: the event is the refused key's own).
    pub event: String,
    /// `cli`, `bootstrap`, or `key:<id>`.
    pub actor: String,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// The key operations each backend provides.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Brings the schema up to date (idempotent; safe with several replicas).
    async fn migrate(&self) -> Result<(), StoreError>;

    /// A cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The row whose `api_key_hash` matches, whatever its state.
    async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError>;

    async fn key_by_id(&self, key_id: i64) -> Result<Option<KeyRecord>, StoreError>;

    /// The `user_id` already used by an email (compared trimmed and
    /// lower-cased), oldest key first, so existing users keep their id.
    async fn user_id_for_email(&self, normalized_email: &str)
    -> Result<Option<String>, StoreError>;

    /// Stores a key and its `created` event in one transaction.
    async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError>;

    /// Stores a key only if the table holds no key at all (the first start).
    /// Returns `None` when another process got there first.
    async fn insert_first_key(&self, key: &NewKey) -> Result<Option<KeyRecord>, StoreError>;

    /// Stores `new` and limits the old key's life to `old_expires_at`, with
    /// a `rotated` event, in one transaction, at `new.created_at`.
    async fn rotate_key(
        &self,
        old_key_id: i64,
        old_expires_at: DateTime<Utc>,
        new: &NewKey,
    ) -> Result<KeyRecord, StoreError>;

    /// Marks matching active keys revoked `now`, with a `revoked` event
    /// each, in one transaction; returns the keys it revoked.
    async fn revoke_keys(
        &self,
        target: &RevokeTarget,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<KeyRecord>, StoreError>;

    /// Writes a `denied` event on the key `key_id` of tenant `user_id`, whose
    /// call `detail` describes was refused `at`; `actor` is that key
    /// (`key:<id>`).
    async fn record_denied(
        &self,
        key_id: i64,
        user_id: &UserId,
        actor: &str,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Applies `change` to the limits of key `key_id` (any state), with a
    /// `limits_changed` event by `actor` whose detail is the limits before
    /// → after, in one transaction; the row is locked from the read of the
    /// limits before to the write, so concurrent changes of different
    /// fields both hold. Returns the key before and after; nothing is
    /// written (no event either) when the change changes nothing. The event
    /// is dated `now`. `NotFound` when there is no such key.
    async fn set_key_limits(
        &self,
        key_id: i64,
        change: &LimitsChange,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<LimitsSet, StoreError>;

    /// Every key, newest first, optionally for one email.
    async fn list_keys(&self, email: Option<&str>) -> Result<Vec<KeyRecord>, StoreError>;

    /// Every key of one tenant, newest first, whatever email each row holds
    /// (a predecessor's rows may spell it differently): what a caller
    /// without the admin scope may see and manage.
    async fn tenant_keys(&self, user: &UserId) -> Result<Vec<KeyRecord>, StoreError>;

    /// Up to `limit` keys whose `key_id` is above `after`, in `key_id` order,
    /// any state: paged, so that loading a million keys never holds a
    /// million rows at once.
    async fn key_hashes_after(&self, after: i64, limit: i64)
    -> Result<Vec<KeyHashRow>, StoreError>;

    /// Sends `marker` on the key change channel, so that every change watch
    /// reports it (as [`KeyChange::Key`](super::KeyChange::Key)) after every
    /// change committed before it: Postgres delivers notifications in commit
    /// order. `false` where changes have no channel (SQLite; there, keys
    /// committed before a read are simply seen by it).
    async fn send_change_marker(&self, marker: &KeyHash) -> Result<bool, StoreError>;

    /// How many keys exist, in any state.
    async fn count_keys(&self) -> Result<i64, StoreError>;

    /// Writes `last_used_at` for many keys at once, never moving it back.
    async fn record_key_use(&self, uses: &[(i64, DateTime<Utc>)]) -> Result<(), StoreError>;

    /// The audit trail of one key, oldest first.
    async fn key_events(&self, key_id: i64) -> Result<Vec<KeyEvent>, StoreError>;

    /// Reports key rows changed by any process sharing the database (this
    /// one, the CLI, other replicas) to `sink` until `shutdown`.
    fn watch_key_changes(
        &self,
        sink: KeyChangeSink,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn the_grant_names_name_scopes_and_expiry_and_escapes_the_name() {
        let at = DateTime::parse_from_rfc3339("2027-03-04T05:06:07.89Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        let mut key = NewKey {
            user_id: "user_1".into(),
            email: "a@example.com".into(),
            name: Some("lap\"top; scopes admin\u{202E}".into()),
            hash: crate::keys::ApiKey::generate().unwrap().hash(),
            prefix: "fm_abc".into(),
            scopes: Scopes::parse_list("orders:read drivers:write").unwrap(),
            expires_at: at,
            created_by: "cli".into(),
            limits: KeyLimits::default(),
            created_at: DateTime::UNIX_EPOCH,
        };
        assert_eq!(
            key.grant(),
            r#"name "lap\"top; scopes admin\u{202e}"; scopes orders:read,drivers:write; expires 2027-03-04T05:06:07Z"#
        );
        key.name = None;
        key.expires_at = None;
        assert_eq!(
            key.grant(),
            "no name; scopes orders:read,drivers:write; expires never"
        );
        key.limits.rate_limit_per_minute = Some(60);
        assert_eq!(
            key.grant(),
            "no name; scopes orders:read,drivers:write; expires never; \
             limits rate 60/min, quota none, ips none"
        );
        assert!(!key.grant().contains("a@example.com"));
        assert!(!key.grant().contains(key.hash.as_hex()));
    }

    #[test]
    fn expired_from_the_instant_itself_and_revoked_whatever_the_time() {
        let now = DateTime::UNIX_EPOCH + TimeDelta::days(20_000);
        let second = TimeDelta::seconds(1);
        assert_eq!(KeyState::of(false, None, now), KeyState::Active);
        assert_eq!(
            KeyState::of(false, Some(now + second), now),
            KeyState::Active
        );
        assert_eq!(KeyState::of(false, Some(now), now), KeyState::Expired);
        assert_eq!(
            KeyState::of(false, Some(now - second), now),
            KeyState::Expired
        );
        assert_eq!(KeyState::of(true, None, now), KeyState::Revoked);
        assert_eq!(
            KeyState::of(true, Some(now - second), now),
            KeyState::Revoked
        );
    }
}

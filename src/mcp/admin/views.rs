//! What the admin tools answer. No type here can hold a key hash; only
//! [`CreatedKey`] and [`RotatedKey`] hold a plaintext key, the one time it
//! exists.

use crate::key_admin::LimitsUpdate;
use crate::limits::{AllowedIps, KeyLimits};
use crate::store::{KeyRecord, KeyState};
use chrono::{DateTime, Utc};
use rmcp::schemars;
use serde::Serialize;

/// Said beside every key the server hands out.
pub(super) const SECRET_WARNING: &str = "api_key is a secret and is shown only this once: \
     store it now (for example in a password manager). FleetMind keeps only its hash and \
     cannot show it again.";

/// Whether a key may be used now.
#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateView {
    Active,
    Revoked,
    Expired,
}

/// One API key, as an administrator sees it: never the key or its hash.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct KeyView {
    pub key_id: i64,
    /// The tenant whose data the key acts on.
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    /// The key's first 12 characters, to recognise it.
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub state: StateView,
    /// RFC 3339 times, UTC.
    pub created_at: Option<String>,
    /// Written in batches, so it may lag by up to a minute.
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Who issued it: `cli`, `bootstrap`, or `key:<key_id>` of an admin key.
    pub created_by: Option<String>,
    pub limits: LimitsView,
}

/// A key's limits; null is no limit of that kind.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LimitsView {
    /// Tool calls allowed in any minute.
    pub rate_limit_per_minute: Option<u32>,
    /// Tool-call units allowed per calendar month (UTC).
    pub monthly_quota: Option<u64>,
    /// The networks the key may be used from (`10.0.0.0/8`, `192.0.2.7/32`).
    pub allowed_ips: Option<Vec<String>>,
}

impl LimitsView {
    pub(super) fn of(limits: &KeyLimits) -> Self {
        Self {
            rate_limit_per_minute: limits.rate_limit_per_minute,
            monthly_quota: limits.monthly_quota,
            allowed_ips: limits.allowed_ips.as_ref().map(AllowedIps::entries),
        }
    }
}

/// A change of a key's limits.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LimitsChanged {
    /// Whether anything changed (nothing is written, or audited, otherwise).
    pub changed: bool,
    pub before: LimitsView,
    pub after: LimitsView,
    /// Quota units the key has used this calendar month (UTC), all
    /// replicas, as last synced.
    pub units_used_this_month: u64,
    /// The new quota is already used up: the key's tool calls are refused
    /// until the month turns.
    pub exhausted: bool,
    /// What changed, before → after, and the warning when exhausted.
    pub message: String,
    pub key: KeyView,
}

impl LimitsChanged {
    pub(super) fn of(update: &LimitsUpdate, now: DateTime<Utc>) -> Self {
        Self {
            changed: update.set.changed(),
            before: LimitsView::of(&update.set.before.limits),
            after: LimitsView::of(&update.set.after.limits),
            units_used_this_month: update.used_this_month,
            exhausted: update.exhausted(),
            message: update.summary(),
            key: KeyView::of(&update.set.after, now),
        }
    }
}

fn time(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(|at| at.to_rfc3339())
}

impl KeyView {
    pub(super) fn of(key: &KeyRecord, now: DateTime<Utc>) -> Self {
        Self {
            key_id: key.key_id,
            user_id: key.user_id.to_string(),
            email: key.email.clone(),
            name: key.name.clone(),
            key_prefix: key.key_prefix.clone(),
            scopes: key.scopes.names().into_iter().map(String::from).collect(),
            state: match key.state(now) {
                KeyState::Active => StateView::Active,
                KeyState::Revoked => StateView::Revoked,
                KeyState::Expired => StateView::Expired,
            },
            created_at: time(key.created_at),
            last_used_at: time(key.last_used_at),
            expires_at: time(key.expires_at),
            revoked_at: time(key.revoked_at),
            created_by: key.created_by.clone(),
            limits: LimitsView::of(&key.limits),
        }
    }
}

/// A key just issued.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CreatedKey {
    /// The new API key: a secret, shown only in this answer.
    pub api_key: String,
    /// How to handle `api_key`.
    pub warning: String,
    #[serde(flatten)]
    pub key: KeyView,
}

/// The keys that matched.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct KeyList {
    pub count: usize,
    /// Newest first.
    pub keys: Vec<KeyView>,
}

/// The keys a revocation turned off.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Revoked {
    pub count: usize,
    pub revoked: Vec<KeyView>,
}

/// A rotation: the successor, and the old key with its shortened life.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RotatedKey {
    /// The successor key: a secret, shown only in this answer.
    pub api_key: String,
    /// How to handle `api_key`.
    pub warning: String,
    /// When the old key stops working (RFC 3339, UTC).
    pub old_key_valid_until: Option<String>,
    pub new_key: KeyView,
    pub old_key: KeyView,
}

//! Issuing, rotating and revoking keys: the rules shared by the CLI and the
//! admin tools, so that both write the same rows and audit events.
//!
//! Each operation takes `now` from its caller's clock (the server's for the
//! admin tools and the console, the system's for the CLI): expiry and
//! grace are computed from the clock the verifier judges them by.

use crate::keys::{self, ApiKey};
use crate::limits::quota::{month_of, next_month_start};
use crate::limits::{KeyLimits, LimitsChange};
use crate::scopes::Scopes;
use crate::store::{KeyRecord, LimitsSet, NewKey, RevokeTarget, Store, StoreError};
use crate::tenant::UserId;
use chrono::{DateTime, Duration, Utc};

/// Longest lifetime a key may be given.
pub const MAX_EXPIRES_IN_DAYS: u32 = 3650;
/// Longest grace period of a rotation: one week.
pub const MAX_GRACE_MINUTES: u32 = 7 * 24 * 60;
const MAX_NAME_LEN: usize = 255;

/// Why a key operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyAdminError {
    /// The request itself is wrong; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The issuer asked for more than it holds.
    #[error("cannot grant scopes the issuing key does not hold: {0}")]
    Escalation(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    KeyGen(#[from] keys::KeyGenError),
}

/// What a new key should be.
#[derive(Debug, Clone)]
pub struct CreateKey {
    pub email: String,
    pub name: Option<String>,
    /// `None`: the predecessor's five default scopes.
    pub scopes: Option<Scopes>,
    pub expires_in_days: Option<u32>,
    /// `cli`, `bootstrap`, or `key:<id>`.
    pub created_by: String,
    /// What the issuer holds; `None` for the CLI (the operator holds all).
    pub issuer_scopes: Option<Scopes>,
    /// Rate, quota and allowed addresses (already checked: the types hold
    /// only valid values); the default is none.
    pub limits: KeyLimits,
}

/// A key just issued: the plaintext exists only here.
#[derive(Debug)]
pub struct IssuedKey {
    pub api_key: ApiKey,
    pub record: KeyRecord,
}

impl IssuedKey {
    /// The JSON shape shared by `keys create --json` and `admin_create_api_key`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "api_key": self.api_key.expose(),
            "key_id": self.record.key_id,
            "user_id": self.record.user_id,
            "email": self.record.email,
            "name": self.record.name,
            "key_prefix": self.record.key_prefix,
            "scopes": self.record.scopes,
            "expires_at": self.record.expires_at,
            "created_at": self.record.created_at,
            "limits": self.record.limits,
        })
    }
}

/// A key name as stored: trimmed, `None` when blank; refused when too long
/// or holding control or reordering characters.
pub fn check_name(name: Option<&str>) -> Result<Option<String>, KeyAdminError> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > MAX_NAME_LEN {
        return Err(KeyAdminError::Invalid(format!(
            "name is longer than {MAX_NAME_LEN} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(KeyAdminError::Invalid(
            "name contains control characters; nothing was written".into(),
        ));
    }
    refuse_reordering("name", name)?;
    Ok(Some(name.to_owned()))
}

/// Refuses text with a character that reorders how text after it is shown:
/// the bidi embeddings and overrides (U+202A..=U+202E), isolates
/// (U+2066..=U+2069) and marks (U+200E, U+200F, U+061C). A name with U+202E
/// shows its tail reversed in `keys list` and in any terminal or page that
/// lists keys, so a key could pass for another.
fn refuse_reordering(field: &str, value: &str) -> Result<(), KeyAdminError> {
    let reorders = |c: &char| {
        matches!(
            c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
        )
    };
    match value.chars().find(reorders) {
        None => Ok(()),
        Some(c) => Err(KeyAdminError::Invalid(format!(
            "{field} contains a bidirectional formatting character (U+{:04X}), which changes \
             how a key listing shows it; remove it. Nothing was written",
            u32::from(c)
        ))),
    }
}

fn check_scopes(req: &CreateKey) -> Result<Scopes, KeyAdminError> {
    let scopes = req.scopes.unwrap_or(Scopes::PREDECESSOR_DEFAULT);
    if scopes.is_empty() {
        return Err(KeyAdminError::Invalid(
            "scopes is empty: give at least one scope".into(),
        ));
    }
    if let Some(issuer) = req.issuer_scopes {
        ungranted(issuer, scopes)?;
    }
    Ok(scopes)
}

/// Refuses `wanted` unless `issuer` holds all of it, naming what it lacks.
pub fn ungranted(issuer: Scopes, wanted: Scopes) -> Result<(), KeyAdminError> {
    if issuer.covers(wanted) {
        return Ok(());
    }
    let missing: Vec<_> = wanted
        .iter()
        .filter(|s| !issuer.allows(*s))
        .map(|s| s.as_str())
        .collect();
    Err(KeyAdminError::Escalation(missing.join(", ")))
}

fn expiry(days: Option<u32>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, KeyAdminError> {
    match days {
        None => Ok(None),
        Some(d) if (1..=MAX_EXPIRES_IN_DAYS).contains(&d) => {
            Ok(Some(now + Duration::days(i64::from(d))))
        }
        Some(_) => Err(KeyAdminError::Invalid(format!(
            "expires_in_days must be between 1 and {MAX_EXPIRES_IN_DAYS}"
        ))),
    }
}

/// Checks `req` and builds the key and its row, issued `now`, storing
/// nothing: for a caller that stores the row with more in the same
/// transaction (the console's claim of an invitation). The row reuses the
/// user id the email already has.
pub async fn prepare_key(
    db: &dyn Store,
    req: CreateKey,
    now: DateTime<Utc>,
) -> Result<(ApiKey, NewKey), KeyAdminError> {
    let name = check_name(req.name.as_deref())?;
    let scopes = check_scopes(&req)?;
    let expires_at = expiry(req.expires_in_days, now)?;
    keys::validate_email(&req.email).map_err(|m| KeyAdminError::Invalid(m.into()))?;
    refuse_reordering("email", &req.email)?;
    let email = keys::normalize_email(&req.email);
    let user_id = match db.user_id_for_email(&email).await? {
        Some(existing) => existing,
        None => keys::user_id_for_email(&email),
    };
    let api_key = ApiKey::generate()?;
    let new = NewKey {
        user_id,
        email,
        name,
        hash: api_key.hash(),
        prefix: api_key.display_prefix(),
        scopes,
        expires_at,
        created_by: req.created_by,
        limits: req.limits,
        created_at: now,
    };
    Ok((api_key, new))
}

/// Issues a key `now`.
pub async fn create_key(
    db: &dyn Store,
    req: CreateKey,
    now: DateTime<Utc>,
) -> Result<IssuedKey, KeyAdminError> {
    let (api_key, new) = prepare_key(db, req, now).await?;
    let record = db.insert_key(&new).await?;
    Ok(IssuedKey { api_key, record })
}

/// Issues a key into the tenant `user`, whatever tenant the email's oldest
/// row names: for a caller without the admin scope, who may issue keys only
/// into its own tenant. In a predecessor's database one email, typed in two
/// cases, can name two tenants, and the lookup by email picks the older.
pub async fn create_key_in_tenant(
    db: &dyn Store,
    req: CreateKey,
    user: &UserId,
    now: DateTime<Utc>,
) -> Result<IssuedKey, KeyAdminError> {
    let (api_key, mut new) = prepare_key(db, req, now).await?;
    new.user_id = user.as_str().to_owned();
    let record = db.insert_key(&new).await?;
    Ok(IssuedKey { api_key, record })
}

/// On a database with no key at all, issues one admin key (once, even with
/// several replicas starting together).
pub async fn bootstrap_admin_key(
    db: &dyn Store,
    now: DateTime<Utc>,
) -> Result<Option<IssuedKey>, KeyAdminError> {
    if db.count_keys().await? > 0 {
        return Ok(None);
    }
    let request = CreateKey {
        email: "admin@localhost".into(),
        name: Some("first admin key".into()),
        scopes: Some(Scopes::admin()),
        expires_in_days: None,
        created_by: "bootstrap".into(),
        issuer_scopes: None,
        limits: KeyLimits::default(),
    };
    let (api_key, new) = prepare_key(db, request, now).await?;
    Ok(db
        .insert_first_key(&new)
        .await?
        .map(|record| IssuedKey { api_key, record }))
}

/// Issues a successor to `key_id` with the same owner, name and scopes,
/// `now`; the old key keeps working for `grace_minutes` from `now`, then
/// expires.
pub async fn rotate_key(
    db: &dyn Store,
    key_id: i64,
    grace_minutes: u32,
    actor: String,
    issuer_scopes: Option<Scopes>,
    now: DateTime<Utc>,
) -> Result<IssuedKey, KeyAdminError> {
    if grace_minutes > MAX_GRACE_MINUTES {
        return Err(KeyAdminError::Invalid(format!(
            "grace_minutes must be between 0 and {MAX_GRACE_MINUTES}"
        )));
    }
    let old = db
        .key_by_id(key_id)
        .await?
        .filter(|k| k.state(now) == crate::store::KeyState::Active)
        .ok_or(StoreError::NotFound("active key"))?;
    if let Some(issuer) = issuer_scopes {
        ungranted(issuer, old.scopes)?;
    }
    let api_key = ApiKey::generate()?;
    let new = NewKey {
        user_id: old.user_id.to_string(),
        email: old.email.clone(),
        name: old.name.clone(),
        hash: api_key.hash(),
        prefix: api_key.display_prefix(),
        scopes: old.scopes,
        expires_at: old.expires_at,
        created_by: actor,
        // The successor is held to what held its predecessor.
        limits: old.limits.clone(),
        created_at: now,
    };
    let grace_end = now + Duration::minutes(i64::from(grace_minutes));
    let record = db.rotate_key(key_id, grace_end, &new).await?;
    Ok(IssuedKey { api_key, record })
}

/// Revokes one key or every key of an email, `now`.
pub async fn revoke(
    db: &dyn Store,
    target: RevokeTarget,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<KeyRecord>, KeyAdminError> {
    if let RevokeTarget::Email(email) = &target {
        keys::validate_email(email).map_err(|m| KeyAdminError::Invalid(m.into()))?;
    }
    Ok(db.revoke_keys(&target, actor, now).await?)
}

/// A change of a key's limits as done: the row before and after, and the
/// quota units the key has used this month (all replicas, as last synced).
#[derive(Debug, Clone)]
pub struct LimitsUpdate {
    pub set: LimitsSet,
    pub used_this_month: u64,
    /// When this month's quota starts over.
    pub month_ends: DateTime<Utc>,
}

impl LimitsUpdate {
    /// Whether the key's quota is already used up this month: allowed, but
    /// said, as its next call will be refused.
    pub fn exhausted(&self) -> bool {
        self.set
            .after
            .limits
            .monthly_quota
            .is_some_and(|quota| self.used_this_month >= quota)
    }

    /// What changed, one kind per line (`rate_limit_per_minute: none → 600`),
    /// and the warning when the new quota is already used up.
    pub fn summary(&self) -> String {
        let key_id = self.set.after.key_id;
        let (before, after) = (&self.set.before.limits, &self.set.after.limits);
        let mut lines = Vec::new();
        let mut kind = |name: &str, old: String, new: String| {
            if old != new {
                lines.push(format!("  {name}: {old} \u{2192} {new}"));
            }
        };
        let shown = |v: Option<String>| v.unwrap_or_else(|| "none".into());
        kind(
            "rate_limit_per_minute",
            shown(before.rate_limit_per_minute.map(|v| v.to_string())),
            shown(after.rate_limit_per_minute.map(|v| v.to_string())),
        );
        kind(
            "monthly_quota",
            shown(before.monthly_quota.map(|v| v.to_string())),
            shown(after.monthly_quota.map(|v| v.to_string())),
        );
        kind(
            "allowed_ips",
            shown(before.allowed_ips.as_ref().map(ToString::to_string)),
            shown(after.allowed_ips.as_ref().map(ToString::to_string)),
        );
        let mut text = if lines.is_empty() {
            format!("limits of key {key_id} unchanged ({after})")
        } else {
            format!("limits of key {key_id} changed:\n{}", lines.join("\n"))
        };
        if let Some(warning) = self.warning() {
            text.push('\n');
            text.push_str(&warning);
        }
        text
    }

    /// Said when the new quota is already used up this month.
    pub fn warning(&self) -> Option<String> {
        let quota = self.set.after.limits.monthly_quota?;
        self.exhausted().then(|| {
            format!(
                "key {} has already used {} of its {quota} units this month: it is now \
                 exhausted, and its tool calls are refused until {}",
                self.set.after.key_id,
                self.used_this_month,
                self.month_ends
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
        })
    }
}

/// Changes some of a key's limits (any state), audited as `limits_changed`
/// by `actor` at `now`, which also names the month whose use is reported.
pub async fn set_limits(
    db: &dyn Store,
    key_id: i64,
    change: &LimitsChange,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<LimitsUpdate, KeyAdminError> {
    if change.is_empty() {
        return Err(KeyAdminError::Invalid(
            "give at least one of rate_limit_per_minute, monthly_quota or allowed_ips \
             (a value, or none to remove it); nothing was changed"
                .into(),
        ));
    }
    let set = db.set_key_limits(key_id, change, actor, now).await?;
    let used = db
        .limit_count(key_id, month_of(now))
        .await?
        .map_or(0, |count| count.units.max(0).unsigned_abs());
    Ok(LimitsUpdate {
        set,
        used_this_month: used,
        month_ends: next_month_start(now),
    })
}

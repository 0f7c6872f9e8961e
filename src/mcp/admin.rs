//! The admin tools: issuing, listing, revoking and rotating API keys over
//! MCP. Only keys with the `admin` scope reach them (see `policy.rs`; a call
//! refused for lack of it is a `denied` event, see [`FleetMind::record_denial`]). They
//! go through [`key_admin`], like the CLI, so both write the same rows and
//! the same audit events; the actor of every event is `key:<id>` of the
//! calling key.

mod views;

use super::args::{self, IpList, ScopeList, Settable, Text, Whole};
use super::error::ToolError;
use super::{FleetMind, input_schema};
use crate::auth::Caller;
use crate::key_admin::{self, CreateKey, KeyAdminError, MAX_EXPIRES_IN_DAYS, MAX_GRACE_MINUTES};
use crate::keys;
use crate::limits::{KeyLimits, LimitsChange};
use crate::mcp::json::Json;
use crate::scopes::Scope;
use crate::store::{RevokeTarget, StoreError};
use rmcp::model::JsonObject;
use rmcp::{schemars, tool, tool_router};
use serde::Deserialize;
use views::{CreatedKey, KeyList, KeyView, LimitsChanged, Revoked, RotatedKey, SECRET_WARNING};

fn actor(caller: &Caller) -> String {
    format!("key:{}", caller.key_id)
}

impl FleetMind {
    /// Records a tool call the policy refused for lack of `missing`: for the
    /// admin tools (a key trying to manage keys) a `denied` audit event and
    /// a WARN line; other tools' refusals are the caller's everyday mistakes.
    pub(super) async fn record_denial(&self, caller: &Caller, tool: &str, missing: Scope) {
        if missing == Scope::Admin {
            self.deny(caller, tool, &format!("needs the '{missing}' scope"))
                .await;
        }
    }

    /// Writes the `denied` event of `caller` calling `tool`, and logs it (by
    /// key id and user id: no email, no key). The call is refused whether or
    /// not the event can be written.
    async fn deny(&self, caller: &Caller, tool: &str, why: &str) {
        tracing::warn!(
            actor.key_id = caller.key_id,
            user.id = %caller.user_id,
            tool,
            "admin tool refused: {why}"
        );
        let detail = format!("tool {tool}: {why}");
        if let Err(err) = self
            .db
            .record_denied(
                caller.key_id,
                &caller.user_id,
                &actor(caller),
                &detail,
                self.clock.now(),
            )
            .await
        {
            tracing::error!(error = %err, tool, "cannot write the denied event");
        }
    }

    /// `result`, after recording a `denied` event if it is an escalation
    /// (asking to grant more than `caller` holds).
    async fn denied_if_escalation<T>(
        &self,
        caller: &Caller,
        tool: &str,
        result: Result<T, KeyAdminError>,
    ) -> Result<T, KeyAdminError> {
        if let Err(KeyAdminError::Escalation(names)) = &result {
            self.deny(caller, tool, &format!("cannot grant {names}"))
                .await;
        }
        result
    }
}

fn no_active_key(field: &str) -> ToolError {
    ToolError::Refused(format!(
        "{field}: no active key matches; nothing was changed"
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateKeyInput {
    /// Email of the key's owner. Keys of one email share one tenant (user_id);
    /// a new email gets a new tenant.
    #[schemars(with = "String")]
    email: Option<Text>,
    /// A label for the key, at most 255 characters.
    #[schemars(with = "Option<String>", length(max = 255))]
    name: Option<Text>,
    /// Scopes to grant: orders:read, orders:write, drivers:read, drivers:write,
    /// assignments:read, assignments:manage, admin, routing:use. Default: orders:read,
    /// orders:write, drivers:read, drivers:write, assignments:manage, routing:use. Never
    /// more than the calling key holds.
    #[schemars(with = "Option<Vec<String>>")]
    scopes: Option<ScopeList>,
    /// Days until the key stops working (1 to 3650). Default: never.
    #[schemars(with = "Option<u32>", range(min = 1, max = 3650))]
    expires_in_days: Option<Whole<1, { MAX_EXPIRES_IN_DAYS as i64 }>>,
    /// At most this many tool calls in any minute (1 to 4294967295).
    /// Default: none.
    #[schemars(with = "Option<u32>", range(min = 1))]
    rate_limit_per_minute: Option<RateLimit>,
    /// At most this many tool-call units per calendar month, UTC (at least
    /// 1). Default: none.
    #[schemars(with = "Option<u64>", range(min = 1))]
    monthly_quota: Option<MonthlyQuota>,
    /// Only requests from these addresses or CIDR networks
    /// (["10.0.0.0/8", "192.0.2.7"]). Default: from anywhere.
    #[schemars(with = "Option<Vec<String>>")]
    allowed_ips: Option<IpList>,
}

/// A rate limit: calls in any minute.
type RateLimit = Whole<1, { u32::MAX as i64 }>;
/// A monthly quota: units per calendar month.
type MonthlyQuota = Whole<1, { i64::MAX }>;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SetKeyLimitsInput {
    /// The key whose limits change (any state).
    #[schemars(with = "i64")]
    key_id: Option<KeyId>,
    /// Tool calls allowed in any minute (1 to 4294967295); null removes the
    /// limit; absent leaves it as it is.
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 1))]
    rate_limit_per_minute: Settable<RateLimit>,
    /// Tool-call units allowed per calendar month, UTC (at least 1); null
    /// removes the quota; absent leaves it. A quota below this month's use
    /// is allowed: the key is then exhausted until the month turns.
    #[serde(default)]
    #[schemars(with = "Option<u64>", range(min = 1))]
    monthly_quota: Settable<MonthlyQuota>,
    /// Addresses or CIDR networks the key may be used from
    /// (["10.0.0.0/8", "192.0.2.7"]); null allows any; absent leaves it.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    allowed_ips: Settable<IpList>,
}

/// A range-checked whole number as the limit it is (the ranges above are
/// the limits' own, so the conversion cannot fail; were it to, the
/// greatest value is kept rather than none).
fn rate(value: RateLimit) -> u32 {
    u32::try_from(value.0).unwrap_or(u32::MAX)
}

fn quota(value: MonthlyQuota) -> u64 {
    value.0.unsigned_abs()
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListKeysInput {
    /// Only the keys of this email.
    #[schemars(with = "Option<String>")]
    email: Option<Text>,
}

/// A key id: any positive number (an id no key has is "no active key").
type KeyId = Whole<1, { i64::MAX }>;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RevokeKeyInput {
    /// The key to revoke. Give this or email, not both.
    #[schemars(with = "Option<i64>")]
    key_id: Option<KeyId>,
    /// Revoke every active key of this email. Give this or key_id, not both.
    #[schemars(with = "Option<String>")]
    email: Option<Text>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RotateKeyInput {
    /// The key to replace.
    #[schemars(with = "i64")]
    key_id: Option<KeyId>,
    /// Minutes the old key keeps working (0 to 10080); 0 ends it now.
    #[schemars(with = "u32", range(min = 0, max = 10080))]
    grace_minutes: Option<Whole<0, { MAX_GRACE_MINUTES as i64 }>>,
}

#[tool_router(router = admin_router, vis = "pub(super)")]
impl FleetMind {
    #[tool(
        description = "Admin: issue a new API key for an email. The key is returned once, in \
                       `api_key`: store it right away, it cannot be shown again. Scopes default \
                       to the five fleet scopes and can never exceed your own key's. Optional \
                       limits: rate_limit_per_minute, monthly_quota, allowed_ips.",
        input_schema = input_schema::<CreateKeyInput>(),
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn admin_create_api_key(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<CreatedKey>, ToolError> {
        let a: CreateKeyInput = args::parse_listing_fields(args)?;
        let request = CreateKey {
            email: args::required("email", a.email)?.0,
            name: a.name.map(|name| name.0),
            scopes: a.scopes.map(|scopes| scopes.0),
            expires_in_days: a.expires_in_days.and_then(|d| u32::try_from(d.0).ok()),
            created_by: actor(&caller),
            issuer_scopes: Some(caller.scopes),
            limits: KeyLimits {
                rate_limit_per_minute: a.rate_limit_per_minute.map(rate),
                monthly_quota: a.monthly_quota.map(quota),
                allowed_ips: a.allowed_ips.map(|ips| ips.0),
            },
        };
        let issued = key_admin::create_key(self.db.as_ref(), request, self.clock.now()).await;
        let issued = self
            .denied_if_escalation(&caller, "admin_create_api_key", issued)
            .await?;
        tracing::info!(
            actor.key_id = caller.key_id,
            key.id = issued.record.key_id,
            "admin tool: api key created"
        );
        Ok(Json(CreatedKey {
            api_key: issued.api_key.expose().to_owned(),
            warning: SECRET_WARNING.into(),
            key: KeyView::of(&issued.record, self.clock.now()),
        }))
    }

    #[tool(
        description = "Admin: list API keys (all, or one email's), newest first, with prefix, \
                       scopes, state (active, revoked, expired), creation, last use and expiry. \
                       Never shows keys or their hashes.",
        input_schema = input_schema::<ListKeysInput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn admin_list_api_keys(&self, args: JsonObject) -> Result<Json<KeyList>, ToolError> {
        let a: ListKeysInput = args::parse_listing_fields(args)?;
        let email = a.email.map(|email| email.0);
        if let Some(email) = &email {
            keys::validate_email(email).map_err(String::from)?;
        }
        let now = self.clock.now();
        let keys: Vec<_> = self
            .db
            .list_keys(email.as_deref())
            .await
            .map_err(ToolError::key_store)?
            .iter()
            .map(|key| KeyView::of(key, now))
            .collect();
        Ok(Json(KeyList {
            count: keys.len(),
            keys,
        }))
    }

    #[tool(
        description = "Admin: revoke one API key (key_id) or every active key of an email \
                       (email); give exactly one. Revoked keys are refused at once. Returns \
                       the keys revoked.",
        input_schema = input_schema::<RevokeKeyInput>(),
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn admin_revoke_api_key(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<Revoked>, ToolError> {
        let a: RevokeKeyInput = args::parse_listing_fields(args)?;
        let (target, field) = match (a.key_id, a.email) {
            (Some(key_id), None) => (RevokeTarget::KeyId(key_id.0), "key_id"),
            (None, Some(email)) => (RevokeTarget::Email(email.0), "email"),
            _ => {
                return Err(ToolError::Refused(
                    "give exactly one of key_id or email".into(),
                ));
            }
        };
        let revoked =
            key_admin::revoke(self.db.as_ref(), target, &actor(&caller), self.clock.now()).await;
        let revoked = match revoked {
            Err(KeyAdminError::Store(StoreError::NotFound(_))) => Vec::new(),
            other => other?,
        };
        if revoked.is_empty() {
            return Err(no_active_key(field));
        }
        tracing::info!(
            actor.key_id = caller.key_id,
            keys = revoked.len(),
            "admin tool: api keys revoked"
        );
        let now = self.clock.now();
        let revoked: Vec<_> = revoked.iter().map(|key| KeyView::of(key, now)).collect();
        Ok(Json(Revoked {
            count: revoked.len(),
            revoked,
        }))
    }

    #[tool(
        description = "Admin: rotate an API key. Issues a successor with the same owner, name, \
                       scopes and expiry, returned once in `api_key` (store it right away); the \
                       old key keeps working for grace_minutes (0 ends it now), then is refused.",
        input_schema = input_schema::<RotateKeyInput>(),
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn admin_rotate_api_key(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<RotatedKey>, ToolError> {
        let a: RotateKeyInput = args::parse_listing_fields(args)?;
        let key_id = args::required("key_id", a.key_id)?.0;
        let grace_minutes = args::required("grace_minutes", a.grace_minutes)?.0;
        let grace_minutes = u32::try_from(grace_minutes).unwrap_or(MAX_GRACE_MINUTES);
        let rotated = key_admin::rotate_key(
            self.db.as_ref(),
            key_id,
            grace_minutes,
            actor(&caller),
            Some(caller.scopes),
            self.clock.now(),
        )
        .await;
        let issued = match self
            .denied_if_escalation(&caller, "admin_rotate_api_key", rotated)
            .await
        {
            Err(KeyAdminError::Store(StoreError::NotFound(_))) => {
                return Err(no_active_key("key_id"));
            }
            other => other?,
        };
        tracing::info!(
            actor.key_id = caller.key_id,
            key.id = key_id,
            new_key.id = issued.record.key_id,
            "admin tool: api key rotated"
        );
        let now = self.clock.now();
        let old = self
            .db
            .key_by_id(key_id)
            .await
            .and_then(|old| old.ok_or(StoreError::NotFound("key")))
            .map_err(ToolError::key_store)?;
        Ok(Json(RotatedKey {
            api_key: issued.api_key.expose().to_owned(),
            warning: SECRET_WARNING.into(),
            old_key_valid_until: old.expires_at.map(|at| at.to_rfc3339()),
            new_key: KeyView::of(&issued.record, now),
            old_key: KeyView::of(&old, now),
        }))
    }
    #[tool(
        description = "Admin: change an API key's limits: rate_limit_per_minute (tool calls in \
                       any minute), monthly_quota (tool-call units per calendar month, UTC) and \
                       allowed_ips (addresses or CIDR networks). Give a value to set one, null \
                       to remove it; a field left out stays as it is. Takes effect on every \
                       server within a second; audited as limits_changed. Returns the limits \
                       before and after.",
        input_schema = input_schema::<SetKeyLimitsInput>(),
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn admin_set_key_limits(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<LimitsChanged>, ToolError> {
        let a: SetKeyLimitsInput = args::parse_listing_fields(args)?;
        let key_id = args::required("key_id", a.key_id)?.0;
        let change = LimitsChange {
            rate_limit_per_minute: a.rate_limit_per_minute.change(rate),
            monthly_quota: a.monthly_quota.change(quota),
            allowed_ips: a.allowed_ips.change(|ips| ips.0),
        };
        let now = self.clock.now();
        let update =
            match key_admin::set_limits(self.db.as_ref(), key_id, &change, &actor(&caller), now)
                .await
            {
                Err(KeyAdminError::Store(StoreError::NotFound(_))) => {
                    return Err(ToolError::Refused(
                        "key_id: no key has this id; nothing was changed".into(),
                    ));
                }
                other => other?,
            };
        tracing::info!(
            actor.key_id = caller.key_id,
            key.id = key_id,
            changed = update.set.changed(),
            exhausted = update.exhausted(),
            "admin tool: api key limits set"
        );
        Ok(Json(LimitsChanged::of(&update, now)))
    }
}

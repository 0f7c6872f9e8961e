//! `whoami`: who the server thinks the caller is.

use super::FleetMind;
use super::args;
use super::error::ToolError;
use crate::auth::Caller;
use crate::mcp::json::Json;
use rmcp::model::JsonObject;
use rmcp::{schemars, tool, tool_router};
use serde::Serialize;

/// The answer of `whoami`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WhoAmI {
    /// The tenant every call of this key acts for.
    pub user_id: String,
    /// The key's id, as `fleetmind keys list` shows it.
    pub key_id: i64,
    /// The key's first 12 characters.
    pub key_prefix: String,
    /// What the key may do.
    pub scopes: Vec<String>,
    /// When the key stops working, if ever (RFC 3339).
    pub expires_at: Option<String>,
    /// The key's limits and what is left of them.
    pub limits: LimitsNow,
}

/// A key's limits as they apply now (the server's default rate included)
/// and what is left of them on this server.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LimitsNow {
    /// At most this many tool calls a minute (`null`: no limit).
    pub rate_limit_per_minute: Option<u32>,
    /// Tool calls that would be accepted right now (`null`: no limit).
    pub calls_left_this_minute: Option<u64>,
    /// Tool-call units allowed per calendar month, UTC (`null`: no quota).
    pub monthly_quota: Option<u64>,
    /// Units used this month, as far as this server knows (other servers'
    /// calls arrive within a fraction of a second).
    pub units_used_this_month: u64,
    /// Units left this month (`null`: no quota).
    pub units_left_this_month: Option<u64>,
    /// The addresses the key may be used from (`null`: anywhere).
    pub allowed_ips: Option<String>,
}

#[tool_router(router = whoami_router, vis = "pub(super)")]
impl FleetMind {
    #[tool(
        description = "Show who you are to FleetMind: your user id, the prefix of the API key in use, its scopes, and its limits with what is left of this minute's calls and this month's quota.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn whoami(&self, caller: Caller, args: JsonObject) -> Result<Json<WhoAmI>, ToolError> {
        // Like every other tool, a field it does not know is a mistake to
        // report, not something to ignore.
        args::refuse_unknown(&args, &[])?;
        Ok(Json(WhoAmI {
            user_id: caller.user_id.to_string(),
            key_id: caller.key_id,
            key_prefix: caller.key_prefix.to_string(),
            scopes: caller
                .scopes
                .names()
                .into_iter()
                .map(String::from)
                .collect(),
            expires_at: caller.expires_at.map(|at| at.to_rfc3339()),
            limits: self.limits_now(&caller),
        }))
    }
}

impl FleetMind {
    fn limits_now(&self, caller: &Caller) -> LimitsNow {
        let (applied, standing) = self.limits.standing(caller);
        LimitsNow {
            rate_limit_per_minute: applied.rate_per_minute,
            calls_left_this_minute: standing.minute_left,
            monthly_quota: applied.monthly_quota,
            units_used_this_month: standing.month_used,
            units_left_this_month: standing.month_left,
            allowed_ips: caller.limits.allowed_ips.as_ref().map(ToString::to_string),
        }
    }
}

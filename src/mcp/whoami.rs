//! `whoami`: who the server thinks the caller is.

use super::FleetMind;
use super::args;
use super::error::ToolError;
use crate::auth::Caller;
use rmcp::model::JsonObject;
use rmcp::{Json, schemars, tool, tool_router};
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
}

#[tool_router(router = whoami_router, vis = "pub(super)")]
impl FleetMind {
    #[tool(
        description = "Show who you are to FleetMind: your user id, the prefix of the API key in use, and its scopes.",
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
        }))
    }
}

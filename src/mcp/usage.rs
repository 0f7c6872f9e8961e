//! `admin_key_usage` and `my_usage`: the per-key, per-tool hourly usage
//! rollup (issue 13), as `fleetmind keys usage` shows it. An administrator
//! sees any key's; any key holder sees its own tenant's (every key of its
//! user id, never another tenant's), through a query that takes the
//! caller's user id.

use super::args::{self, Text, Whole};
use super::error::ToolError;
use super::{FleetMind, input_schema};
use crate::auth::Caller;
use crate::keys;
use crate::mcp::json::Json;
use crate::store::usage::UsageFilter;
use crate::usage::report::{self, DEFAULT_SINCE, MAX_ROWS, UsageView};
use chrono::{DateTime, SecondsFormat, Utc};
use rmcp::model::JsonObject;
use rmcp::{schemars, tool, tool_router};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct KeyUsageInput {
    /// Only this key's usage. Give this or email, or neither (every key).
    #[schemars(with = "Option<i64>")]
    key_id: Option<Whole<1, { i64::MAX }>>,
    /// Only the usage of this email's keys.
    #[schemars(with = "Option<String>")]
    email: Option<Text>,
    /// How far back: a whole number of hours or days, like 24h or 7d
    /// (default 7d; the current hour counts as the first).
    #[schemars(with = "Option<String>")]
    since: Option<Text>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct MyUsageInput {
    /// How far back: a whole number of hours or days, like 24h or 7d
    /// (default 7d; the current hour counts as the first).
    #[schemars(with = "Option<String>")]
    since: Option<Text>,
}

/// The answer of both tools.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct UsageReport {
    /// The first hour shown (RFC 3339, UTC).
    pub since: String,
    /// Rows are written every --usage-flush-secs: the latest calls may not
    /// be in yet.
    pub note: String,
    pub count: usize,
    /// Newest hour first, then by key and tool; at most 10000.
    pub rows: Vec<UsageView>,
}

impl FleetMind {
    /// The first hour of a report, from the tool's `since`.
    fn since_hour(&self, since: Option<Text>) -> Result<i64, ToolError> {
        let since = since.map(|s| s.0);
        report::since_hour(since.as_deref().unwrap_or(DEFAULT_SINCE), self.clock.now())
            .map_err(ToolError::Refused)
    }
}

fn usage_report(since_hour: i64, rows: &[crate::store::usage::UsageRow]) -> UsageReport {
    let rows: Vec<UsageView> = rows.iter().map(UsageView::of).collect();
    UsageReport {
        since: DateTime::<Utc>::from_timestamp(since_hour, 0)
            .map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default(),
        note: "usage is written in batches: the last minute or so may not be in yet".into(),
        count: rows.len(),
        rows,
    }
}

#[tool_router(router = usage_router, vis = "pub(super)")]
impl FleetMind {
    #[tool(
        description = "Admin: per-key, per-tool usage by hour: calls, errors, denied calls, \
                       mean and p95 latency (ms). Filter by key_id or email, and since (like \
                       24h or 7d, default 7d).",
        input_schema = input_schema::<KeyUsageInput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn admin_key_usage(&self, args: JsonObject) -> Result<Json<UsageReport>, ToolError> {
        let a: KeyUsageInput = args::parse_listing_fields(args)?;
        if a.key_id.is_some() && a.email.is_some() {
            return Err(ToolError::Refused("give key_id or email, not both".into()));
        }
        let email = match a.email {
            Some(email) => {
                keys::validate_email(&email.0).map_err(String::from)?;
                Some(keys::normalize_email(&email.0))
            }
            None => None,
        };
        let since_hour = self.since_hour(a.since)?;
        let filter = UsageFilter {
            key_id: a.key_id.map(|id| id.0),
            email,
            since_hour,
            limit: MAX_ROWS,
        };
        let rows = self
            .db
            .tool_usage(&filter)
            .await
            .map_err(|err| ToolError::store(err, &[]))?;
        Ok(Json(usage_report(since_hour, &rows)))
    }

    #[tool(
        description = "Your tenant's tool usage by hour, per key and tool: calls, errors, \
                       denied calls, mean and p95 latency (ms). since: like 24h or 7d \
                       (default 7d).",
        input_schema = input_schema::<MyUsageInput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn my_usage(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<UsageReport>, ToolError> {
        let a: MyUsageInput = args::parse_listing_fields(args)?;
        let since_hour = self.since_hour(a.since)?;
        let rows = self
            .db
            .tenant_tool_usage(&caller.user_id, since_hour, MAX_ROWS)
            .await
            .map_err(|err| ToolError::store(err, &[]))?;
        Ok(Json(usage_report(since_hour, &rows)))
    }
}

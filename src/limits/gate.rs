//! The check of a key's limits on a request (issue 13), called by the auth
//! layer (`allowed_ips`, on every request) and, through the envelope's
//! [`CallGate`], on every `tools/call` (rate limit and monthly quota). Only
//! `tools/call` counts: `initialize`, `tools/list`, pings and notifications
//! are never metered.
//!
//! A refusal is answered in the shape of every other refusal (a JSON-RPC
//! error, `error.data.error` naming the reason), recorded as a denied call
//! in the per-tool usage, counted in the metrics by reason, and logged at
//! most once a second per reason with the key's display prefix.

use super::KeyLimits;
use super::cost::cost_of;
use super::meter::{Applied, Meters, Refused, Standing};
use super::quota::next_month_start;
use crate::auth::{Caller, ClientAddr};
use crate::clock::Clock;
use crate::edge::answer::{REFUSED, json_rpc_error};
use crate::edge::envelope::{CallCheck, CallGate};
use crate::logging::gate::LineGate;
use crate::metrics::{Outcome, tool_label};
use crate::usage::ToolUsage;
use axum::body::Body;
use http::header::RETRY_AFTER;
use http::{Extensions, HeaderValue, Response, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Every `reason` label of [`crate::metrics::LIMIT_REFUSALS`].
pub const REASONS: [&str; 3] = ["rate_limited", "quota_exhausted", "ip_not_allowed"];

/// The limits of this replica: the keys' meters, the clock they read and
/// the default rate for keys without one.
pub struct Limits {
    meters: Arc<Meters>,
    clock: Clock,
    default_rate: Option<u32>,
    usage: ToolUsage,
    lines: [LineGate; 3],
}

impl Limits {
    pub fn new(clock: Clock, default_rate: Option<u32>, usage: ToolUsage) -> Self {
        Self {
            meters: Arc::new(Meters::new()),
            clock,
            default_rate,
            usage,
            lines: std::array::from_fn(|_| LineGate::new()),
        }
    }

    /// The meters, for the sync.
    pub fn meters(&self) -> &Arc<Meters> {
        &self.meters
    }

    /// The limits that apply to a key's calls.
    pub fn applied(&self, limits: &KeyLimits) -> Applied {
        Applied {
            rate_per_minute: limits.rate_limit_per_minute.or(self.default_rate),
            monthly_quota: limits.monthly_quota,
        }
    }

    /// Where `caller` stands now (for `whoami`).
    pub fn standing(&self, caller: &Caller) -> (Applied, Standing) {
        let applied = self.applied(&caller.limits);
        let standing = self
            .meters
            .standing(caller.key_id, applied, self.clock.now());
        (applied, standing)
    }

    /// The gate to put on `caller`'s request, if its calls are metered.
    pub fn gate(self: &Arc<Self>, caller: &Caller) -> Option<CallGate> {
        self.applied(&caller.limits)
            .any()
            .then(|| CallGate(self.clone()))
    }

    /// The refusal of a request from an address the key does not allow.
    /// The body is not read, so the refusal is recorded under the tool
    /// label `unknown`.
    pub fn refuse_address(
        &self,
        caller: &Caller,
        client: &ClientAddr,
    ) -> Option<Box<Response<Body>>> {
        let allowed = &caller.limits.allowed_ips.as_ref()?;
        if client.0.is_some_and(|ip| allowed.allows(ip)) {
            return None;
        }
        self.refused(caller, "unknown", 2);
        let answer = json_rpc_error(
            StatusCode::FORBIDDEN,
            Value::Null,
            REFUSED,
            "FleetMind: this API key may only be used from the addresses its administrator \
             allowed (allowed_ips), and this request came from another one. Use it from an \
             allowed network, or ask the administrator to change the key's allowed addresses \
             ('fleetmind keys limits').",
            serde_json::json!({ "error": "ip_not_allowed" }),
        );
        Some(Box::new(answer))
    }

    /// Records, counts and logs one refusal (`reason` indexes [`REASONS`]).
    fn refused(&self, caller: &Caller, tool: &'static str, reason: usize) {
        self.usage
            .record(caller.key_id, tool, Outcome::Denied, Duration::ZERO);
        crate::metrics::limit_refused(REASONS[reason]);
        if let Some(summary) = self.lines[reason].count() {
            tracing::warn!(
                key.prefix = %caller.key_prefix,
                reason = REASONS[reason],
                count = summary.count,
                "refused {} over the key's limits ({})",
                crate::plural::count(summary.count, "request"),
                REASONS[reason]
            );
        }
    }
}

impl CallCheck for Limits {
    fn admit(
        &self,
        extensions: &Extensions,
        tool: &str,
        id: &Value,
    ) -> Result<(), Box<Response<Body>>> {
        // Behind the auth layer there is always a caller.
        let Some(caller) = extensions.get::<Caller>() else {
            return Ok(());
        };
        let applied = self.applied(&caller.limits);
        let now = self.clock.now();
        let Err(refused) = self
            .meters
            .admit(caller.key_id, applied, cost_of(tool), now)
        else {
            return Ok(());
        };
        let (reason, message, wait) = match refused {
            Refused::RateLimited { per_minute, wait } => (
                0,
                format!(
                    "FleetMind: this API key is limited to {} a minute (rate limit); \
                     try again in {}.",
                    crate::plural::count(u64::from(per_minute), "tool call"),
                    crate::plural::count(retry_secs(wait), "second")
                ),
                wait,
            ),
            Refused::QuotaExhausted { quota, wait } => (
                1,
                format!(
                    "FleetMind: this API key has used its monthly quota of {} (each tool call \
                     costs 1 unit, routing and geocoding more); it is renewed at {} UTC.",
                    crate::plural::count(quota, "unit"),
                    next_month_start(now).format("%Y-%m-%d %H:%M")
                ),
                wait,
            ),
        };
        self.refused(caller, tool_label(tool), reason);
        let secs = retry_secs(wait);
        let mut answer = json_rpc_error(
            StatusCode::TOO_MANY_REQUESTS,
            id.clone(),
            REFUSED,
            &message,
            serde_json::json!({ "error": REASONS[reason], "retry_after_secs": secs }),
        );
        answer
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
        Err(Box::new(answer))
    }
}

/// `Retry-After` in whole seconds, rounded up, at least one.
fn retry_secs(wait: Duration) -> u64 {
    super::bucket::retry_after_secs(wait)
}

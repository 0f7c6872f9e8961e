//! Prometheus metrics: `serve --metrics-bind ADDR` serves `GET /metrics` on a
//! listener of its own (see [`serve`]).
//!
//! The figures are recorded through the `metrics` crate's global recorder,
//! which `metrics-exporter-prometheus` provides once `--metrics-bind` is set.
//! Without it (the default) every recording below goes to the crate's no-op
//! recorder: metrics off cost nothing beyond the call.
//!
//! Labels hold only bounded values: a status code, a refusal reason, a tool
//! name from the server's own table (any other name is `unknown`), an
//! outcome, a pool state. Never a user id, key id or key prefix: per-key
//! figures belong to usage reporting, and a label per key would grow the
//! series without bound.

mod serve;

pub use serve::{MetricsServer, serve};

use crate::auth::AuthFailure;
use crate::mcp::policy::TOOL_ACCESS;
use metrics::{counter, gauge, histogram};
use std::time::Duration;

pub const HTTP_REQUESTS: &str = "fleetmind_http_requests_total";
pub const AUTH_REFUSALS: &str = "fleetmind_auth_refusals_total";
pub const LIMIT_REFUSALS: &str = "fleetmind_limit_refusals_total";
pub const TOOL_CALLS: &str = "fleetmind_tool_calls_total";
pub const TOOL_CALL_DURATION: &str = "fleetmind_tool_call_duration_seconds";
pub const KEY_CACHE_HITS: &str = "fleetmind_key_cache_hits_total";
pub const KEY_CACHE_MISSES: &str = "fleetmind_key_cache_misses_total";
pub const DB_POOL_CONNECTIONS: &str = "fleetmind_db_pool_connections";
pub const KEY_WATCH_UP: &str = "fleetmind_key_watch_up";

/// Upper bounds of the tool-call duration buckets, in seconds: from a cached
/// whoami (well under a millisecond) to the request timeout's range.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How a tool call ended, for the access line and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The tool ran and answered.
    Ok,
    /// The tool ran and failed, or the call could not be served.
    Error,
    /// The key's scopes do not allow the tool.
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Denied => "denied",
        }
    }
}

/// A response's status, counted once per answered HTTP request.
pub fn http_response(status: http::StatusCode) {
    counter!(HTTP_REQUESTS, "status" => status_label(status)).increment(1);
}

/// A status code as a label without allocating for the usual ones.
fn status_label(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        202 => "202",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        406 => "406",
        413 => "413",
        415 => "415",
        421 => "421",
        429 => "429",
        500 => "500",
        503 => "503",
        s if s < 200 => "1xx",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// A request refused by the auth layer.
pub fn auth_refused(failure: AuthFailure) {
    counter!(AUTH_REFUSALS, "reason" => refusal_reason(failure)).increment(1);
}

/// Every `reason` label [`refusal_reason`] gives.
pub const REFUSAL_REASONS: &[&str] = &[
    "missing",
    "malformed",
    "unknown",
    "revoked",
    "expired",
    "throttled",
    "unavailable",
];

/// The `reason` label of a refusal.
pub fn refusal_reason(failure: AuthFailure) -> &'static str {
    match failure {
        AuthFailure::Missing => "missing",
        // Two different keys in one request is a malformed request.
        AuthFailure::Malformed | AuthFailure::Conflicting => "malformed",
        AuthFailure::Unknown => "unknown",
        AuthFailure::Revoked => "revoked",
        // A key retired by rotation is an expired key; the refusal's text
        // and log line say which key replaced it. No label of its own: the
        // reasons are the fixed set the issue named, and dashboards that
        // count expired keys keep counting these.
        AuthFailure::Expired | AuthFailure::Retired { .. } => "expired",
        AuthFailure::Throttled { .. } => "throttled",
        AuthFailure::Unavailable => "unavailable",
    }
}

/// A request refused by a key's limits; `reason` is one of
/// `crate::limits::gate::REASONS` (no key, no tool: the per-key figures
/// are in the usage reports).
pub fn limit_refused(reason: &'static str) {
    counter!(LIMIT_REFUSALS, "reason" => reason).increment(1);
}

/// A finished `tools/call`.
pub fn tool_call(tool: &'static str, outcome: Outcome, elapsed: Duration) {
    counter!(TOOL_CALLS, "tool" => tool, "outcome" => outcome.as_str()).increment(1);
    histogram!(TOOL_CALL_DURATION, "tool" => tool).record(elapsed.as_secs_f64());
}

/// The server's own name for a tool, or `unknown`: a client's made-up names
/// never become series (nor reach the access log).
pub fn tool_label(tool: &str) -> &'static str {
    TOOL_ACCESS
        .iter()
        .find(|(name, _)| *name == tool)
        .map_or("unknown", |(name, _)| name)
}

/// A key check answered from the verification cache, or not.
pub fn key_cache(hit: bool) {
    if hit {
        counter!(KEY_CACHE_HITS).increment(1);
    } else {
        counter!(KEY_CACHE_MISSES).increment(1);
    }
}

/// Whether the store's change watch is live (1) or blind (0).
pub fn key_watch_up(up: bool) {
    gauge!(KEY_WATCH_UP).set(if up { 1.0 } else { 0.0 });
}

/// The database pool's connections now.
pub fn db_pool(idle: u32, in_use: u32) {
    gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(idle));
    gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(in_use));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_tool_names_become_labels() {
        assert_eq!(tool_label("whoami"), "whoami");
        assert_eq!(tool_label("fetch_orders"), "fetch_orders");
        assert_eq!(tool_label("whoami2"), "unknown");
        assert_eq!(tool_label(""), "unknown");
    }

    #[test]
    fn every_status_has_a_bounded_label() {
        for code in 100..600u16 {
            let status = http::StatusCode::from_u16(code).expect("a status");
            let label = status_label(status);
            assert!(label.len() == 3, "{code}: {label}");
        }
        assert_eq!(status_label(http::StatusCode::OK), "200");
        assert_eq!(status_label(http::StatusCode::IM_A_TEAPOT), "4xx");
    }
}

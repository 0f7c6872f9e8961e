//! The access log: one INFO line per `tools/call` and one per console
//! request ([`console_request`]), target
//! `fleetmind::access`, with the tool, the caller's `user_id` and `key_id`,
//! the outcome (`ok`, `error`, `denied`), the time taken in milliseconds and
//! the client address (as worked out with `--trusted-proxies`).
//!
//! Never the call's arguments or result (tenant data, emails, the keys the
//! admin tools return), nor the key or its hash. The tool is named as the
//! server knows it: a name the server does not serve is written `unknown`,
//! so no text of the client's reaches the line.
//!
//! The line is formatted on the request's thread and written by the log's
//! writer thread (see [`super::init`]). `--log warn`, or a filter such as
//! `info,fleetmind::access=off`, turns it off.

use crate::auth::{Caller, ClientAddr};
use crate::metrics::Outcome;
use std::time::Duration;

/// The access line of one tool call. `tool` is the server's own name for it
/// (or `unknown`).
pub fn tool_call(
    caller: &Caller,
    tool: &'static str,
    outcome: Outcome,
    elapsed: Duration,
    client: Option<ClientAddr>,
) {
    // Microseconds, as milliseconds with three decimals: a cached whoami
    // takes well under one.
    let duration_ms = elapsed.as_micros() as f64 / 1000.0;
    tracing::info!(
        target: "fleetmind::access",
        tool,
        user_id = %caller.user_id,
        key_id = caller.key_id,
        outcome = outcome.as_str(),
        duration_ms,
        client = client.and_then(|c| c.0).map(tracing::field::display),
        "tools/call"
    );
}

/// The access line of one console request: the method, the route as the
/// router names it (`/console/invite/{token}`, so no invitation token is
/// written), the status, the time taken and the client address. Never form
/// contents, cookies, keys or emails.
pub fn console_request(
    method: &str,
    route: &str,
    status: u16,
    elapsed: Duration,
    client: ClientAddr,
) {
    let duration_ms = elapsed.as_micros() as f64 / 1000.0;
    tracing::info!(
        target: "fleetmind::access",
        method,
        route,
        status,
        duration_ms,
        client = client.0.map(tracing::field::display),
        "console"
    );
}

//! What must hold for every answer (issue 9), collected as findings.

use super::cases::*;
use crate::support::{RawAnswer, RawOutcome};
use serde_json::Value;
// What must hold.

/// Findings of one run, grouped by what was violated.
#[derive(Default)]
pub struct Findings {
    pub by_rule: std::collections::BTreeMap<String, (usize, String)>,
}

impl Findings {
    pub fn add(&mut self, rule: &str, example: impl FnOnce() -> String) {
        let entry = self
            .by_rule
            .entry(rule.to_owned())
            .or_insert_with(|| (0, String::new()));
        if entry.0 == 0 {
            entry.1 = example();
        }
        entry.0 += 1;
    }
}

pub fn describe(case: &Case, outcome: &RawOutcome) -> String {
    let mut case = format!("{case:?}");
    if case.len() > 600 {
        case = format!("{}…", case.chars().take(600).collect::<String>());
    }
    let answer = match outcome {
        RawOutcome::Answered(a) => {
            let text = a.text();
            format!(
                "HTTP {} {}",
                a.status,
                text.chars().take(400).collect::<String>()
            )
        }
        RawOutcome::Closed(why) => format!("closed: {why}"),
        RawOutcome::TimedOut => "no answer".to_owned(),
    };
    format!("{case}\n      -> {answer}")
}

pub fn is_mcp(path: &Path) -> bool {
    matches!(path, Path::Mcp | Path::McpQuery(_))
}

pub fn json_rpc_error(answer: &RawAnswer) -> Option<(i64, String)> {
    let body = answer.json()?;
    let error = body.get("error")?;
    Some((
        error.get("code")?.as_i64()?,
        error.get("message")?.as_str()?.to_owned(),
    ))
}

/// The tool result of an answer: (text of the whole result, isError).
pub fn tool_result(answer: &RawAnswer) -> Option<(String, bool)> {
    let body = answer.json()?;
    let result = body.get("result")?;
    Some((
        result.to_string(),
        result.get("isError").and_then(Value::as_bool) == Some(true),
    ))
}

/// Checks one answer against what issue 9 asks for.
pub fn check(case: &Case, outcome: &RawOutcome, markers: &Markers, findings: &mut Findings) {
    let answer = match outcome {
        RawOutcome::Answered(answer) => answer,
        RawOutcome::TimedOut => {
            return findings.add("no answer within the deadline (hang)", || {
                describe(case, outcome)
            });
        }
        RawOutcome::Closed(_) => {
            // Only a client that stopped sending mid-body may be hung up on;
            // a huge header may be answered and reset before it is read.
            if !case.short_body && !matches!(case.key, Key::Huge(_)) {
                findings.add("connection closed without an answer", || {
                    describe(case, outcome)
                });
            }
            return;
        }
    };
    let status = answer.status;
    let head = case.method == "HEAD";
    if status >= 500 && status != 503 {
        findings.add("5xx other than 503", || describe(case, outcome));
    }
    let text = answer.text();
    if text.contains(&markers.other) {
        findings.add("tenant A's key saw tenant B's rows", || {
            describe(case, outcome)
        });
    }
    if text.contains("panicked") || text.contains("overflow") {
        findings.add("internal text in an answer", || describe(case, outcome));
    }
    // A request head longer than the server reads (a key of up to 120 kB in
    // the query or the header) is refused by the HTTP parser itself, 414 or
    // 431, before any Host or key is read: that refusal comes
    // first, on every path (/healthz included).
    if matches!(case.key, Key::Huge(_)) && (status == 414 || status == 431) {
        return;
    }
    if !is_mcp(&case.path) {
        if matches!(case.path, Path::Healthz)
            && case.method == "GET"
            && matches!(case.host, Host::Loopback)
            && status != 200
        {
            findings.add("/healthz not 200 with the database up", || {
                describe(case, outcome)
            });
        }
        return;
    }
    // /mcp: the Host check comes first, whatever the key.
    let foreign = match &case.host {
        Host::Foreign(h) | Host::AbsoluteForeign(h) => Some(h.split(':').next().unwrap_or(h)),
        _ => None,
    };
    if let Some(host) = foreign {
        // The refusal names the host and the setting, in its message or its
        // data (a HEAD answer has no body to read).
        let named = head
            || (json_rpc_error(answer).is_some()
                && text.contains(host)
                && (text.contains("allowed-hosts") || text.contains("FLEETMIND_ALLOWED_HOSTS")));
        if status != 403 || !named {
            findings.add(
                "foreign Host not refused first with 403 and a JSON-RPC error naming the host and --allowed-hosts",
                || describe(case, outcome),
            );
        }
        return;
    }
    if !matches!(
        case.host,
        Host::Loopback | Host::Localhost | Host::AbsoluteSelf
    ) {
        return;
    }
    let refusal = |code: &str| {
        head || answer
            .json()
            .is_some_and(|b| b["jsonrpc"] == "2.0" && b["error"]["data"]["error"] == code)
    };
    match &case.key {
        Key::None => {
            // `?api_key` with an empty or malformed value is a bad key, not
            // a missing one.
            let in_query = matches!(case.path, Path::McpQuery(ref q) if q.contains("api_key"));
            let code = if in_query {
                "invalid_api_key"
            } else {
                "missing_api_key"
            };
            if status != 401 || !refusal(code) {
                findings.add("no key: not 401 missing_api_key", || {
                    describe(case, outcome)
                });
            }
            return;
        }
        Key::Malformed(_) | Key::Revoked | Key::Expired | Key::Conflicting => {
            if status != 401 || !refusal("invalid_api_key") {
                findings.add("bad key: not 401 invalid_api_key", || {
                    describe(case, outcome)
                });
            }
            return;
        }
        Key::Unknown => {
            if !(status == 401 && refusal("invalid_api_key") || status == 429) {
                findings.add("unknown key: not 401 (or 429)", || describe(case, outcome));
            }
            return;
        }
        Key::Huge(_) => {
            if !(400..500).contains(&status) {
                findings.add("huge Authorization header: not a 4xx", || {
                    describe(case, outcome)
                });
            }
            return;
        }
        Key::Good => {}
    }
    if matches!(case.path, Path::McpQuery(ref q) if q.contains("api_key")) {
        // A second api_key in the query: refused or used, never a 5xx.
        return;
    }
    if status == 401 || status == 429 {
        findings.add("good key refused", || describe(case, outcome));
        return;
    }
    if case.method == "GET" {
        if status != 405 {
            findings.add("keyed GET /mcp not 405", || describe(case, outcome));
        }
        return;
    }
    let envelope_ok = case.method == "POST"
        && case.content_type.as_deref().is_some_and(is_json_media_type)
        && case.accept.as_deref() == Some(GOOD_ACCEPT)
        && case
            .protocol_version
            .as_deref()
            .is_none_or(|v| v == "2025-11-25")
        && !case.short_body;
    if !envelope_ok {
        return;
    }
    let error = json_rpc_error(answer);
    match &case.body {
        Body::Malformed(_) | Body::Truncated(_) => {
            if status != 400 || error.as_ref().map(|e| e.0) != Some(-32700) {
                findings.add("malformed JSON: not HTTP 400 with JSON-RPC -32700", || {
                    describe(case, outcome)
                });
            }
        }
        Body::Nested(_) => {
            if status != 400 || !matches!(error.as_ref().map(|e| e.0), Some(-32700 | -32600)) {
                findings.add(
                    "deeply nested JSON: not HTTP 400 with JSON-RPC -32700/-32600",
                    || describe(case, outcome),
                );
            }
        }
        Body::Batch(_) => {
            let said = error.as_ref().is_some_and(|(code, message)| {
                *code == -32600 && message.to_ascii_lowercase().contains("batch")
            });
            if !said {
                findings.add(
                    "batch: not JSON-RPC -32600 saying batches are not supported",
                    || describe(case, outcome),
                );
            }
        }
        Body::Empty => {
            if !(400..500).contains(&status) {
                findings.add("empty body: not a 4xx", || describe(case, outcome));
            }
        }
        Body::Message(message) => check_message(case, message, answer, error, findings, outcome),
    }
}

pub fn check_message(
    case: &Case,
    message: &Message,
    answer: &RawAnswer,
    error: Option<(i64, String)>,
    findings: &mut Findings,
    outcome: &RawOutcome,
) {
    let result = tool_result(answer);
    match message {
        Message::ArgumentsNotObject(_) => {
            let said = error
                .as_ref()
                .is_some_and(|(code, message)| *code == -32602 && message.contains("arguments"));
            if !said {
                findings.add(
                    "arguments not an object: not -32602 naming arguments",
                    || describe(case, outcome),
                );
            }
        }
        Message::UnknownMethod(_) => {
            if error.as_ref().map(|e| e.0) != Some(-32601) {
                findings.add("unknown method: not -32601", || describe(case, outcome));
            }
        }
        Message::UnknownTool(_) => {
            let refused = error.is_some() || result.as_ref().is_some_and(|r| r.1);
            if !refused {
                findings.add("unknown tool: not refused as JSON-RPC", || {
                    describe(case, outcome)
                });
            }
        }
        Message::ParamsWrong(_) => {
            // Valid JSON that is not a valid request: a JSON-RPC error like
            // every other refusal, not a text body.
            if error.is_none() && !result.as_ref().is_some_and(|r| r.1) {
                findings.add("wrong-typed params: not a JSON-RPC error", || {
                    describe(case, outcome)
                });
            }
        }
        Message::FarDate { field, .. } => {
            let named = result
                .as_ref()
                .is_some_and(|(text, is_error)| *is_error && text.contains(field))
                || error.as_ref().is_some_and(|(_, m)| m.contains(field));
            if !named {
                findings.add(
                    "date outside the accepted years: not a tool error naming the field",
                    || describe(case, outcome),
                );
            }
        }
        Message::Tool { .. } | Message::Plain(_) => {
            if answer.status != 200
                || (error.is_none() && result.is_none() && !matches!(message, Message::Plain(_)))
            {
                findings.add("tool call: not a 200 JSON-RPC answer", || {
                    describe(case, outcome)
                });
            }
        }
        Message::Notification => {}
    }
}

/// Text only tenant B's rows hold.
pub struct Markers {
    pub other: String,
}

/// `application/json`, in any case, with or without parameters: the media
/// type itself, so `application/jsonx` is another type (refused with 415).
fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split_once(';')
        .map_or(content_type, |(essence, _)| essence);
    essence.trim().eq_ignore_ascii_case("application/json")
}

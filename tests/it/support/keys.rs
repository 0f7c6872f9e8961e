//! Helpers of the key administration tests: full tool answers, raw HTTP
//! requests to see status codes, and the scan for leaked secrets.
#![allow(dead_code)]

use crate::support::{Client, call_result, text_of};
use serde_json::Value;

/// The scopes of a key issued without any, as `whoami` and `keys create`
/// show them. Written out here, not read from `Scopes::PREDECESSOR_DEFAULT`,
/// so that a change of the default fails the tests that pin it.
pub const DEFAULT_SCOPES: [&str; 6] = [
    "orders:read",
    "orders:write",
    "drivers:read",
    "drivers:write",
    "assignments:manage",
    "routing:use",
];

/// A tool call that must succeed; returns its structured content after
/// checking that the text content carries the same JSON.
pub async fn call_ok(client: &Client, tool: &str, args: Value) -> Value {
    let result = call_result(client, tool, args.clone()).await;
    let text = text_of(&result);
    assert_ne!(result.is_error, Some(true), "{tool} {args} failed: {text}");
    let structured = result
        .structured_content
        .unwrap_or_else(|| panic!("{tool}: no structuredContent"));
    let text: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{tool}: text content is not JSON ({e}): {text}"));
    assert_eq!(
        text, structured,
        "{tool}: text and structured content differ"
    );
    structured
}

/// A tool call that must be a tool error; returns its text.
pub async fn call_err(client: &Client, tool: &str, args: Value) -> String {
    let result = call_result(client, tool, args.clone()).await;
    let text = text_of(&result);
    assert_eq!(
        result.is_error,
        Some(true),
        "{tool} {args}: want a tool error, got {text}"
    );
    text
}

/// An MCP `initialize` POSTed with `key`, to see the HTTP status itself.
pub async fn raw_initialize(mcp_url: &str, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(mcp_url)
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(
            serde_json::json!({
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "admin-tests", "version": "0"}
                }
            })
            .to_string(),
        )
        .send()
        .await
        .expect("HTTP request")
}

/// Asserts that `key` is refused with 401 and an `invalid_token` challenge.
pub async fn assert_refused(mcp_url: &str, key: &str, what: &str) {
    let response = raw_initialize(mcp_url, key).await;
    assert_eq!(response.status(), 401, "{what}: want 401");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{what}: challenge {challenge}"
    );
    assert!(
        crate::support::connect(mcp_url, key).await.is_err(),
        "{what}: the rmcp client connected with a refused key"
    );
}

/// Asserts that `key` is accepted: HTTP 200 and a working `whoami`.
pub async fn assert_accepted(mcp_url: &str, key: &str, what: &str) -> Value {
    let response = raw_initialize(mcp_url, key).await;
    assert_eq!(response.status(), 200, "{what}: want 200");
    let client = crate::support::connect(mcp_url, key)
        .await
        .unwrap_or_else(|e| panic!("{what}: connect: {e}"));
    let who = call_ok(&client, "whoami", serde_json::json!({})).await;
    let _ = client.cancel().await;
    who
}

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Whether `text` holds something shaped like a key hash (64 hex digits in
/// a row) or a whole key (`fm_` and 43 key characters).
pub fn leaks_secret(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut run = 0;
    for (i, b) in bytes.iter().enumerate() {
        run = if b.is_ascii_hexdigit() { run + 1 } else { 0 };
        if run >= 64 {
            return Some(text[i + 1 - 64..=i].to_owned());
        }
    }
    for (i, _) in text.match_indices("fm_") {
        let tail = bytes[i + 3..]
            .iter()
            .take_while(|b| is_key_char(**b))
            .count();
        if tail >= 43 {
            return Some(text[i..i + 3 + 43].to_owned());
        }
    }
    None
}

/// The form a key is stored in (`api_key_hash`): the lowercase hex SHA-256
/// of the whole key, computed here independently of `fleetmind::keys`.
pub fn stored_hash(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// `"key:<id>"`, the actor of events done with an admin key.
pub fn key_actor(key_id: i64) -> String {
    format!("key:{key_id}")
}

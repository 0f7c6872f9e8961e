//! The wire: every protocol version from 2024-11-05 to the session-less
//! 2026-07-28, no session ids (replicas need no sticky sessions), Host
//! validation, and the unauthenticated health check.

use crate::support::*;
use serde_json::{Value, json};

async fn post(url: &str, key: &str, version: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(version) = version {
        req = req.header("mcp-protocol-version", version);
    }
    // 2026-07-28 repeats the method (and a tool's name) in headers, so that
    // proxies can route without reading the body.
    if version == Some("2026-07-28") {
        if let Some(method) = body["method"].as_str() {
            req = req.header("mcp-method", method);
        }
        if let Some(name) = body["params"]["name"].as_str() {
            req = req.header("mcp-name", name);
        }
    }
    req.send().await.expect("http")
}

#[tokio::test]
async fn handshake_versions_negotiate_without_a_session() {
    let t = sqlite_db().await;
    let issued = issue_key(&t.db, "ivan@example.com", None).await;
    let server = start_server(t.db.clone()).await;
    let key = issued.api_key.expose();
    for version in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
        let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "protocol-test", "version": "1"}}});
        let resp = post(&server.mcp_url(), key, None, &init).await;
        assert_eq!(resp.status(), 200, "{version}");
        assert!(
            resp.headers().get("mcp-session-id").is_none(),
            "{version}: a session id was issued"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["result"]["protocolVersion"], version);
        assert_eq!(body["result"]["serverInfo"]["name"], "fleetmind");

        let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
            "params":{"name":"whoami","arguments":{}}});
        let resp = post(&server.mcp_url(), key, Some(version), &call).await;
        assert_eq!(resp.status(), 200, "{version}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["result"]["structuredContent"]["user_id"],
            issued.record.user_id.as_str(),
            "{version}: {body}"
        );
    }
    server.stop().await;
}

fn meta_2026() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "protocol-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

backend_test!(session_less_2026_07_28_discover_and_call, |t| async move {
    let issued = issue_key(&t.db, "judy@example.com", None).await;
    let server = start_server(t.db.clone()).await;
    let key = issued.api_key.expose();

    let discover = json!({"jsonrpc":"2.0","id":1,"method":"server/discover",
            "params":{"_meta": meta_2026()}});
    let resp = post(&server.mcp_url(), key, Some("2026-07-28"), &discover).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let versions = body["result"]["supportedVersions"].to_string();
    for version in ["2026-07-28", "2025-11-25", "2024-11-05"] {
        assert!(versions.contains(version), "{versions}");
    }

    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
            "params":{"name":"whoami","arguments":{},"_meta": meta_2026()}});
    let resp = post(&server.mcp_url(), key, Some("2026-07-28"), &call).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("mcp-session-id").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["result"]["structuredContent"]["user_id"],
        issued.record.user_id.as_str(),
        "{body}"
    );

    // The tool list depends on the key: it must not be cached as shared.
    let list = json!({"jsonrpc":"2.0","id":3,"method":"tools/list",
            "params":{"_meta": meta_2026()}});
    let resp = post(&server.mcp_url(), key, Some("2026-07-28"), &list).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["result"]["cacheScope"], "private", "{body}");
    server.stop().await;
});

#[tokio::test]
async fn foreign_hosts_are_refused_and_configured_hosts_accepted() {
    let t = sqlite_db().await;
    let issued = issue_key(&t.db, "ken@example.com", None).await;
    let key = issued.api_key.expose();
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "host-test", "version": "1"}}});

    let server = start_server(t.db.clone()).await;
    let resp = reqwest::Client::new()
        .post(server.mcp_url())
        .bearer_auth(key)
        .header("host", "evil.example.com")
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_client_error(),
        "DNS-rebinding Host accepted: {}",
        resp.status()
    );
    server.stop().await;

    let server = start_server_with(
        t.db.clone(),
        fleetmind::app::ServeOptions {
            allowed_hosts: vec!["fleet.example.com".into()],
            ..Default::default()
        },
    )
    .await;
    let resp = reqwest::Client::new()
        .post(server.mcp_url())
        .bearer_auth(key)
        .header("host", "fleet.example.com")
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn healthz_needs_no_key() {
    let t = sqlite_db().await;
    let server = start_server(t.db.clone()).await;
    let resp = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let resp = reqwest::get(format!("http://{}/nothing-here", server.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    server.stop().await;
}

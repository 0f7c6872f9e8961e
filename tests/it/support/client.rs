//! Clients of the server: the real rmcp client, plain-HTTP tool calls, and
//! waiting for something to become true.

use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use std::future::Future;

pub type Client = RunningService<RoleClient, ClientConfig>;

/// The real rmcp client, sending `key` as `Authorization: Bearer`.
pub async fn connect(url: &str, key: &str) -> Result<Client, String> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(key.to_owned()),
    );
    ClientConfig::default()
        .serve(transport)
        .await
        .map_err(|e| e.to_string())
}

/// The real rmcp client, with no key or the key in the URL.
pub async fn connect_url(url: &str) -> Result<Client, String> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()),
    );
    ClientConfig::default()
        .serve(transport)
        .await
        .map_err(|e| e.to_string())
}

/// Calls a tool and returns its structured content (or the text parsed as
/// JSON), and whether it was an error.
pub async fn call(
    client: &Client,
    tool: &str,
    args: serde_json::Value,
) -> (serde_json::Value, bool) {
    let result = call_result(client, tool, args).await;
    let is_error = result.is_error == Some(true);
    let value = result.structured_content.clone().unwrap_or_else(|| {
        let text = text_of(&result);
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    });
    (value, is_error)
}

/// The whole answer of a tool call; a protocol error fails the test (bad
/// input must come back as a tool error).
pub async fn call_result(client: &Client, tool: &str, args: serde_json::Value) -> CallToolResult {
    let args = match args {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => Default::default(),
        other => panic!("tool arguments must be an object, got {other}"),
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool}: protocol error instead of a tool result: {e}"))
}

/// All text content of an answer, joined by newlines.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls `probe` every 50 ms until it returns true; false if `within` passes.
pub async fn eventually<F, Fut>(within: std::time::Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if probe().await {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The body of a `tools/call` of `whoami`.
pub const WHOAMI_CALL: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

/// A plain-HTTP POST of `body` to the MCP endpoint with `key` as
/// `Authorization: Bearer` and the headers an MCP client sends; callers may
/// add more before sending.
pub fn mcp_post(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    body: String,
) -> reqwest::RequestBuilder {
    http.post(url)
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-11-25")
        .body(body)
}

/// The HTTP status of a `whoami` call with `key` as `Authorization: Bearer`
/// (0 when no answer came within 30 s: connection refused or reset).
pub async fn whoami_status(http: &reqwest::Client, url: &str, key: &str) -> u16 {
    status_of(mcp_post(http, url, key, WHOAMI_CALL.to_owned())).await
}

/// [`whoami_status`], as forwarded by a proxy that appended `forwarded_for`
/// (`X-Forwarded-For`).
pub async fn forwarded_whoami_status(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    forwarded_for: &str,
) -> u16 {
    status_of(
        mcp_post(http, url, key, WHOAMI_CALL.to_owned()).header("X-Forwarded-For", forwarded_for),
    )
    .await
}

/// The status of a request (0 when no answer came within 30 s).
pub async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    request
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// What one plain-HTTP `tools/call` got back.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: serde_json::Value,
}

/// One `tools/call` over plain HTTP with `key` as `Authorization: Bearer`;
/// `None` when no answer came within `within` (a hang).
pub async fn tools_call_http(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    tool: &str,
    args: serde_json::Value,
    within: std::time::Duration,
) -> Option<HttpAnswer> {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": args},
    });
    let send = async {
        let response = mcp_post(http, url, key, body.to_string())
            .send()
            .await
            .expect("the server closed the connection instead of answering");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        HttpAnswer {
            status,
            retry_after,
            body: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        }
    };
    tokio::time::timeout(within, send).await.ok()
}

/// A tool call the database could not serve: a JSON-RPC error that says to
/// try again, or a 503 with `Retry-After`; never a result.
pub fn assert_unavailable(answer: &HttpAnswer) {
    if answer.status == 503 {
        assert!(answer.retry_after.is_some(), "{answer:?}");
        return;
    }
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.body.get("result").is_none(), "{answer:?}");
    let error = &answer.body["error"];
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("unavailable") && message.contains("try again"),
        "{answer:?}"
    );
    assert_eq!(error["data"]["error"], "unavailable", "{answer:?}");
}

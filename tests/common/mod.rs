//! Shared test support: real databases (a fresh SQLite file or a fresh
//! Postgres database per test), the real server on 127.0.0.1:0, and the real
//! rmcp client.
//!
//! Postgres: `FLEETMIND_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! names a server where the tests may create databases. Under `CI=true` (or
//! with `FLEETMIND_REQUIRE_PG=1`) an unreachable Postgres fails the test;
//! otherwise the Postgres half is skipped with a loud message.
#![allow(dead_code)]

use fleetmind::app::{self, RunningServer, ServeOptions};
use fleetmind::key_admin::{self, CreateKey, IssuedKey};
use fleetmind::scopes::Scopes;
use fleetmind::store::{self, Backend, Db, PoolOptions};
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use sqlx::Connection;
use std::future::Future;
use tokio_util::sync::CancellationToken;

/// A database for one test; dropped (Postgres) or deleted (SQLite) after.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
}

impl Drop for TestDb {
    // Having a Drop of its own keeps a `move` closure that uses only `t.db`
    // from capturing that field alone and dropping the rest (the SQLite
    // file's directory, the Postgres database) while the test still runs.
    fn drop(&mut self) {
        self.pg.take();
    }
}

/// A fresh Postgres database for one test, dropped when this is. Leftovers
/// of killed runs are removed by `.ci/run` (they are all named fm_test_*).
pub struct PgDatabase {
    pub url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop cannot be async, so a short-lived thread with its own runtime
        // does it (FORCE ends whatever connections are still open).
        let name = std::mem::take(&mut self.name);
        let admin = pg_admin_url();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
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

pub fn pg_admin_url() -> String {
    std::env::var("FLEETMIND_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn pg_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("FLEETMIND_REQUIRE_PG").is_ok_and(|v| v == "1")
}

/// A fresh, migrated SQLite file.
pub async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("fleetmind.db").display());
    let db = store::open(&url, &PoolOptions::default())
        .await
        .expect("open sqlite");
    TestDb {
        db,
        url,
        backend: Backend::Sqlite,
        _dir: Some(dir),
        pg: None,
    }
}

/// A fresh, empty Postgres database (dropped with the value), or `None` when
/// Postgres is not reachable and not required.
pub async fn fresh_pg() -> Option<PgDatabase> {
    let admin = pg_admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(conn) => conn,
        Err(err) => {
            if pg_required() {
                panic!(
                    "Postgres is required (CI=true) but unreachable at FLEETMIND_TEST_PG: {err}"
                );
            }
            eprintln!("SKIPPED (Postgres half): Postgres unreachable: {err}");
            return None;
        }
    };
    let name = format!("fm_test_{}", uuid_like());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(PgDatabase {
        url: format!("{base}/{name}"),
        name,
    })
}

/// A fresh, migrated Postgres database, or `None` (see [`fresh_pg`]).
pub async fn pg_db() -> Option<TestDb> {
    let pg = fresh_pg().await?;
    let db = store::open(&pg.url, &PoolOptions::default())
        .await
        .expect("open postgres");
    Some(TestDb {
        db,
        url: pg.url.clone(),
        backend: Backend::Postgres,
        _dir: None,
        pg: Some(pg),
    })
}

/// Runs the same test body on SQLite and on Postgres.
pub async fn on_both_backends<F, Fut>(test: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    test(sqlite_db().await).await;
    if let Some(pg) = pg_db().await {
        test(pg).await;
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Issues a key through the same path as the CLI.
pub async fn issue_key(db: &Db, email: &str, scopes: Option<Scopes>) -> IssuedKey {
    key_admin::create_key(
        db.as_ref(),
        CreateKey {
            email: email.into(),
            name: None,
            scopes,
            expires_in_days: None,
            created_by: "cli".into(),
            issuer_scopes: None,
        },
    )
    .await
    .expect("issue key")
}

/// The real server on 127.0.0.1:0.
pub async fn start_server(db: Db) -> RunningServer {
    start_server_with(db, ServeOptions::default()).await
}

pub async fn start_server_with(db: Db, options: ServeOptions) -> RunningServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    app::start(listener, db, &options, CancellationToken::new()).expect("start server")
}

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
    let args = match args {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => Default::default(),
        other => panic!("tool arguments must be an object, got {other}"),
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"));
    let is_error = result.is_error == Some(true);
    let value = result.structured_content.clone().unwrap_or_else(|| {
        let text = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join("\n");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    });
    (value, is_error)
}

pub mod proxy;

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
        let response = http
            .post(url)
            .header("Authorization", format!("Bearer {key}"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2025-11-25")
            .body(body.to_string())
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

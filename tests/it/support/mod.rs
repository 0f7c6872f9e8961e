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

/// The HTTP status of a `whoami` call with `key` as `Authorization: Bearer`
/// (0 when no answer came: connection refused or reset).
pub async fn whoami_status(http: &reqwest::Client, url: &str, key: &str) -> u16 {
    http.post(url)
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-11-25")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
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

pub mod fleet;
pub mod keys;
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

// ---------------------------------------------------------------------------
// Raw HTTP and database snapshots (added for tests/fuzz_http.rs, issue 9).

/// What a raw HTTP exchange gave.
#[derive(Debug)]
pub enum RawOutcome {
    /// A complete response.
    Answered(RawAnswer),
    /// The connection closed or was reset before a complete response.
    Closed(String),
    /// No complete response within the deadline.
    TimedOut,
}

#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends `request` (bytes exactly as given, so malformed requests can be
/// sent) on a new connection to `addr` and reads one response, all within
/// `deadline`. Reading runs while writing, so an early answer to a large
/// body is not lost. With `half_close` the write side is shut after the
/// request (a client that stops sending mid-body).
pub async fn raw_http(
    addr: std::net::SocketAddr,
    request: Vec<u8>,
    half_close: bool,
    deadline: std::time::Duration,
) -> RawOutcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head_request = request.starts_with(b"HEAD ");
    let exchange = async move {
        let stream = match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(err) => return RawOutcome::Closed(format!("connect: {err}")),
        };
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let write = tokio::spawn(async move {
            let _ = writer.write_all(&request).await;
            if half_close {
                let _ = writer.shutdown().await;
            } else {
                // Keep the write side open until the answer is read.
                std::future::pending::<()>().await;
            }
            writer
        });
        let mut buf = Vec::with_capacity(4096);
        let outcome = loop {
            let mut chunk = [0u8; 16 * 1024];
            let read = reader.read(&mut chunk).await;
            match read {
                Ok(0) => {
                    break match parse_response(&buf, head_request, true) {
                        Some(answer) => RawOutcome::Answered(answer),
                        None => RawOutcome::Closed(format!(
                            "closed after {} bytes: {:?}",
                            buf.len(),
                            String::from_utf8_lossy(&buf[..buf.len().min(200)])
                        )),
                    };
                }
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(answer) = parse_response(&buf, head_request, false) {
                        break RawOutcome::Answered(answer);
                    }
                }
                Err(err) => {
                    break match parse_response(&buf, head_request, true) {
                        Some(answer) => RawOutcome::Answered(answer),
                        None => RawOutcome::Closed(format!("read: {err}")),
                    };
                }
            }
        };
        write.abort();
        outcome
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .unwrap_or(RawOutcome::TimedOut)
}

/// A complete response in `buf`, or `None` while more bytes are needed
/// (`at_eof`: the body runs to the end of the stream when it has no length).
fn parse_response(buf: &[u8], head_request: bool, at_eof: bool) -> Option<RawAnswer> {
    let mut header_slots = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut header_slots);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let status = response.code?;
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let rest = &buf[head_len..];
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let no_body = head_request || status == 204 || status == 304 || (100..200).contains(&status);
    let body = if no_body {
        Vec::new()
    } else if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        dechunk(rest)?
    } else if let Some(length) = find("content-length") {
        let length: usize = length.trim().parse().ok()?;
        if rest.len() < length {
            return None;
        }
        rest[..length].to_vec()
    } else if at_eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some(RawAnswer {
        status,
        headers,
        body,
    })
}

/// A complete chunked body, or `None` if it has not all arrived.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = memchr::memmem::find(rest, b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if rest.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Every table's row count and a SHA-256 of its rows (read through a
/// connection of its own, not the server's pool), to prove that something
/// wrote nothing. `only_user`: only rows with that `user_id` (tables without
/// the column are left out). `ignore`: (table, column) pairs left out of the
/// rows.
pub async fn db_snapshot(
    url: &str,
    backend: Backend,
    only_user: Option<&str>,
    ignore: &[(&str, &str)],
) -> std::collections::BTreeMap<String, (usize, String)> {
    use sha2::Digest;
    let mut snapshot = std::collections::BTreeMap::new();
    match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .expect("snapshot: connect");
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
            )
            .fetch_all(&mut conn)
            .await
            .expect("snapshot: tables");
            for table in tables {
                let columns: Vec<String> = sqlx::query_scalar(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(&table)
                .fetch_all(&mut conn)
                .await
                .expect("snapshot: columns");
                let Some(filter) = user_filter(&columns, only_user) else {
                    continue;
                };
                let row = snapshot_columns(&table, &columns, ignore)
                    .iter()
                    .map(|c| format!("coalesce(\"{c}\"::text, '<null>')"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT concat_ws('|', {row}) AS r FROM \"{table}\"{} ORDER BY r",
                    filter.replace('?', "$1")
                );
                let mut query = sqlx::query_scalar::<_, String>(&sql);
                if let Some(user) = only_user {
                    query = query.bind(user);
                }
                let rows = query.fetch_all(&mut conn).await.expect("snapshot: rows");
                let hash = hex::encode(sha2::Sha256::digest(rows.join("\n")));
                snapshot.insert(table, (rows.len(), hash));
            }
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url)
                .await
                .expect("snapshot: connect");
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .fetch_all(&mut conn)
            .await
            .expect("snapshot: tables");
            for table in tables {
                let columns: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                        .bind(&table)
                        .fetch_all(&mut conn)
                        .await
                        .expect("snapshot: columns");
                let Some(filter) = user_filter(&columns, only_user) else {
                    continue;
                };
                let row = snapshot_columns(&table, &columns, ignore)
                    .iter()
                    .map(|c| format!("quote(\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                let sql = format!("SELECT {row} AS r FROM \"{table}\"{filter} ORDER BY r");
                let mut query = sqlx::query_scalar::<_, String>(&sql);
                if let Some(user) = only_user {
                    query = query.bind(user);
                }
                let rows = query.fetch_all(&mut conn).await.expect("snapshot: rows");
                let hash = hex::encode(sha2::Sha256::digest(rows.join("\n")));
                snapshot.insert(table, (rows.len(), hash));
            }
        }
    }
    snapshot
}

/// The WHERE clause for `only_user` (`?` for the bound user id), or `None`
/// when the table is to be left out.
fn user_filter(columns: &[String], only_user: Option<&str>) -> Option<String> {
    match only_user {
        None => Some(String::new()),
        Some(_) if columns.iter().any(|c| c == "user_id") => Some(" WHERE user_id = ?".to_owned()),
        Some(_) => None,
    }
}

fn snapshot_columns<'a>(
    table: &str,
    columns: &'a [String],
    ignore: &[(&str, &str)],
) -> Vec<&'a str> {
    columns
        .iter()
        .map(String::as_str)
        .filter(|c| !ignore.iter().any(|(t, col)| *t == table && col == c))
        .collect()
}

/// Takes snapshots until two in a row agree (writes queued before, such as
/// the usage flush, have landed); gives up after `within`.
pub async fn settled_snapshot(
    url: &str,
    backend: Backend,
    only_user: Option<&str>,
    ignore: &[(&str, &str)],
    pause: std::time::Duration,
    within: std::time::Duration,
) -> std::collections::BTreeMap<String, (usize, String)> {
    let deadline = std::time::Instant::now() + within;
    let mut last = db_snapshot(url, backend, only_user, ignore).await;
    loop {
        tokio::time::sleep(pause).await;
        let next = db_snapshot(url, backend, only_user, ignore).await;
        if next == last || std::time::Instant::now() >= deadline {
            return next;
        }
        last = next;
    }
}

/// The tables whose rows differ between two snapshots.
pub fn snapshot_diff(
    before: &std::collections::BTreeMap<String, (usize, String)>,
    after: &std::collections::BTreeMap<String, (usize, String)>,
) -> Vec<String> {
    let mut tables: std::collections::BTreeSet<&String> = before.keys().collect();
    tables.extend(after.keys());
    tables
        .into_iter()
        .filter(|t| before.get(*t) != after.get(*t))
        .map(|t| format!("{t}: {:?} -> {:?}", before.get(t), after.get(t)))
        .collect()
}

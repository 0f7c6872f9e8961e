//! The log never holds a secret, at any level, and cannot be flooded.
//!
//! These run the real `fleetmind` binary (server and CLI) with
//! `FLEETMIND_LOG=trace`, the most any operator can turn on, and search
//! everything it wrote for every key, key hash and email used. The admin
//! key is made with the CLI before the server starts, so the server prints
//! no first-start banner (which shows the key on stdout by design); the
//! CLI prints the keys it issues on stdout by design too: that is output,
//! not log, so the CLI's stderr is searched and its stdout is not.

use crate::support::binary::{BIN, BinaryServer};
use crate::support::keys::stored_hash;
use crate::support::*;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The server's log: everything it wrote, stdout then stderr.
async fn stopped(server: BinaryServer) -> String {
    let written = server.stop().await;
    written.stdout + &written.stderr
}

/// Runs the CLI with `FLEETMIND_LOG=trace`; its stdout (parsed as JSON)
/// and its stderr (a log, to be searched).
async fn cli(database_url: &str, args: &[&str]) -> (Value, String) {
    let output = tokio::process::Command::new(BIN)
        .arg("--database-url")
        .arg(database_url)
        .args(args)
        .env_remove("DATABASE_URL")
        .env("FLEETMIND_LOG", "trace")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("the CLI did not finish within 60 s")
        .expect("run the CLI");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "fleetmind {args:?}: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("fleetmind {args:?}: not JSON ({e}): {stdout}"));
    (value, stderr)
}

fn text(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value}"))
        .to_owned()
}

/// Fails naming each secret found in `log` and the line it is on (with the
/// secret itself masked, so the failure does not repeat it).
fn assert_no_secret(what: &str, log: &str, secrets: &[(String, String)]) {
    let mut found = Vec::new();
    for (name, secret) in secrets {
        for line in log.lines().filter(|line| line.contains(secret.as_str())) {
            let line: String = line
                .replace(secret.as_str(), "<SECRET>")
                .chars()
                .take(300)
                .collect();
            found.push(format!("{name} in: {line}"));
        }
    }
    assert!(
        found.is_empty(),
        "{what} holds secrets:\n{}",
        found.join("\n")
    );
}

backend_test!(
    at_trace_level_no_key_hash_or_email_reaches_the_log,
    |t| async move {
        let mut cli_logs = String::new();
        let mut keys = Vec::new();
        let mut emails = vec!["boss@example.com", "carol@example.com", "dave@example.com"];

        // The admin key, made before the server starts: no banner.
        let (admin, log) = cli(
            &t.url,
            &[
                "keys",
                "create",
                "--email",
                "boss@example.com",
                "--admin",
                "--json",
            ],
        )
        .await;
        cli_logs += &log;
        let admin_key = text(&admin, "api_key");
        keys.push(admin_key.clone());

        let server = BinaryServer::start(&t.url, "trace").await;
        let url = server.mcp_url();
        let ops = connect(&url, &admin_key).await.expect("connect admin");

        // Keys issued and rotated through the admin tools.
        let (created, is_error) = call(
            &ops,
            "admin_create_api_key",
            json!({"email": "carol@example.com", "name": "carol's laptop", "scopes": ["orders:read", "orders:write", "drivers:write"]}),
        )
        .await;
        assert!(!is_error, "{created}");
        let carol_key = text(&created, "api_key");
        let carol_id = created["key_id"].as_i64().expect("key_id");
        let (rotated, is_error) = call(
            &ops,
            "admin_rotate_api_key",
            json!({"key_id": carol_id, "grace_minutes": 5}),
        )
        .await;
        assert!(!is_error, "{rotated}");
        let carol_next = text(&rotated, "api_key");
        let (listed, is_error) = call(&ops, "admin_list_api_keys", json!({})).await;
        assert!(!is_error && listed["count"].as_u64() >= Some(3), "{listed}");
        // Usage reports filtered by email (issue 13): the email stays out of
        // the logs too.
        let (usage, is_error) = call(
            &ops,
            "admin_key_usage",
            json!({"email": "carol@example.com", "since": "24h"}),
        )
        .await;
        assert!(!is_error, "{usage}");
        keys.extend([carol_key.clone(), carol_next.clone()]);

        // Keys issued and rotated through the CLI while the server runs.
        let (dave, log) = cli(
            &t.url,
            &[
                "keys",
                "create",
                "--email",
                "dave@example.com",
                "--scopes",
                "orders:read,drivers:read",
                "--json",
            ],
        )
        .await;
        cli_logs += &log;
        let dave_id = dave["key_id"].as_i64().expect("key_id").to_string();
        let (dave_next, log) = cli(
            &t.url,
            &[
                "keys",
                "rotate",
                "--key-id",
                &dave_id,
                "--grace-minutes",
                "5",
                "--json",
            ],
        )
        .await;
        cli_logs += &log;
        let (dave_next_id, dave_next) = (
            dave_next["key_id"].as_i64().expect("key_id").to_string(),
            text(&dave_next, "api_key"),
        );
        keys.extend([text(&dave, "api_key"), dave_next.clone()]);
        let (_, log) = cli(
            &t.url,
            &["keys", "usage", "--email", "dave@example.com", "--json"],
        )
        .await;
        cli_logs += &log;

        // The keys in use: by header and by query, on fleet tools with
        // tenant data that holds emails too.
        let by_header = connect(&url, &carol_next).await.expect("connect carol");
        let (order, is_error) = call(
            &by_header,
            "create_order",
            json!({"customer_name": "Zed", "customer_email": "zed@example.com", "delivery_address": "1 Main St", "delivery_lat": 52.5, "delivery_lng": 13.4, "expected_delivery_time": "2027-01-15T15:00:00Z"}),
        )
        .await;
        assert!(!is_error, "{order}");
        let (driver, is_error) = call(
            &by_header,
            "create_driver",
            json!({"name": "Dee", "email": "dee@example.com", "vehicle_type": "van", "current_address": "2 Side St", "current_lat": 52.5, "current_lng": 13.4}),
        )
        .await;
        assert!(!is_error, "{driver}");
        emails.extend(["zed@example.com", "dee@example.com"]);
        let by_query = connect_url(&format!("{url}?api_key={carol_key}"))
            .await
            .expect("connect carol's old key by query");
        let (found, is_error) =
            call(&by_query, "search_orders", json!({"search_term": "zed@"})).await;
        assert!(
            !is_error && found.to_string().contains("zed@example.com"),
            "{found}"
        );
        let by_query = connect_url(&format!("{url}?api_key={dave_next}"))
            .await
            .expect("connect dave by query");
        let (counted, is_error) = call(&by_query, "count_orders", json!({})).await;
        assert!(!is_error, "{counted}");
        let (who, is_error) = call(&by_query, "whoami", json!({})).await;
        assert!(!is_error, "{who}");

        // Refused keys are secrets too: a revoked one, an unknown one.
        let (revoked, log) = cli(
            &t.url,
            &["keys", "revoke", "--key-id", &dave_next_id, "--json"],
        )
        .await;
        cli_logs += &log;
        assert_eq!(revoked["revoked"][0]["state"], "revoked", "{revoked}");
        let unknown = fleetmind::keys::ApiKey::generate().expect("key");
        keys.push(unknown.expose().to_owned());
        for key in [dave_next.as_str(), unknown.expose()] {
            let refused = eventually(Duration::from_secs(10), || async {
                connect(&url, key).await.is_err()
            })
            .await;
            assert!(refused, "a revoked or unknown key was accepted");
        }
        assert!(
            connect_url(&format!("{url}?api_key={}", unknown.expose()))
                .await
                .is_err()
        );

        for client in [ops, by_header, by_query] {
            let _ = client.cancel().await;
        }
        let server_log = stopped(server).await;

        // The filter let debug and trace through (nothing here logs at trace
        // once rmcp is capped): the test would prove nothing otherwise.
        // The access lines (one per tool call) were written, and searched.
        for sign in [
            "DEBUG",
            "sqlx::query",
            "fleetmind::auth",
            "fleetmind::access",
        ] {
            assert!(
                server_log.contains(sign),
                "{:?}: no '{sign}' in the server log",
                t.backend
            );
        }
        assert!(
            cli_logs.contains("sqlx::query"),
            "{:?}: the CLI did not log at trace",
            t.backend
        );
        let mut secrets: Vec<(String, String)> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            secrets.push((format!("key #{i}"), key.clone()));
            secrets.push((format!("hash of key #{i}"), stored_hash(key)));
        }
        for email in &emails {
            secrets.push((format!("email {email}"), email.to_string()));
        }
        assert_no_secret(
            &format!("{:?}: server log", t.backend),
            &server_log,
            &secrets,
        );
        assert_no_secret(&format!("{:?}: CLI stderr", t.backend), &cli_logs, &secrets);
        // Nothing shaped like a key or a hash either (a key not in the list).
        assert_eq!(
            crate::support::keys::leaks_secret(&server_log),
            None,
            "{:?}",
            t.backend
        );
        assert_eq!(
            crate::support::keys::leaks_secret(&cli_logs),
            None,
            "{:?}",
            t.backend
        );
    }
);

/// Sends `count` requests over one keep-alive connection, each with the
/// extra header line `auth` (empty: no key), and reads every answer.
async fn flood(port: u16, count: usize, auth: &str) {
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{auth}Content-Length: 2\r\n\r\n{{}}"
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    for _ in 0..count {
        stream.write_all(request.as_bytes()).await.expect("send");
        // Read one whole answer: its head, then Content-Length bytes.
        loop {
            if let Some(end) = memchr::memmem::find(&buffer, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                assert!(head.starts_with("http/1.1 401"), "{head}");
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("content-length");
                if buffer.len() >= end + 4 + length {
                    buffer.drain(..end + 4 + length);
                    break;
                }
            }
            let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
                .await
                .expect("an answer within 10 s")
                .expect("read");
            assert!(read > 0, "the server closed the connection");
            buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

/// The refusals of one reason the log reports, and in how many lines.
fn reported(log: &str, reason: &str) -> (u64, usize) {
    let mut total = 0;
    let mut lines = 0;
    for line in log.lines() {
        if line.contains(&format!("request refused: {reason}")) {
            total += 1;
            lines += 1;
        } else if let Some(rest) = line.split("refused ").nth(1)
            && let Some((count, tail)) = rest.split_once(" requests: ")
            && tail.starts_with(reason)
        {
            total += count.parse::<u64>().expect("a count");
            lines += 1;
        }
    }
    (total, lines)
}

/// A flood of keyless and malformed-key requests writes about one line per
/// second per reason, and the lines' counts add up to every refusal. (The
/// refusals happen before any database work: one backend is enough.)
#[tokio::test]
async fn a_flood_of_refused_requests_writes_one_line_per_second_per_reason() {
    const PER_CONNECTION: usize = 500;
    const CONNECTIONS: usize = 4;
    let t = sqlite_db().await;
    issue_key(&t.db, "boss@example.com", None).await;
    let server = BinaryServer::start(&t.url, "info").await;
    let port = server.port;
    let started = Instant::now();
    let mut floods = Vec::new();
    for auth in ["", "Authorization: Bearer not-a-key\r\n"] {
        for _ in 0..CONNECTIONS {
            floods.push(tokio::spawn(flood(port, PER_CONNECTION, auth)));
        }
    }
    for flood in floods {
        flood.await.expect("flood");
    }
    let elapsed = started.elapsed();
    // What is still counted is written with the next refusal a second on.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    flood(port, 1, "").await;
    flood(port, 1, "Authorization: Bearer not-a-key\r\n").await;
    let log = stopped(server).await;

    let sent = (PER_CONNECTION * CONNECTIONS + 1) as u64;
    // One line per started second of the flood, plus the first refusal's
    // own line and the last one's.
    let most_lines = elapsed.as_secs() as usize + 3;
    for reason in ["no API key was sent", "the API key is malformed"] {
        let (total, lines) = reported(&log, reason);
        assert_eq!(total, sent, "'{reason}': counts in the log\n{log}");
        assert!(
            lines <= most_lines,
            "'{reason}': {lines} lines for {sent} refusals in {elapsed:?}\n{log}"
        );
    }
    assert!(
        log.lines().count() < 40,
        "{} log lines for {} refusals:\n{log}",
        log.lines().count(),
        2 * sent
    );
}

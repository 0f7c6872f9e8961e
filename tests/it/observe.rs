//! What operators see (issue 11): the log format, the access line of every
//! tool call, refusal lines with the client address and key prefix, and the
//! Prometheus metrics. They run the real binary, its stderr a file (never a
//! terminal), on both backends.

use crate::support::binary::{BinaryServer, free_port};
use crate::support::keys::{leaks_secret, stored_hash};
use crate::support::*;
use fleetmind::key_admin::{self, IssuedKey};
use fleetmind::scopes::{Scope, Scopes};
use fleetmind::store::RevokeTarget;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// The fields of an access line, and no others.
const ACCESS_FIELDS: &[&str] = &[
    "client",
    "duration_ms",
    "key_id",
    "message",
    "outcome",
    "tool",
    "user_id",
];

fn orders_reader() -> Option<Scopes> {
    let mut scopes = Scopes::empty();
    scopes.insert(Scope::OrdersRead);
    Some(scopes)
}

/// Revokes `key` and waits until the server refuses it.
async fn revoke_and_see_it_refused(t: &TestDb, url: &str, key: &IssuedKey) {
    key_admin::revoke(
        t.db.as_ref(),
        RevokeTarget::KeyId(key.record.key_id),
        "cli",
        chrono::Utc::now(),
    )
    .await
    .expect("revoke");
    let http = reqwest::Client::new();
    let refused = eventually(Duration::from_secs(10), || async {
        whoami_status(&http, url, key.api_key.expose()).await == 401
    })
    .await;
    assert!(
        refused,
        "{:?}: the revoked key was still accepted",
        t.backend
    );
}

/// Every key, key hash and email of `keys`.
fn secrets_of(keys: &[&IssuedKey]) -> Vec<String> {
    keys.iter()
        .flat_map(|k| {
            [
                k.api_key.expose().to_owned(),
                stored_hash(k.api_key.expose()),
                k.record.email.clone(),
            ]
        })
        .collect()
}

fn assert_holds_none(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what} holds a key, hash or email"
        );
    }
    assert_eq!(leaks_secret(text), None, "{what}");
}

backend_test!(
    json_log_lines_parse_and_every_tool_call_has_one_access_line_without_secrets,
    |t| async move {
        let admin = issue_key(&t.db, "boss@example.com", Some(Scopes::admin())).await;
        let reader = issue_key(&t.db, "reader@example.com", orders_reader()).await;
        let gone = issue_key(&t.db, "gone@example.com", None).await;
        // NO_COLOR unset: stderr being a file is enough for no colours.
        let server = BinaryServer::start_with(&t.url, "info", &["--log-format", "json"], &[]).await;
        let url = server.mcp_url();

        let boss = connect(&url, admin.api_key.expose())
            .await
            .expect("connect");
        let (_, is_error) = call(&boss, "whoami", json!({})).await;
        assert!(!is_error);
        let (_, is_error) = call(
            &boss,
            "get_order_details",
            json!({"order_id": "no-such-order"}),
        )
        .await;
        assert!(is_error, "a missing order is a tool error");
        let limited = connect(&url, reader.api_key.expose())
            .await
            .expect("connect");
        let (_, is_error) = call(&limited, "create_driver", json!({"name": "Dee"})).await;
        assert!(is_error, "denied");
        revoke_and_see_it_refused(&t, &url, &gone).await;
        for client in [boss, limited] {
            let _ = client.cancel().await;
        }
        let written = server.stop().await;
        let log = written.stderr;

        assert!(
            !log.contains('\u{1b}'),
            "{:?}: ANSI codes in a log file",
            t.backend
        );
        let lines: Vec<Value> = log
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{:?}: not a JSON line ({e}): {line}", t.backend))
            })
            .collect();
        for line in &lines {
            for field in ["timestamp", "level", "target"] {
                assert!(line[field].is_string(), "no {field}: {line}");
            }
            assert!(line["fields"]["message"].is_string(), "no message: {line}");
        }

        let access: Vec<&Value> = lines
            .iter()
            .filter(|l| l["target"] == "fleetmind::access")
            .map(|l| &l["fields"])
            .collect();
        let expected = [
            ("whoami", "ok", &admin),
            ("get_order_details", "error", &admin),
            ("create_driver", "denied", &reader),
        ];
        assert_eq!(
            access.len(),
            expected.len(),
            "{:?}: one line per tools/call: {access:?}",
            t.backend
        );
        for ((tool, outcome, key), line) in expected.iter().zip(&access) {
            assert_eq!(line["tool"], *tool, "{line}");
            assert_eq!(line["outcome"], *outcome, "{line}");
            assert_eq!(line["user_id"], key.record.user_id.as_str(), "{line}");
            assert_eq!(line["key_id"], key.record.key_id, "{line}");
            assert_eq!(line["client"], "127.0.0.1", "{line}");
            assert!(
                line["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
                "{line}"
            );
            let mut fields: Vec<&str> = line
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            fields.sort_unstable();
            assert_eq!(fields, ACCESS_FIELDS, "{line}");
        }
        let level = lines.iter().find(|l| l["target"] == "fleetmind::access");
        assert_eq!(level.map(|l| &l["level"]), Some(&json!("INFO")));

        // The revoked key's refusal names its prefix and the client.
        let refusal = lines
            .iter()
            .map(|l| &l["fields"])
            .find(|f| f["reason"] == "the API key has been revoked")
            .unwrap_or_else(|| {
                panic!(
                    "{:?}: no refusal line for the revoked key\n{log}",
                    t.backend
                )
            });
        assert_eq!(
            refusal["key.prefix"],
            gone.record.key_prefix.as_str(),
            "{refusal}"
        );
        assert_eq!(refusal["client"], "127.0.0.1", "{refusal}");

        let secrets = secrets_of(&[&admin, &reader, &gone]);
        assert_holds_none(&format!("{:?}: stderr", t.backend), &log, &secrets);
        assert_holds_none(
            &format!("{:?}: stdout", t.backend),
            &written.stdout,
            &secrets,
        );
    }
);

/// The value of the sample `series` (name and labels exactly as written).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// The label names used anywhere in a Prometheus text body.
fn label_names(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| Some(line.split_once('{')?.1.split_once('}')?.0))
        .flat_map(|labels| labels.split(','))
        .filter_map(|pair| Some(pair.split_once('=')?.0.to_owned()))
        .collect()
}

async fn scrape(http: &reqwest::Client, url: &str) -> (u16, String, String) {
    let response = http
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("scrape");
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, kind, response.text().await.unwrap_or_default())
}

backend_test!(
    every_metric_is_served_after_traffic_with_bounded_labels_only,
    |t| async move {
        let admin = issue_key(&t.db, "boss@example.com", Some(Scopes::admin())).await;
        let reader = issue_key(&t.db, "reader@example.com", orders_reader()).await;
        let gone = issue_key(&t.db, "gone@example.com", None).await;
        let metrics_port = free_port();
        let bind = format!("127.0.0.1:{metrics_port}");
        let server =
            BinaryServer::start_with(&t.url, "info", &["--metrics-bind", &bind], &[]).await;
        let url = server.mcp_url();
        let metrics_url = format!("http://{bind}/metrics");
        let http = reqwest::Client::new();

        assert_eq!(
            whoami_status(&http, &url, admin.api_key.expose()).await,
            200
        );
        assert_eq!(
            whoami_status(&http, &url, admin.api_key.expose()).await,
            200
        );
        let missing = http
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body("{}")
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("answer");
        assert_eq!(missing.status().as_u16(), 401);
        assert_eq!(whoami_status(&http, &url, "not-a-key").await, 401);
        let unknown = fleetmind::keys::ApiKey::generate().expect("key");
        assert_eq!(whoami_status(&http, &url, unknown.expose()).await, 401);
        revoke_and_see_it_refused(&t, &url, &gone).await;
        let limited = connect(&url, reader.api_key.expose())
            .await
            .expect("connect");
        let (_, is_error) = call(&limited, "create_driver", json!({"name": "Dee"})).await;
        assert!(is_error);
        let _ = limited.cancel().await;

        // The watch reports in within a few seconds of the start.
        let body = std::sync::Mutex::new(String::new());
        let up = eventually(Duration::from_secs(15), || async {
            let (status, kind, text) = scrape(&http, &metrics_url).await;
            assert_eq!(status, 200);
            assert!(kind.starts_with("text/plain"), "{kind}");
            let up = sample(&text, "fleetmind_key_watch_up") == Some(1.0);
            *body.lock().expect("body") = text;
            up
        })
        .await;
        let body = body.into_inner().expect("body");
        assert!(up, "{:?}: key watch not up\n{body}", t.backend);

        let at_least_one = [
            r#"fleetmind_http_requests_total{status="200"}"#,
            r#"fleetmind_http_requests_total{status="401"}"#,
            r#"fleetmind_auth_refusals_total{reason="missing"}"#,
            r#"fleetmind_auth_refusals_total{reason="malformed"}"#,
            r#"fleetmind_auth_refusals_total{reason="unknown"}"#,
            r#"fleetmind_auth_refusals_total{reason="revoked"}"#,
            r#"fleetmind_tool_calls_total{tool="whoami",outcome="ok"}"#,
            r#"fleetmind_tool_calls_total{tool="create_driver",outcome="denied"}"#,
            r#"fleetmind_tool_call_duration_seconds_count{tool="whoami"}"#,
            r#"fleetmind_tool_call_duration_seconds_bucket{tool="whoami",le="+Inf"}"#,
            "fleetmind_key_cache_hits_total",
            "fleetmind_key_cache_misses_total",
        ];
        for series in at_least_one {
            let value = sample(&body, series);
            assert!(
                value >= Some(1.0),
                "{:?}: {series} = {value:?}\n{body}",
                t.backend
            );
        }
        let present = [
            r#"fleetmind_auth_refusals_total{reason="expired"}"#,
            r#"fleetmind_auth_refusals_total{reason="throttled"}"#,
            r#"fleetmind_auth_refusals_total{reason="unavailable"}"#,
            r#"fleetmind_db_pool_connections{state="idle"}"#,
            r#"fleetmind_db_pool_connections{state="in_use"}"#,
            r#"fleetmind_tool_call_duration_seconds_sum{tool="whoami"}"#,
        ];
        for series in present {
            assert!(
                sample(&body, series).is_some(),
                "{:?}: no {series}\n{body}",
                t.backend
            );
        }
        assert!(
            body.contains("# TYPE fleetmind_tool_call_duration_seconds histogram"),
            "{body}"
        );

        // Labels: bounded values only, never who called.
        let allowed: BTreeSet<String> = ["status", "reason", "tool", "outcome", "le", "state"]
            .map(String::from)
            .into();
        let used = label_names(&body);
        assert!(used.is_subset(&allowed), "{:?}: labels {used:?}", t.backend);
        for key in [&admin, &reader, &gone] {
            assert!(
                !body.contains(key.record.user_id.as_str()),
                "a user id in the metrics"
            );
            assert!(
                !body.contains(&key.record.key_prefix),
                "a key prefix in the metrics"
            );
        }
        assert!(!body.contains("fm_"), "key material in the metrics");

        // Not on the MCP listener.
        let on_mcp = http
            .get(format!("http://127.0.0.1:{}/metrics", server.port))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("answer");
        assert_eq!(on_mcp.status().as_u16(), 404);

        let written = server.stop().await;
        // A text log in a file: no colour codes, though NO_COLOR is unset.
        assert!(
            !written.stderr.contains('\u{1b}'),
            "{:?}: ANSI codes in a log file",
            t.backend
        );
        assert!(
            written.stderr.contains("fleetmind::access"),
            "{}",
            written.stderr
        );
    }
);

/// The TCP ports `pid` listens on (from /proc: its socket inodes in the
/// listening entries of /proc/net/tcp and tcp6).
fn listening_ports(pid: u32) -> BTreeSet<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's fds")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut ports = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN.
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                let port = cols[1].rsplit(':').next().unwrap_or_default();
                ports.insert(u16::from_str_radix(port, 16).expect("a port"));
            }
        }
    }
    ports
}

#[tokio::test]
async fn without_metrics_bind_the_server_listens_on_its_one_port() {
    // The listener does not depend on the database: one backend is enough.
    let t = sqlite_db().await;
    let server = BinaryServer::start_with(&t.url, "info", &[], &[]).await;
    let pid = server.pid().expect("running");
    assert_eq!(listening_ports(pid), BTreeSet::from([server.port]));
    let written = server.stop().await;
    assert!(!written.stderr.contains("metrics"), "{}", written.stderr);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_lines_name_the_forwarded_client() {
    // Where the address comes from does not depend on the database.
    let t = sqlite_db().await;
    let key = issue_key(&t.db, "boss@example.com", None).await;
    let server =
        BinaryServer::start_with(&t.url, "info", &["--trusted-proxies", "127.0.0.1"], &[]).await;
    let url = server.mcp_url();
    let http = reqwest::Client::new();
    assert_eq!(
        forwarded_whoami_status(&http, &url, key.api_key.expose(), "203.0.113.9").await,
        200
    );
    let unknown = fleetmind::keys::ApiKey::generate().expect("key");
    assert_eq!(
        forwarded_whoami_status(&http, &url, unknown.expose(), "203.0.113.9").await,
        401
    );
    // No keep-alive connection left for the graceful stop to wait on: a
    // stop past its deadline is a kill, which loses the buffered lines.
    drop(http);
    let log = server.stop().await.stderr;
    let line = |sign: &str| {
        log.lines()
            .find(|l| l.contains(sign))
            .unwrap_or_else(|| panic!("no '{sign}' line:\n{log}"))
            .to_owned()
    };
    assert!(
        line("fleetmind::access").contains("client=203.0.113.9"),
        "{log}"
    );
    assert!(
        line("request refused: the API key is not known").contains("client=203.0.113.9"),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "ANSI codes in a log file");
}

#[tokio::test]
async fn console_requests_have_access_lines_without_form_contents() {
    // What is logged does not depend on the database: one backend is enough.
    let t = sqlite_db().await;
    let admin = issue_key(&t.db, "boss@example.com", Some(Scopes::admin())).await;
    let server = BinaryServer::start_with(&t.url, "info", &[], &[]).await;
    let base = format!("http://127.0.0.1:{}", server.port);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // A refused sign-in: the key typed into the form is never logged.
    let wrong = fleetmind::keys::ApiKey::generate().expect("key");
    let refused = http
        .post(format!("{base}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("api_key={}", wrong.expose()))
        .send()
        .await
        .expect("sign-in answered");
    assert_eq!(refused.status().as_u16(), 401);
    // A good sign-in, then an invitation link with a made-up token.
    let signed_in = http
        .post(format!("{base}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("api_key={}", admin.api_key.expose()))
        .send()
        .await
        .expect("sign-in answered");
    assert_eq!(signed_in.status().as_u16(), 303);
    let token = "Zq".repeat(22);
    http.get(format!("{base}/console/invite/{token}"))
        .send()
        .await
        .expect("invitation page answered");
    drop(http);
    let log = server.stop().await.stderr;
    let console_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("fleetmind::access") && l.contains(" console "))
        .collect();
    let has = |route: &str, status: &str| {
        console_lines.iter().any(|l| {
            l.contains(&format!("route=\"{route}\""))
                && l.contains(&format!("status={status}"))
                && l.contains("method=\"")
                && l.contains("duration_ms=")
                && l.contains("client=127.0.0.1")
        })
    };
    assert!(has("/console/login", "401"), "{log}");
    // The refused sign-in is logged like a refusal on /mcp.
    assert!(
        log.lines()
            .any(|l| l.contains("request refused: the API key is not known")
                && l.contains("client=127.0.0.1")),
        "{log}"
    );
    assert!(has("/console/login", "303"), "{log}");
    assert!(
        console_lines
            .iter()
            .any(|l| l.contains("route=\"/console/invite/{token}\"")),
        "{log}"
    );
    for secret in [wrong.expose(), admin.api_key.expose(), token.as_str()] {
        assert!(!log.contains(secret), "a key or token in the log:\n{log}");
    }
    assert!(!log.contains("boss@example.com"), "an email in the log");
}

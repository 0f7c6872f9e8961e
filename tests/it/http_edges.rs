//! The HTTP edge over real sockets on 127.0.0.1, on both backends: the
//! `Host`/`Origin` check before the key, JSON-RPC errors for bodies rmcp
//! cannot use, the header, idle and request timeouts, the connection cap,
//! and a stop that still finishes the request in flight.
//!
//! Timeouts are set short (about a second) and every wait for a close is
//! bounded generously: a late close on a loaded machine passes, a close that
//! never comes (or comes too early) fails.

use crate::support::*;
use fleetmind::app::ServeOptions;
use fleetmind::edge::EdgeOptions;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for any close the server owes on a loaded 2-core machine.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// A raw HTTP/1.1 POST of `body` to `target` with these extra header lines.
fn post_bytes(target: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut head = format!("POST {target} HTTP/1.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// The usual headers of an MCP POST to the server at `addr`, with `key`.
fn mcp_headers<'a>(host: &'a str, key: Option<&'a str>) -> Vec<(&'a str, String)> {
    let mut headers = vec![
        ("host", host.to_owned()),
        ("content-type", "application/json".to_owned()),
        ("accept", "application/json, text/event-stream".to_owned()),
        ("mcp-protocol-version", "2025-11-25".to_owned()),
    ];
    if let Some(key) = key {
        headers.push(("authorization", format!("Bearer {key}")));
    }
    headers
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one answer (head and a `content-length` body) from `stream`.
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut buf = Vec::new();
    let deadline = Instant::now() + CLOSE_WITHIN;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = response.parse(&buf) {
            let headers: Vec<(String, String)> = response
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().expect("content-length"))
                .expect("answers carry a content-length");
            if buf.len() >= len + length {
                return Answer {
                    status: response.code.expect("status"),
                    headers,
                    body: String::from_utf8_lossy(&buf[len..len + length]).into_owned(),
                };
            }
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before a whole answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `request` on a new connection and reads the answer.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    read_answer(&mut stream).await
}

/// A POST to `/mcp` with the usual headers.
async fn mcp_post(addr: SocketAddr, host: &str, key: Option<&str>, body: &str) -> Answer {
    let headers = mcp_headers(host, key);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    exchange(addr, &post_bytes("/mcp", &headers, body)).await
}

/// True when the server closes `stream` (EOF or reset) within `within`;
/// anything it sends before is read and dropped.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

const WHOAMI: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

fn assert_host_refusal(answer: &Answer, host: &str, what: &str) {
    assert_eq!(answer.status, 403, "{what}: {}", answer.body);
    let body = answer.json();
    assert_eq!(body["jsonrpc"], "2.0", "{what}");
    assert!(body["id"].is_null(), "{what}");
    assert_eq!(body["error"]["data"]["error"], "host_not_allowed", "{what}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(host), "{what}: names the host: {message}");
    assert!(
        message.contains("--allowed-hosts") && message.contains("FLEETMIND_ALLOWED_HOSTS"),
        "{what}: names the setting: {message}"
    );
    assert!(
        answer.header("www-authenticate").is_none(),
        "{what}: no key challenge"
    );
}

backend_test!(
    host_and_origin_are_refused_before_the_key_in_the_key_refusals_shape,
    |t| async move {
        let issued = issue_key(&t.db, "hana@example.com", None).await;
        let key = issued.api_key.expose();
        let server = start_server_with(
            t.db.clone(),
            ServeOptions {
                allowed_origins: vec!["https://app.example.com".into()],
                ..Default::default()
            },
        )
        .await;
        let addr = server.addr;
        let evil = "evil.example.com";

        // A foreign Host gets the host refusal with no key, a wrong key and
        // a valid key alike: the key is never looked at.
        assert_host_refusal(&mcp_post(addr, evil, None, WHOAMI).await, evil, "no key");
        assert_host_refusal(
            &mcp_post(addr, evil, Some("fm_not-a-key"), WHOAMI).await,
            evil,
            "malformed key",
        );
        assert_host_refusal(
            &mcp_post(addr, evil, Some(key), WHOAMI).await,
            evil,
            "valid key",
        );

        // The absolute form naming another host, with an allowed Host header.
        let headers = mcp_headers("127.0.0.1", Some(key));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let absolute = exchange(
            addr,
            &post_bytes(&format!("http://{evil}/mcp"), &headers, WHOAMI),
        )
        .await;
        assert_host_refusal(&absolute, evil, "absolute-form URI");

        // The same request for an allowed host is served.
        let ok = exchange(
            addr,
            &post_bytes(
                &format!("http://127.0.0.1:{}/mcp", addr.port()),
                &headers,
                WHOAMI,
            ),
        )
        .await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        assert_eq!(
            ok.json()["result"]["structuredContent"]["user_id"],
            issued.record.user_id.as_str()
        );

        // A configured Origin list: another origin is refused before the key.
        let mut with_origin = mcp_headers("127.0.0.1", None);
        with_origin.push(("origin", "https://evil.example.com".to_owned()));
        let h: Vec<(&str, &str)> = with_origin.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let refused = exchange(addr, &post_bytes("/mcp", &h, WHOAMI)).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        let body = refused.json();
        assert_eq!(body["error"]["data"]["error"], "origin_not_allowed");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--allowed-origins")
        );

        let mut good_origin = mcp_headers("127.0.0.1", Some(key));
        good_origin.push(("origin", "https://app.example.com".to_owned()));
        let h: Vec<(&str, &str)> = good_origin.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(
            exchange(addr, &post_bytes("/mcp", &h, WHOAMI)).await.status,
            200
        );
        server.stop().await;
    }
);

backend_test!(
    bodies_rmcp_cannot_use_get_json_rpc_errors_and_change_nothing,
    |t| async move {
        let issued = issue_key(&t.db, "ines@example.com", None).await;
        let key = issued.api_key.expose();
        let server = start_server(t.db.clone()).await;
        let addr = server.addr;
        let post =
            |body: String| async move { mcp_post(addr, "127.0.0.1", Some(key), &body).await };

        let create = |args: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"create_order","arguments":{args}}}}}"#
            )
        };
        let deep_args = format!(
            r#"{{"customer_name":"Deep","delivery_address":"1 Rue","delivery_lat":1.0,"delivery_lng":1.0,"notes":{}1{}}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        let cases: Vec<(&str, String, u16, i64, &str)> = vec![
            (
                "malformed JSON",
                r#"{"jsonrpc":"2.0","id":1,"method":"#.to_owned(),
                400,
                -32700,
                "not valid JSON",
            ),
            (
                "truncated create",
                create(r#"{"customer_name":"Half""#),
                400,
                -32700,
                "not valid JSON",
            ),
            (
                "batch",
                format!("[{WHOAMI},{}]", create(r#"{"customer_name":"Batch"}"#)),
                400,
                -32600,
                "batches",
            ),
            (
                "a bare value",
                "\"tools/call\"".to_owned(),
                400,
                -32600,
                "JSON object",
            ),
            (
                "arguments a string",
                create(r#""customer_name=Eve""#),
                200,
                -32602,
                "`arguments`",
            ),
            (
                "arguments an array",
                create(r#"[1,2]"#),
                200,
                -32602,
                "`arguments`",
            ),
            (
                "nested 5,000 deep in arguments",
                create(&deep_args),
                400,
                -32700,
                "nested too deeply",
            ),
            (
                "nested 100,000 deep in the id",
                format!(
                    r#"{{"jsonrpc":"2.0","method":"ping","id":{}}}"#,
                    "[".repeat(100_000)
                ),
                400,
                -32700,
                "nested too deeply",
            ),
        ];
        for (what, body, status, code, says) in cases {
            let answer = post(body).await;
            assert_eq!(answer.status, status, "{what}: {}", answer.body);
            let json = answer.json();
            assert_eq!(json["jsonrpc"], "2.0", "{what}");
            assert_eq!(json["error"]["code"], code, "{what}: {json}");
            let message = json["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(says), "{what}: {message}");
            if status == 200 {
                assert_eq!(json["id"], 9, "{what}: the request's id");
            }
        }

        // Nothing above was written, and the connection's server still serves.
        let client = connect(&server.mcp_url(), key).await.expect("connect");
        let (count, is_error) = call(&client, "count_orders", json!({})).await;
        assert!(!is_error, "{count}");
        assert_eq!(count["total"], 0, "a refused body wrote something: {count}");
        let _ = client.cancel().await;
        server.stop().await;
    }
);

fn short_timeouts(header: u64, idle: u64, request: u64) -> ServeOptions {
    ServeOptions {
        edge: EdgeOptions {
            header_timeout: Duration::from_secs(header),
            idle_timeout: Duration::from_secs(idle),
            request_timeout: Duration::from_secs(request),
            ..EdgeOptions::default()
        },
        ..Default::default()
    }
}

backend_test!(
    silent_slow_idle_and_long_requests_are_cut_off,
    |t| async move {
        let issued = issue_key(&t.db, "jun@example.com", None).await;
        let key = issued.api_key.expose();
        // Header 1 s, idle 4 s, request 1 s.
        let server = start_server_with(t.db.clone(), short_timeouts(1, 4, 1)).await;
        let addr = server.addr;

        // A connection that never sends anything.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        // Slowloris: a head that grows by a byte every 200 ms, never ending.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n")
            .await
            .unwrap();
        let dripping = tokio::spawn(async move {
            let started = Instant::now();
            while started.elapsed() < CLOSE_WITHIN {
                if slow.write_all(b"x").await.is_err() {
                    return Some(started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None
        });
        assert!(
            closed_within(&mut silent, CLOSE_WITHIN).await,
            "a silent connection stayed open"
        );
        assert!(
            dripping.await.unwrap().is_some(),
            "a head sent a byte at a time was never cut off"
        );

        // A keep-alive connection outlives the header timeout while idle
        // (the idle timeout is the longer one) and is closed after it.
        let mut kept = TcpStream::connect(addr).await.unwrap();
        let headers = mcp_headers("127.0.0.1", Some(key));
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        kept.write_all(&post_bytes("/mcp", &h, WHOAMI))
            .await
            .unwrap();
        assert_eq!(read_answer(&mut kept).await.status, 200);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        kept.write_all(&post_bytes("/mcp", &h, WHOAMI))
            .await
            .unwrap();
        assert_eq!(
            read_answer(&mut kept).await.status,
            200,
            "an idle keep-alive connection was closed by the header timeout"
        );
        assert!(
            closed_within(&mut kept, CLOSE_WITHIN).await,
            "an idle keep-alive connection stayed open"
        );

        // A request whose body never finishes: 503 with a JSON-RPC error
        // once the request timeout passes.
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        let mut head = post_bytes("/mcp", &h, WHOAMI);
        head.truncate(head.len() - 10);
        stalled.write_all(&head).await.unwrap();
        let answer = read_answer(&mut stalled).await;
        assert_eq!(answer.status, 503, "{}", answer.body);
        let body = answer.json();
        assert_eq!(body["error"]["data"]["error"], "timeout");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("timed out"),
            "{body}"
        );
        assert!(answer.header("retry-after").is_some());

        // And the server still answers.
        let after = mcp_post(addr, "127.0.0.1", Some(key), WHOAMI).await;
        assert_eq!(after.status, 200, "{}", after.body);
        server.stop().await;
    }
);

backend_test!(
    connections_past_the_cap_are_closed_at_once_and_counted,
    |t| async move {
        let issued = issue_key(&t.db, "kai@example.com", None).await;
        let key = issued.api_key.expose();
        let cap = 20;
        let mut options = short_timeouts(30, 60, 30);
        options.edge.max_connections = Some(cap);
        let server = start_server_with(t.db.clone(), options).await;
        assert_eq!(server.max_connections, cap);
        let addr = server.addr;

        let mut idle = Vec::new();
        for _ in 0..cap {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let stats = server.stats.clone();
        assert!(
            eventually(CLOSE_WITHIN, || async {
                stats.open_connections.load(Ordering::Relaxed) == cap as u64
            })
            .await,
            "the idle connections were not all accepted"
        );

        // One more: closed at once, without an answer, and counted.
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let _ = extra.write_all(WHOAMI.as_bytes()).await;
        assert!(
            closed_within(&mut extra, CLOSE_WITHIN).await,
            "past the cap but kept open"
        );
        assert!(stats.refused_connections.load(Ordering::Relaxed) >= 1);
        assert_eq!(stats.open_connections.load(Ordering::Relaxed), cap as u64);

        // Once the idle ones go, valid calls are served again.
        drop(idle);
        assert!(
            eventually(CLOSE_WITHIN, || async {
                stats.open_connections.load(Ordering::Relaxed) == 0
            })
            .await
        );
        let answer = mcp_post(addr, "127.0.0.1", Some(key), WHOAMI).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        server.stop().await;
    }
);

backend_test!(
    idle_connections_at_the_cap_make_room_after_the_header_timeout,
    |t| async move {
        let issued = issue_key(&t.db, "lea@example.com", None).await;
        let key = issued.api_key.expose();
        let cap = 20;
        let mut options = short_timeouts(1, 60, 30);
        options.edge.max_connections = Some(cap);
        let server = start_server_with(t.db.clone(), options).await;
        let addr = server.addr;

        // Twice the cap of connections that send nothing, held open.
        let mut idle = Vec::new();
        for _ in 0..2 * cap {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        // Within the header timeout (and a generous margin) they are all
        // gone and a valid call is served, while the idle sockets are still
        // held by the client.
        let served = eventually(CLOSE_WITHIN, || async {
            let Ok(mut stream) = TcpStream::connect(addr).await else {
                return false;
            };
            let headers = mcp_headers("127.0.0.1", Some(key));
            let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            if stream
                .write_all(&post_bytes("/mcp", &h, WHOAMI))
                .await
                .is_err()
            {
                return false;
            }
            let mut buf = [0u8; 12];
            matches!(
                tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf)).await,
                Ok(Ok(_)) if &buf == b"HTTP/1.1 200"
            )
        })
        .await;
        assert!(served, "idle connections at the cap kept a valid call out");
        for stream in &mut idle {
            assert!(
                closed_within(stream, CLOSE_WITHIN).await,
                "an idle connection stayed open"
            );
        }
        server.stop().await;
    }
);

backend_test!(
    stop_finishes_the_request_in_flight_and_closes_idle_connections,
    |t| async move {
        let issued = issue_key(&t.db, "mia@example.com", None).await;
        let key = issued.api_key.expose();
        let server = start_server(t.db.clone()).await;
        let addr = server.addr;

        let mut idle = TcpStream::connect(addr).await.unwrap();
        // A request whose body is still arriving when the server is stopped.
        let mut in_flight = TcpStream::connect(addr).await.unwrap();
        let headers = mcp_headers("127.0.0.1", Some(key));
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let request = post_bytes("/mcp", &h, WHOAMI);
        let (first, rest) = request.split_at(request.len() - 10);
        in_flight.write_all(first).await.unwrap();
        let stats = server.stats.clone();
        assert!(
            eventually(CLOSE_WITHIN, || async {
                stats.open_connections.load(Ordering::Relaxed) == 2
            })
            .await
        );
        // Give the server the head before stopping it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stopping = tokio::spawn(server.stop());
        tokio::time::sleep(Duration::from_millis(300)).await;
        in_flight.write_all(rest).await.unwrap();
        let answer = read_answer(&mut in_flight).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(
            closed_within(&mut idle, CLOSE_WITHIN).await,
            "idle connection kept at stop"
        );
        tokio::time::timeout(CLOSE_WITHIN, stopping)
            .await
            .expect("stop finished")
            .unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still accepting after stop"
        );
    }
);

backend_test!(
    a_keep_alive_connection_still_serves_after_a_refused_request_with_a_body,
    |t| async move {
        let issued = issue_key(&t.db, "kai@example.com", None).await;
        let key = issued.api_key.expose();
        let server = start_server(t.db.clone()).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let valid = mcp_headers("127.0.0.1", Some(key));
        let valid: Vec<(&str, &str)> = valid.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let unknown_key = format!("fm_{}", "A".repeat(43));
        let foreign_host = mcp_headers("evil.example", Some(key));
        let foreign_host: Vec<(&str, &str)> =
            foreign_host.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let unknown = mcp_headers("127.0.0.1", Some(&unknown_key));
        let unknown: Vec<(&str, &str)> = unknown.iter().map(|(n, v)| (*n, v.as_str())).collect();
        // Refused by the key, then by the Host: each one's body comes a
        // moment after its head, as a client writing them separately sends
        // it (the refusal is decided on the head alone).
        for (refused, status) in [(&unknown, 401), (&foreign_host, 403)] {
            let request = post_bytes("/mcp", refused, WHOAMI);
            let split = request.len() - WHOAMI.len();
            stream.write_all(&request[..split]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            stream.write_all(&request[split..]).await.unwrap();
            let answer = read_answer(&mut stream).await;
            assert_eq!(answer.status, status, "{}", answer.body);
            assert!(
                answer.header("connection").is_none(),
                "a small body was read, the connection is kept"
            );
            // The same connection serves the next request.
            stream
                .write_all(&post_bytes("/mcp", &valid, WHOAMI))
                .await
                .unwrap();
            let next = read_answer(&mut stream).await;
            assert_eq!(next.status, 200, "after a {status}: {}", next.body);
            assert_eq!(next.json()["result"]["isError"], false, "{}", next.body);
        }

        // A body too large to read for a refusal: answered at once (the
        // body is never sent) and the client is told the connection closes.
        let mut large = TcpStream::connect(server.addr).await.unwrap();
        let mut head = String::from("POST /mcp HTTP/1.1\r\n");
        for (name, value) in &unknown {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("content-length: 1000000\r\n\r\n");
        large.write_all(head.as_bytes()).await.unwrap();
        let answer = read_answer(&mut large).await;
        assert_eq!(answer.status, 401, "{}", answer.body);
        assert_eq!(answer.header("connection"), Some("close"));
        assert!(
            closed_within(&mut large, CLOSE_WITHIN).await,
            "the connection said close and stayed open"
        );
        server.stop().await;
    }
);

//! Per-key limits enforced on requests (issue 13), real server, real HTTP,
//! both backends: the bucket admits exactly its capacity and then answers
//! 429 with the exact `Retry-After` (a manual clock moves, nothing sleeps);
//! the monthly quota runs out and comes back when the month turns; the
//! address list with and without trusted proxies; a change of limits while
//! the key is cached reaches another server within a second; calls admitted
//! on one server are taken from the other's bucket by the sync; requests
//! that are not tool calls are never counted; refusals are denied calls in
//! the usage rollup.

use crate::support::*;
use chrono::{TimeZone, Utc};
use fleetmind::app::{RunningServer, ServeOptions};
use fleetmind::auth::TrustedProxies;
use fleetmind::clock::Clock;
use fleetmind::limits::LimitsChange;
use fleetmind::store::Db;
use fleetmind::store::usage::UsageFilter;
use serde_json::{Value, json};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(30);

async fn set_limits(
    db: &Db,
    key_id: i64,
    rate: Option<u32>,
    quota: Option<u64>,
    ips: Option<&str>,
) {
    db.set_key_limits(
        key_id,
        &LimitsChange {
            rate_limit_per_minute: Some(rate),
            monthly_quota: Some(quota),
            allowed_ips: Some(ips.map(|list| list.parse().expect("allowlist"))),
        },
        "cli",
        chrono::Utc::now(),
    )
    .await
    .expect("set limits");
}

async fn server(db: &Db, clock: &Clock, proxies: &str) -> RunningServer {
    start_server_with(
        db.clone(),
        ServeOptions {
            clock: clock.clone(),
            trusted_proxies: proxies.parse::<TrustedProxies>().expect("proxies"),
            limits_sync_interval: Duration::from_millis(50),
            ..ServeOptions::default()
        },
    )
    .await
}

async fn call(url: &str, key: &str, tool: &str) -> HttpAnswer {
    tools_call_http(&reqwest::Client::new(), url, key, tool, json!({}), WITHIN)
        .await
        .expect("an answer")
}

/// A JSON-RPC request other than a tool call; its status.
async fn other_request(url: &str, key: &str, method: &str) -> u16 {
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": {}});
    status_of(mcp_post(
        &reqwest::Client::new(),
        url,
        key,
        body.to_string(),
    ))
    .await
}

/// The statuses of `n` whoami calls in a row.
async fn statuses(url: &str, key: &str, n: usize) -> Vec<u16> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        got.push(call(url, key, "whoami").await.status);
    }
    got
}

fn refusal_of(answer: &HttpAnswer) -> (&str, &str) {
    (
        answer.body["error"]["data"]["error"]
            .as_str()
            .unwrap_or_default(),
        answer.body["error"]["message"].as_str().unwrap_or_default(),
    )
}

backend_test!(
    the_bucket_admits_its_capacity_then_refuses_with_the_exact_retry_after,
    |t| async move {
        let clock = Clock::manual(Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap());
        let issued = issue_key(&t.db, "rate@example.com", None).await;
        let key = issued.api_key.expose();
        set_limits(&t.db, issued.record.key_id, Some(3), None, None).await;
        let server = server(&t.db, &clock, "").await;
        let url = server.mcp_url();

        // Not tool calls: never counted, however many.
        for method in ["initialize", "tools/list", "ping", "tools/list", "ping"] {
            let status = other_request(&url, key, method).await;
            assert!(status == 200 || status == 202, "{method}: {status}");
        }
        for n in 1..=3 {
            let answer = call(&url, key, "whoami").await;
            assert_eq!(answer.status, 200, "call {n}: {answer:?}");
        }
        let refused = call(&url, key, "whoami").await;
        assert_eq!(refused.status, 429, "{refused:?}");
        // 3 a minute: one token every 20 s.
        assert_eq!(refused.retry_after.as_deref(), Some("20"), "{refused:?}");
        let (code, message) = refusal_of(&refused);
        assert_eq!(code, "rate_limited");
        assert!(message.contains("3 tool calls a minute"), "{message}");
        assert_eq!(refused.body["jsonrpc"], "2.0");

        clock.advance(Duration::from_secs(19));
        let still = call(&url, key, "whoami").await;
        assert_eq!(still.retry_after.as_deref(), Some("1"), "{still:?}");
        clock.advance(Duration::from_secs(1));
        let answer = call(&url, key, "whoami").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let whoami = &answer.body["result"]["structuredContent"]["limits"];
        assert_eq!(whoami["rate_limit_per_minute"], 3, "{answer:?}");
        assert_eq!(whoami["calls_left_this_minute"], 0, "{answer:?}");
        server.stop().await;

        // The two refusals are denied calls of whoami in the usage rollup.
        let rows =
            t.db.tool_usage(&UsageFilter {
                key_id: Some(issued.record.key_id),
                limit: 100,
                ..UsageFilter::default()
            })
            .await
            .expect("usage");
        let whoami: Vec<_> = rows.iter().filter(|r| r.tool == "whoami").collect();
        assert_eq!(whoami.iter().map(|r| r.denied).sum::<i64>(), 2, "{rows:?}");
        assert_eq!(whoami.iter().map(|r| r.calls).sum::<i64>(), 4, "{rows:?}");
    }
);

backend_test!(
    the_quota_runs_out_and_comes_back_when_the_month_turns,
    |t| async move {
        let clock = Clock::manual(Utc.with_ymd_and_hms(2026, 11, 30, 23, 58, 30).unwrap());
        let issued = issue_key(&t.db, "quota@example.com", None).await;
        let key = issued.api_key.expose();
        set_limits(&t.db, issued.record.key_id, None, Some(3), None).await;
        let server = server(&t.db, &clock, "").await;
        let url = server.mcp_url();

        for n in 1..=3 {
            let answer = call(&url, key, "whoami").await;
            assert_eq!(answer.status, 200, "call {n}: {answer:?}");
        }
        let refused = call(&url, key, "whoami").await;
        assert_eq!(refused.status, 429, "{refused:?}");
        // Until 2026-12-01 00:00 UTC.
        assert_eq!(refused.retry_after.as_deref(), Some("90"), "{refused:?}");
        let (code, message) = refusal_of(&refused);
        assert_eq!(code, "quota_exhausted");
        assert!(
            message.contains("3 units") && message.contains("2026-12-01 00:00 UTC"),
            "{message}"
        );
        // A call that costs more than what is left is refused too.
        assert_eq!(call(&url, key, "calculate_route").await.status, 429);

        clock.advance(Duration::from_secs(89));
        assert_eq!(call(&url, key, "whoami").await.status, 429);
        clock.advance(Duration::from_secs(1));
        let answer = call(&url, key, "whoami").await;
        assert_eq!(answer.status, 200, "December: {answer:?}");
        let limits = &answer.body["result"]["structuredContent"]["limits"];
        assert_eq!(limits["monthly_quota"], 3, "{answer:?}");
        assert_eq!(limits["units_left_this_month"], 2, "{answer:?}");
        server.stop().await;
    }
);

backend_test!(
    the_address_list_with_and_without_trusted_proxies,
    |t| async move {
        let clock = Clock::system();
        let issued = issue_key(&t.db, "ips@example.com", None).await;
        let key = issued.api_key.expose();
        set_limits(
            &t.db,
            issued.record.key_id,
            None,
            None,
            Some("203.0.113.0/24"),
        )
        .await;
        let http = reqwest::Client::new();
        let whoami_from = |url: String, forwarded: Option<&'static str>| {
            let mut request = mcp_post(&http, &url, key, WHOAMI_CALL.to_owned());
            if let Some(forwarded) = forwarded {
                request = request.header("X-Forwarded-For", forwarded);
            }
            async move {
                let response = request.send().await.expect("answer");
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (
                    status,
                    body["error"]["data"]["error"].as_str().map(str::to_owned),
                )
            }
        };
        let refused = (403, Some("ip_not_allowed".to_owned()));

        // No trusted proxy: the peer (127.0.0.1) is the client, whatever
        // the header says.
        let direct = server(&t.db, &clock, "").await;
        assert_eq!(whoami_from(direct.mcp_url(), None).await, refused);
        assert_eq!(
            whoami_from(direct.mcp_url(), Some("203.0.113.9")).await,
            refused
        );
        // Not even `initialize` gets through from elsewhere.
        assert_eq!(
            other_request(&direct.mcp_url(), key, "initialize").await,
            403
        );
        direct.stop().await;

        // Behind a trusted proxy: the forwarded client is judged.
        let proxied = server(&t.db, &clock, "127.0.0.1/32").await;
        assert_eq!(
            whoami_from(proxied.mcp_url(), Some("203.0.113.9")).await,
            (200, None)
        );
        assert_eq!(
            whoami_from(proxied.mcp_url(), Some("198.51.100.7")).await,
            refused
        );
        proxied.stop().await;

        // The loopback allowed: the direct call passes.
        set_limits(&t.db, issued.record.key_id, None, None, Some("127.0.0.1")).await;
        let direct = server(&t.db, &clock, "").await;
        assert_eq!(whoami_from(direct.mcp_url(), None).await, (200, None));
        direct.stop().await;
    }
);

backend_test!(
    limits_changed_while_cached_apply_within_a_second_on_another_server,
    |t| async move {
        let clock = Clock::system();
        let issued = issue_key(&t.db, "replicas@example.com", None).await;
        let key = issued.api_key.expose();
        let a = server(&t.db, &clock, "").await;
        let b_db = fleetmind::store::open(&t.url, &Default::default())
            .await
            .expect("second pool");
        let b = server(&b_db, &clock, "").await;
        // Cached on B, with no limits.
        for _ in 0..3 {
            assert_eq!(call(&b.mcp_url(), key, "whoami").await.status, 200);
        }
        // Limited through A's database handle: one call a minute.
        let changed = std::time::Instant::now();
        set_limits(&t.db, issued.record.key_id, Some(1), None, None).await;
        let mut refused_after = None;
        while changed.elapsed() < Duration::from_secs(5) {
            if call(&b.mcp_url(), key, "whoami").await.status == 429 {
                refused_after = Some(changed.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let refused_after = refused_after.expect("B never applied the new limit");
        assert!(refused_after < Duration::from_secs(1), "{refused_after:?}");
        a.stop().await;
        b.stop().await;
    }
);

backend_test!(
    calls_admitted_on_one_server_are_taken_from_the_others_bucket,
    |t| async move {
        let clock = Clock::manual(Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap());
        let issued = issue_key(&t.db, "shared@example.com", None).await;
        let key = issued.api_key.expose();
        set_limits(&t.db, issued.record.key_id, Some(10), Some(1000), None).await;
        let a = server(&t.db, &clock, "").await;
        let b_db = fleetmind::store::open(&t.url, &Default::default())
            .await
            .expect("second pool");
        let b = server(&b_db, &clock, "").await;
        // Each server has met the key and synced it once.
        assert_eq!(call(&a.mcp_url(), key, "whoami").await.status, 200);
        assert_eq!(call(&b.mcp_url(), key, "whoami").await.status, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A spends the rest of the minute's 10.
        for n in 3..=10 {
            assert_eq!(
                call(&a.mcp_url(), key, "whoami").await.status,
                200,
                "call {n}"
            );
        }
        assert_eq!(call(&a.mcp_url(), key, "whoami").await.status, 429);
        // After a few syncs (50 ms each here) B knows: its bucket had 9.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let answer = call(&b.mcp_url(), key, "whoami").await;
        assert_eq!(
            (answer.status, refusal_of(&answer).0),
            (429, "rate_limited"),
            "B admitted a call A had used up: {answer:?}"
        );
        // And both count the month's units: 10 admitted.
        a.stop().await;
        b.stop().await;
        let month =
            t.db.limit_count(issued.record.key_id, 202611)
                .await
                .expect("count")
                .expect("row");
        assert_eq!((month.calls, month.units), (10, 10), "{month:?}");
    }
);

backend_test!(
    the_servers_default_rate_applies_to_keys_without_one,
    |t| async move {
        let clock = Clock::manual(Utc.with_ymd_and_hms(2026, 11, 10, 9, 0, 0).unwrap());
        let plain = issue_key(&t.db, "plain@example.com", None).await;
        let own = issue_key(&t.db, "own@example.com", None).await;
        set_limits(&t.db, own.record.key_id, Some(5), None, None).await;
        let server = start_server_with(
            t.db.clone(),
            ServeOptions {
                clock: clock.clone(),
                default_rate_limit_per_minute: Some(2),
                ..ServeOptions::default()
            },
        )
        .await;
        let url = server.mcp_url();
        // 2 a minute by default (30 s to the next token); the key's own 5 wins.
        let (plain_key, own_key) = (plain.api_key.expose(), own.api_key.expose());
        assert_eq!(
            statuses(&url, plain_key, 6).await,
            [200, 200, 429, 429, 429, 429]
        );
        assert_eq!(
            statuses(&url, own_key, 6).await,
            [200, 200, 200, 200, 200, 429]
        );
        let refused = call(&url, plain_key, "whoami").await;
        assert_eq!(refused.retry_after.as_deref(), Some("30"), "{refused:?}");
        server.stop().await;
    }
);

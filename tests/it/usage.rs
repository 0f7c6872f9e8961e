//! Per-key, per-tool usage reports (issue 13): the rows written equal the
//! calls made, whichever replica made them; an hour that turns starts new
//! rows; old rows are pruned; a tenant sees only its own usage; and
//! `fleetmind keys usage --json` has the documented shape.

use crate::support::fleet::order_args;
use crate::support::keys::{call_err, call_ok};
use crate::support::*;
use chrono::{DateTime, TimeZone, Utc};
use fleetmind::app::ServeOptions;
use fleetmind::clock::Clock;
use fleetmind::scopes::Scopes;
use fleetmind::store::Db;
use fleetmind::store::usage::{UsageDelta, UsageFilter};
use fleetmind::usage::{HOUR_SECS, ToolUsage, UsageFlusher, hour_of};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// 10:15 UTC: the calls before the clock moves land in the 10:00 row.
fn quarter_past_ten() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 10, 15, 0).unwrap()
}

/// A server on `clock` that writes usage only at shutdown (or every
/// `flush` if given), so the rows of a test are exactly its calls.
async fn server_on(
    db: Db,
    clock: &Clock,
    flush: Option<Duration>,
) -> fleetmind::app::RunningServer {
    start_server_with(
        db,
        ServeOptions {
            clock: clock.clone(),
            usage_flush_interval: flush.unwrap_or(Duration::from_secs(3600)),
            ..ServeOptions::default()
        },
    )
    .await
}

/// Every stored row as (key_id, tool, hour) -> (calls, errors, denied),
/// after checking that each row's histogram holds its calls.
async fn stored(db: &Db) -> BTreeMap<(i64, String, i64), (i64, i64, i64)> {
    let rows = db
        .tool_usage(&UsageFilter {
            since_hour: i64::MIN,
            limit: 100_000,
            ..UsageFilter::default()
        })
        .await
        .expect("read usage");
    rows.into_iter()
        .map(|r| {
            let timed: u64 = r.buckets.iter().sum();
            assert_eq!(timed as i64, r.calls, "histogram of {r:?}");
            assert_eq!(r.total_micros > 0, r.calls > 0, "durations of {r:?}");
            ((r.key_id, r.tool, r.hour), (r.calls, r.errors, r.denied))
        })
        .collect()
}

async fn calls(client: &Client, tool: &str, args: Value, n: usize) {
    for _ in 0..n {
        let _ = call(client, tool, args.clone()).await;
    }
}

backend_test!(
    usage_rows_equal_the_calls_made_across_replicas,
    |t| async move {
        let clock = Clock::manual(quarter_past_ten());
        let ten = hour_of(quarter_past_ten().timestamp());
        let a = issue_key(&t.db, "usage-a@example.com", None).await;
        let reader = Scopes::parse_list("orders:read").unwrap();
        let b = issue_key(&t.db, "usage-b@example.com", Some(reader)).await;
        let (ka, kb) = (a.record.key_id, b.record.key_id);

        // Two replicas on one database, each counting its own calls.
        let one = server_on(t.db.clone(), &clock, None).await;
        let two = server_on(t.db.clone(), &clock, None).await;
        let a1 = connect(&one.mcp_url(), a.api_key.expose()).await.unwrap();
        let a2 = connect(&two.mcp_url(), a.api_key.expose()).await.unwrap();
        let b1 = connect(&one.mcp_url(), b.api_key.expose()).await.unwrap();

        calls(&a1, "whoami", json!({}), 2).await;
        calls(&a2, "whoami", json!({}), 1).await;
        calls(&a1, "fetch_orders", json!({}), 2).await;
        // A tool error: no such order.
        let missing = call_err(&a2, "get_order_details", json!({"order_id": "ORD-NOPE"})).await;
        assert!(missing.contains("not found"), "{missing}");
        calls(&b1, "whoami", json!({}), 2).await;
        calls(&b1, "fetch_orders", json!({}), 1).await;
        // Refused for want of orders:write: denied, not a call.
        let refused = call_err(&b1, "create_order", order_args("x", 1.0, 2.0)).await;
        assert!(refused.contains("permission denied"), "{refused}");
        let _ = call_err(&b1, "create_order", order_args("y", 1.0, 2.0)).await;

        for client in [a1, a2, b1] {
            let _ = client.cancel().await;
        }
        // Nothing is written before a flush: the interval is an hour.
        assert!(
            stored(&t.db).await.is_empty(),
            "{:?}: written early",
            t.backend
        );
        one.stop().await;
        two.stop().await;

        let want: BTreeMap<_, _> = [
            ((ka, "fetch_orders", ten), (2, 0, 0)),
            ((ka, "get_order_details", ten), (1, 1, 0)),
            ((ka, "whoami", ten), (3, 0, 0)),
            ((kb, "create_order", ten), (0, 0, 2)),
            ((kb, "fetch_orders", ten), (1, 0, 0)),
            ((kb, "whoami", ten), (2, 0, 0)),
        ]
        .into_iter()
        .map(|((k, tool, h), v)| ((k, tool.to_owned(), h), v))
        .collect();
        assert_eq!(stored(&t.db).await, want, "{:?}", t.backend);
    }
);

backend_test!(
    a_call_after_the_hour_turns_starts_the_next_hours_row,
    |t| async move {
        let clock = Clock::manual(quarter_past_ten());
        let ten = hour_of(quarter_past_ten().timestamp());
        let a = issue_key(&t.db, "usage-hour@example.com", None).await;
        let server = server_on(t.db.clone(), &clock, None).await;
        let client = connect(&server.mcp_url(), a.api_key.expose())
            .await
            .unwrap();
        calls(&client, "whoami", json!({}), 2).await;
        clock.advance(Duration::from_secs(44 * 60 + 59));
        calls(&client, "whoami", json!({}), 1).await;
        // 10:59:59 -> 11:00:00.
        clock.advance(Duration::from_secs(1));
        calls(&client, "whoami", json!({}), 4).await;
        let _ = client.cancel().await;
        server.stop().await;
        let k = a.record.key_id;
        let want: BTreeMap<_, _> = [
            ((k, "whoami".to_owned(), ten), (3, 0, 0)),
            ((k, "whoami".to_owned(), ten + HOUR_SECS), (4, 0, 0)),
        ]
        .into_iter()
        .collect();
        assert_eq!(stored(&t.db).await, want, "{:?}", t.backend);
    }
);

backend_test!(
    rows_past_retention_are_pruned_by_the_flusher,
    |t| async move {
        let start = quarter_past_ten();
        let clock = Clock::manual(start);
        let a = issue_key(&t.db, "usage-old@example.com", None).await;
        let server = server_on(t.db.clone(), &clock, Some(Duration::from_millis(100))).await;
        let client = connect(&server.mcp_url(), a.api_key.expose())
            .await
            .unwrap();
        let hours = |db: Db| async move {
            stored(&db)
                .await
                .keys()
                .map(|(_, _, h)| *h)
                .collect::<Vec<_>>()
        };
        let day = Duration::from_secs(24 * 3600);

        calls(&client, "whoami", json!({}), 1).await;
        let first = hour_of(start.timestamp());
        assert!(
            eventually(Duration::from_secs(10), || async {
                hours(t.db.clone()).await == [first]
            })
            .await,
            "{:?}: the first call was not written",
            t.backend
        );
        clock.advance(day * 89);
        calls(&client, "whoami", json!({}), 1).await;
        let later = hour_of(clock.now().timestamp());
        assert!(
            eventually(Duration::from_secs(10), || async {
                hours(t.db.clone()).await == [first, later]
            })
            .await,
            "{:?}: 89 days on, both hours are kept",
            t.backend
        );
        // 91 days after the first call: past the default 90 days' retention.
        clock.advance(day * 2);
        assert!(
            eventually(Duration::from_secs(10), || async {
                hours(t.db.clone()).await == [later]
            })
            .await,
            "{:?}: the first hour was not pruned: {:?}",
            t.backend,
            hours(t.db.clone()).await
        );
        let _ = client.cancel().await;
        server.stop().await;
    }
);

backend_test!(pruning_goes_in_bounded_batches, |t| async move {
    let now = quarter_past_ten();
    let old = hour_of(now.timestamp()) - 100 * 24 * HOUR_SECS;
    let mut one_fast_call = fleetmind::usage::histogram::Buckets::default();
    one_fast_call[0] = 1;
    // 10,500 old rows: more than one pruning round (10 batches of 1000).
    let deltas: Vec<UsageDelta> = (0..10_500)
        .map(|i| UsageDelta {
            key_id: 1 + i / 100,
            tool: "whoami".into(),
            hour: old - (i % 100) * HOUR_SECS,
            calls: 1,
            errors: 0,
            denied: 0,
            total_micros: 5,
            buckets: one_fast_call,
        })
        .collect();
    // As the flusher writes them: 1000 rows per store call.
    for chunk in deltas.chunks(1000) {
        t.db.add_tool_usage(chunk).await.unwrap();
    }
    let flusher = UsageFlusher::new(
        ToolUsage::with_clock(Clock::manual(now)),
        t.db.clone(),
        Duration::from_secs(90 * 24 * 3600),
    );
    assert!(
        !flusher.prune().await.unwrap(),
        "{:?}: one round cannot finish",
        t.backend
    );
    assert_eq!(stored(&t.db).await.len(), 500, "{:?}", t.backend);
    assert!(flusher.prune().await.unwrap(), "{:?}", t.backend);
    assert!(stored(&t.db).await.is_empty(), "{:?}", t.backend);
});

backend_test!(my_usage_shows_only_the_callers_tenant, |t| async move {
    let clock = Clock::manual(quarter_past_ten());
    let a = issue_key(&t.db, "usage-tenant-a@example.com", None).await;
    // A second key of the same tenant (same email, same user id).
    let a_too = issue_key(&t.db, "usage-tenant-a@example.com", None).await;
    let b = issue_key(&t.db, "usage-tenant-b@example.com", None).await;
    let admin = issue_key(&t.db, "usage-admin@example.com", Some(Scopes::admin())).await;
    assert_eq!(a.record.user_id, a_too.record.user_id);

    let server = server_on(t.db.clone(), &clock, None).await;
    for (key, n) in [(&a, 1), (&a_too, 2), (&b, 3)] {
        let client = connect(&server.mcp_url(), key.api_key.expose())
            .await
            .unwrap();
        calls(&client, "whoami", json!({}), n).await;
        let _ = client.cancel().await;
    }
    server.stop().await;

    let server = server_on(t.db.clone(), &clock, None).await;
    let of = |report: &Value| -> BTreeMap<i64, i64> {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["key_id"].as_i64().unwrap(), r["calls"].as_i64().unwrap()))
            .collect()
    };
    let client = connect(&server.mcp_url(), a.api_key.expose())
        .await
        .unwrap();
    let mine = call_ok(&client, "my_usage", json!({"since": "24h"})).await;
    assert_eq!(
        of(&mine),
        BTreeMap::from([(a.record.key_id, 1), (a_too.record.key_id, 2)]),
        "{:?}: tenant a sees both its keys and nothing of b: {mine}",
        t.backend
    );
    let row = &mine["rows"][0];
    for field in [
        "key_id", "tool", "hour", "calls", "errors", "denied", "mean_ms", "p95_ms",
    ] {
        assert!(row.get(field).is_some(), "{field} missing: {row}");
    }
    assert_eq!(row["hour"], "2026-11-30T10:00:00Z");
    // Bad input: a clear tool error.
    let bad = call_err(&client, "my_usage", json!({"since": "7x"})).await;
    assert!(
        bad.contains("since must be a whole number of hours or days"),
        "{bad}"
    );
    let unknown = call_err(&client, "my_usage", json!({"key_id": b.record.key_id})).await;
    assert!(unknown.contains("unknown argument 'key_id'"), "{unknown}");
    // Not an admin: the admin report is refused.
    let refused = call_err(&client, "admin_key_usage", json!({})).await;
    assert!(refused.contains("'admin'"), "{refused}");
    let _ = client.cancel().await;

    let client = connect(&server.mcp_url(), b.api_key.expose())
        .await
        .unwrap();
    let theirs = call_ok(&client, "my_usage", json!({})).await;
    assert_eq!(
        of(&theirs),
        BTreeMap::from([(b.record.key_id, 3)]),
        "{:?}",
        t.backend
    );
    let _ = client.cancel().await;

    let client = connect(&server.mcp_url(), admin.api_key.expose())
        .await
        .unwrap();
    let all = call_ok(&client, "admin_key_usage", json!({})).await;
    assert_eq!(of(&all).len(), 3, "{:?}: every key: {all}", t.backend);
    let one = call_ok(
        &client,
        "admin_key_usage",
        json!({"key_id": b.record.key_id}),
    )
    .await;
    assert_eq!(of(&one), BTreeMap::from([(b.record.key_id, 3)]));
    let by_email = call_ok(
        &client,
        "admin_key_usage",
        json!({"email": " Usage-Tenant-A@example.com"}),
    )
    .await;
    assert_eq!(of(&by_email).len(), 2, "{by_email}");
    let both = call_err(
        &client,
        "admin_key_usage",
        json!({"key_id": 1, "email": "x@example.com"}),
    )
    .await;
    assert!(both.contains("not both"), "{both}");
    let _ = client.cancel().await;
    server.stop().await;
});

backend_test!(keys_usage_json_has_the_documented_shape, |t| async move {
    let a = issue_key(&t.db, "usage-cli@example.com", None).await;
    let b = issue_key(&t.db, "usage-cli-b@example.com", None).await;
    // The CLI reads the system clock: rows of this hour.
    let hour = hour_of(Utc::now().timestamp());
    let mut buckets = fleetmind::usage::histogram::Buckets::default();
    buckets[3] = 19;
    buckets[6] = 1;
    let row = |key_id: i64, tool: &str| UsageDelta {
        key_id,
        tool: tool.into(),
        hour,
        calls: 20,
        errors: 2,
        denied: 3,
        total_micros: 30_000,
        buckets,
    };
    t.db.add_tool_usage(&[
        row(a.record.key_id, "whoami"),
        row(b.record.key_id, "fetch_orders"),
    ])
    .await
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fleetmind"))
            .args(["--database-url", &t.url, "keys", "usage"])
            .args(args)
            .env_remove("DATABASE_URL")
            .output()
            .expect("run fleetmind")
    };
    let out = run(&["--key-id", &a.record.key_id.to_string(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let when = DateTime::from_timestamp(hour, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        rows,
        json!([{
            "key_id": a.record.key_id, "tool": "whoami", "hour": when,
            "calls": 20, "errors": 2, "denied": 3, "mean_ms": 1.5, "p95_ms": 1.0,
        }]),
        "{:?}",
        t.backend
    );
    let out = run(&[
        "--email",
        "USAGE-CLI-B@example.com",
        "--since",
        "1h",
        "--json",
    ]);
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["tool"], "fetch_orders");
    let table = run(&[]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success() && text.contains("P95_MS") && text.contains("fetch_orders"),
        "{text}"
    );

    for (args, says) in [
        (
            &["--since", "7x"][..],
            "--since must be a whole number of hours or days",
        ),
        (&["--since", "0d"][..], "--since must be between 1h and"),
        (&["--key-id", "0"][..], "--key-id must be a positive key id"),
        (&["--email", "not-an-email"][..], "--email:"),
    ] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
});

//! A silent network partition between the server and Postgres: a TCP proxy
//! (tests/common/proxy.rs) stops forwarding without closing anything.
//! Nothing may hang, revocation keeps its 1-second bound, and the server
//! recovers on its own once the network heals.
//!
//! The bounds asserted are the promises (1 s, 2 s, 6 s); the test waits much
//! longer before calling anything a hang.

use crate::support::proxy::{Proxy, upstream_of};
use crate::support::*;
use fleetmind::store::{self, PoolOptions, RevokeTarget};
use serde_json::json;
use std::time::{Duration, Instant};

/// A revoked key is refused this soon after the revocation, cache or not.
const REVOCATION_BOUND: Duration = Duration::from_secs(1);
/// Any request gets an answer this soon, whatever the database does.
const ANSWER_BOUND: Duration = Duration::from_secs(6);
/// `/healthz` answers this soon.
const HEALTH_BOUND: Duration = Duration::from_secs(2);
/// Past this, the test calls it a hang.
const HANG: Duration = Duration::from_secs(20);

/// One request fired during the partition: when it left (after the
/// revocation), what came back (`None`: a hang), and how long it took.
#[derive(Debug)]
struct Shot {
    sent_after: Duration,
    status: Option<u16>,
    retry_after: Option<String>,
    took: Duration,
}

/// Fires `whoami` with `key` every 100 ms for `during`, each request on its
/// own, and waits for all of them.
async fn fire_whoami(url: &str, key: &str, since: Instant, during: Duration) -> Vec<Shot> {
    let http = reqwest::Client::new();
    let mut shots = tokio::task::JoinSet::new();
    let end = Instant::now() + during;
    while Instant::now() < end {
        let (http, url, key) = (http.clone(), url.to_owned(), key.to_owned());
        shots.spawn(async move {
            let sent = Instant::now();
            let answer = tools_call_http(&http, &url, &key, "whoami", json!({}), HANG).await;
            Shot {
                sent_after: sent - since,
                status: answer.as_ref().map(|a| a.status),
                retry_after: answer.and_then(|a| a.retry_after),
                took: sent.elapsed(),
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut all = shots.join_all().await;
    all.sort_by_key(|s| s.sent_after);
    all
}

async fn healthz(http: &reqwest::Client, base: &str) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let status = tokio::time::timeout(HANG, http.get(format!("{base}/healthz")).send())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|r| r.status().as_u16());
    (status, started.elapsed())
}

#[tokio::test]
#[cfg_attr(not(fm_pg), ignore = "Postgres: set FLEETMIND_TEST_PG")]
async fn a_silent_partition_never_hangs_a_request_nor_lets_a_revoked_key_in_and_heals() {
    let direct = pg_db().await;
    let proxy = Proxy::start(upstream_of(&direct.url)).await;
    let db = store::open(&proxy.url_through(&direct.url), &PoolOptions::default())
        .await
        .expect("open postgres through the proxy");
    let server = start_server(db).await;
    let url = server.mcp_url();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let kept = issue_key(&direct.db, "kept@example.com", None).await;
    let kept = kept.api_key.expose();
    let gone = issue_key(&direct.db, "gone@example.com", None).await;
    let gone_id = gone.record.key_id;
    let gone = gone.api_key.expose();

    // Both keys work and are cached; the change watch has had time to report in.
    for _ in 0..20 {
        for key in [kept, gone] {
            let a = tools_call_http(&http, &url, key, "whoami", json!({}), HANG).await;
            assert_eq!(a.map(|a| a.status), Some(200));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counted = tools_call_http(&http, &url, kept, "count_orders", json!({}), HANG)
        .await
        .expect("count_orders answers");
    assert_eq!(counted.status, 200, "{counted:?}");
    assert!(counted.body["result"].is_object(), "{counted:?}");

    proxy.blackhole();
    let cut_at = Instant::now();

    // A tool whose key is still cached reaches the database and must not
    // wait for it forever.
    let tool = {
        let (http, url, kept) = (http.clone(), url.clone(), kept.to_owned());
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = tools_call_http(&http, &url, &kept, "count_orders", json!({}), HANG).await;
            (answer, started.elapsed())
        })
    };
    let health = {
        let (http, base) = (http.clone(), base.clone());
        tokio::spawn(async move { healthz(&http, &base).await })
    };

    // Revoked through a direct connection: the server's store has no hand in it.
    direct
        .db
        .revoke_keys(&RevokeTarget::KeyId(gone_id), "cli", chrono::Utc::now())
        .await
        .expect("revoke directly");
    let revoked_at = Instant::now();
    let (gone_shots, kept_shots) = tokio::join!(
        fire_whoami(&url, gone, revoked_at, Duration::from_secs(4)),
        fire_whoami(&url, kept, revoked_at, Duration::from_secs(4)),
    );
    let (tool_answer, tool_took) = tool.await.expect("tool task");
    let (health, health_took) = health.await.expect("healthz task");

    eprintln!("partition: /healthz -> {health:?} in {health_took:?}");
    eprintln!("partition: count_orders -> {tool_answer:?} in {tool_took:?}");
    let summary = |shots: &[Shot]| {
        let late: Vec<_> = shots
            .iter()
            .filter(|s| s.sent_after >= REVOCATION_BOUND)
            .collect();
        let ok = late.iter().filter(|s| s.status == Some(200)).count();
        let hung = late.iter().filter(|s| s.status.is_none()).count();
        let slowest = late.iter().map(|s| s.took).max().unwrap_or_default();
        format!(
            "{} requests sent 1 s or more after the revocation: {ok} got 200, {hung} hung, slowest {slowest:?}",
            late.len()
        )
    };
    eprintln!("partition: revoked key: {}", summary(&gone_shots));
    eprintln!("partition: valid key: {}", summary(&kept_shots));

    assert_eq!(health, Some(503), "/healthz during the partition");
    assert!(health_took <= HEALTH_BOUND, "/healthz took {health_took:?}");
    let tool_answer = tool_answer.expect("count_orders hung during the partition");
    assert!(tool_took <= ANSWER_BOUND, "count_orders took {tool_took:?}");
    assert_unavailable(&tool_answer);

    for shot in gone_shots
        .iter()
        .filter(|s| s.sent_after >= REVOCATION_BOUND)
    {
        assert!(
            matches!(shot.status, Some(401 | 503)),
            "revoked key, sent {:?} after the revocation: {shot:?}",
            shot.sent_after
        );
        assert!(shot.took <= ANSWER_BOUND, "{shot:?}");
    }
    for shot in kept_shots
        .iter()
        .filter(|s| s.sent_after + revoked_at.duration_since(cut_at) >= REVOCATION_BOUND)
    {
        // The key store cannot be reached and the cache is not trusted.
        assert_eq!(shot.status, Some(503), "valid key: {shot:?}");
        assert!(
            shot.retry_after.is_some(),
            "503 without Retry-After: {shot:?}"
        );
        assert!(shot.took <= ANSWER_BOUND, "{shot:?}");
    }

    // The network heals: the same server recovers without a restart.
    proxy.heal();
    let healed_at = Instant::now();
    let recovered = eventually(Duration::from_secs(30), || async {
        let whoami = tools_call_http(&http, &url, kept, "whoami", json!({}), HANG).await;
        let counted = tools_call_http(&http, &url, kept, "count_orders", json!({}), HANG).await;
        whoami.is_some_and(|a| a.status == 200)
            && counted.is_some_and(|a| a.status == 200 && a.body["result"].is_object())
    })
    .await;
    eprintln!(
        "partition: recovered after the heal: {recovered} in {:?}",
        healed_at.elapsed()
    );
    assert!(
        recovered,
        "the server did not recover after the network healed"
    );
    let a = tools_call_http(&http, &url, gone, "whoami", json!({}), HANG).await;
    assert_eq!(
        a.map(|a| a.status),
        Some(401),
        "the revoked key after the heal"
    );
    let (health, _) = healthz(&http, &base).await;
    assert_eq!(health, Some(200), "/healthz after the heal");
    server.stop().await;
}

//! Issue 9, finding 4: a flood of unknown keys from one address never refuses
//! a valid key from that address, including a key issued during the flood
//! and used for the first time, and after the server restarts mid-flood.
//! While the set of known keys is current, unknown keys cost no key lookup.

use crate::support::*;
use fleetmind::auth::{AuthFailure, UsageRecorder, Verifier};
use fleetmind::keys::ApiKey;
use fleetmind::scopes::Scopes;
use fleetmind::store::{self, Db, PoolOptions, RevokeTarget};
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const FLOODERS: usize = 16;
const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// What the flood's random keys got back, per server (0: first, 1: restarted).
#[derive(Default)]
struct Answers {
    unauthorized: [AtomicU64; 2],
    throttled: [AtomicU64; 2],
    /// 200 or a 5xx: never right for a random key.
    wrong: AtomicU64,
    /// No answer (the server was being restarted).
    none: AtomicU64,
}

/// 16 tasks sending random well-formed keys from 127.0.0.1 to whichever
/// server `url` names, until stopped.
struct Flood {
    answers: Arc<Answers>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Flood {
    fn start(url: tokio::sync::watch::Receiver<(usize, String)>) -> Self {
        let answers = Arc::new(Answers::default());
        let stop = CancellationToken::new();
        let http = reqwest::Client::new();
        let mut tasks = JoinSet::new();
        for _ in 0..FLOODERS {
            let (answers, stop, http, url) =
                (answers.clone(), stop.clone(), http.clone(), url.clone());
            tasks.spawn(async move {
                while !stop.is_cancelled() {
                    let (server, target) = url.borrow().clone();
                    let key = ApiKey::generate().expect("random key");
                    let status = tokio::select! {
                        _ = stop.cancelled() => return,
                        s = whoami_status(&http, &target, key.expose()) => s,
                    };
                    match status {
                        401 => answers.unauthorized[server].fetch_add(1, Ordering::Relaxed),
                        429 => answers.throttled[server].fetch_add(1, Ordering::Relaxed),
                        0 => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            answers.none.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => answers.wrong.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
        Self {
            answers,
            stop,
            tasks,
        }
    }

    /// Waits (bounded) until `server` has answered the flood with 429: the
    /// address's budget of failed lookups is spent.
    async fn wait_until_throttled(&self, server: usize) {
        let throttled = eventually(Duration::from_secs(30), || async {
            self.answers.throttled[server].load(Ordering::Relaxed) > 0
        })
        .await;
        assert!(throttled, "server {server} never throttled the flood");
    }

    async fn stop(mut self) -> Arc<Answers> {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.answers
    }
}

/// A second handle on the same database: another process (the CLI, another
/// replica), which this server learns about only through the database.
async fn other_process(t: &TestDb) -> Db {
    store::open(&t.url, &PoolOptions::default())
        .await
        .expect("second handle")
}

backend_test!(
    a_flood_of_unknown_keys_never_refuses_a_valid_key_from_the_same_address,
    |t| async move {
        let admin = issue_key(&t.db, "ops@example.com", Some(Scopes::admin())).await;
        let cli = other_process(&t).await;
        let server = start_server(t.db.clone()).await;
        let (url_tx, url_rx) = tokio::sync::watch::channel((0, server.mcp_url()));
        let http = reqwest::Client::new();
        let ops = connect(&server.mcp_url(), admin.api_key.expose())
            .await
            .expect("admin connects");

        let flood = Flood::start(url_rx);
        flood.wait_until_throttled(0).await;

        // Five keys issued during the flood, each used at once for the first
        // time: odd ones by another process (the CLI path), even ones by the
        // admin tool of this server.
        let mut keys = Vec::new();
        let mut statuses = Vec::new();
        for i in 0..5 {
            let key = if i % 2 == 0 {
                let (created, is_error) = call(
                    &ops,
                    "admin_create_api_key",
                    json!({"email": format!("tool{i}@example.com")}),
                )
                .await;
                assert!(!is_error, "{created}");
                created["api_key"].as_str().expect("api_key").to_owned()
            } else {
                let issued = issue_key(&cli, &format!("cli{i}@example.com"), None).await;
                issued.api_key.expose().to_owned()
            };
            statuses.push(whoami_status(&http, &server.mcp_url(), &key).await);
            keys.push(key);
        }
        assert_eq!(
            statuses, [200; 5],
            "{:?}: fresh keys during the flood",
            t.backend
        );

        // Restart mid-flood: a new instance on the same database, with an
        // empty cache and a fresh limiter; the flood follows it.
        drop(ops);
        server.stop().await;
        let server = start_server(other_process(&t).await).await;
        url_tx.send_replace((1, server.mcp_url()));
        flood.wait_until_throttled(1).await;
        let mut statuses = Vec::new();
        for key in &keys {
            statuses.push(whoami_status(&http, &server.mcp_url(), key).await);
        }
        let late = issue_key(&cli, "late@example.com", None).await;
        statuses.push(whoami_status(&http, &server.mcp_url(), late.api_key.expose()).await);
        assert_eq!(
            statuses, [200; 6],
            "{:?}: after the restart, mid-flood",
            t.backend
        );

        let answers = flood.stop().await;
        server.stop().await;
        assert_eq!(
            answers.wrong.load(Ordering::Relaxed),
            0,
            "{:?}: a random key got 200 or a 5xx",
            t.backend
        );
        for server in 0..2 {
            assert!(answers.unauthorized[server].load(Ordering::Relaxed) > 0);
        }
    }
);

backend_test!(
    unknown_keys_cost_no_lookup_while_the_known_keys_are_current,
    |t| async move {
        let before = issue_key(&t.db, "before@example.com", None).await;
        let verifier = Arc::new(Verifier::new(t.db.clone(), UsageRecorder::new()));
        let shutdown = CancellationToken::new();
        let _watch = verifier.spawn_watch(shutdown.clone());
        let loaded = eventually(Duration::from_secs(10), || async {
            verifier.known_keys().contains(&before.api_key.hash())
        })
        .await;
        assert!(loaded, "{:?}: the known keys were never loaded", t.backend);

        // 16 tasks, 40 random keys each, from one address: refused, no lookup.
        let lookups = verifier.lookups();
        let mut flood = JoinSet::new();
        for _ in 0..FLOODERS {
            let verifier = verifier.clone();
            flood.spawn(async move {
                let mut refusals = Vec::new();
                for _ in 0..40 {
                    let key = ApiKey::generate().expect("random key");
                    refusals.push(verifier.verify_from(key.expose(), || Some(LOCALHOST)).await);
                }
                refusals
            });
        }
        let mut unknown = 0;
        let mut throttled = 0;
        while let Some(refusals) = flood.join_next().await {
            for refusal in refusals.expect("flood task") {
                match refusal {
                    Err(AuthFailure::Unknown) => unknown += 1,
                    Err(AuthFailure::Throttled { .. }) => throttled += 1,
                    other => panic!("{:?}: a random key got {other:?}", t.backend),
                }
            }
        }
        assert_eq!(unknown + throttled, FLOODERS * 40);
        assert!(
            unknown >= 100,
            "the budget of 100 was spent first: {unknown}"
        );
        assert!(throttled > 0, "past the budget: 429");
        assert_eq!(
            verifier.lookups(),
            lookups,
            "{:?}: unknown keys were looked up",
            t.backend
        );

        // Past its budget, the address still gets a key issued just now by
        // another process (never seen before) and the key issued earlier:
        // one lookup each.
        let cli = other_process(&t).await;
        let fresh = issue_key(&cli, "fresh@example.com", None).await;
        for key in [&fresh, &before] {
            let caller = verifier
                .verify_from(key.api_key.expose(), || Some(LOCALHOST))
                .await
                .unwrap_or_else(|e| panic!("{:?}: a valid key refused: {e:?}", t.backend));
            assert_eq!(caller.key_id, key.record.key_id);
        }
        assert_eq!(verifier.lookups(), lookups + 2, "{:?}", t.backend);

        // A revocation by another process (SQLite: the change counter moves,
        // the watch reports `All`): the revoked key is refused as revoked,
        // unknown keys still cost no lookup, and a new key still works.
        cli.revoke_keys(
            &RevokeTarget::KeyId(before.record.key_id),
            "cli",
            chrono::Utc::now(),
        )
        .await
        .expect("revoke");
        let revoked = eventually(Duration::from_secs(5), || async {
            matches!(
                verifier
                    .verify_from(before.api_key.expose(), || Some(LOCALHOST))
                    .await,
                Err(AuthFailure::Revoked)
            )
        })
        .await;
        assert!(revoked, "{:?}: the revocation was not seen", t.backend);
        let lookups = verifier.lookups();
        for _ in 0..20 {
            let key = ApiKey::generate().expect("random key");
            let refusal = verifier.verify_from(key.expose(), || Some(LOCALHOST)).await;
            assert!(
                matches!(
                    refusal,
                    Err(AuthFailure::Unknown | AuthFailure::Throttled { .. })
                ),
                "{:?}: {refusal:?}",
                t.backend
            );
        }
        assert_eq!(verifier.lookups(), lookups, "{:?}", t.backend);
        let newer = issue_key(&cli, "newer@example.com", None).await;
        let caller = verifier
            .verify_from(newer.api_key.expose(), || Some(LOCALHOST))
            .await
            .unwrap_or_else(|e| panic!("{:?}: a valid key refused: {e:?}", t.backend));
        assert_eq!(caller.key_id, newer.record.key_id);
        shutdown.cancel();
    }
);

//! The verification cache never extends a key's life: revocation (same
//! process, the CLI, another server process), expiry and the end of a
//! rotation's grace period are seen within the bound (1 s) while the key is
//! cached; a key issued after a failed lookup works at once; unknown-key
//! floods get 429; `last_used_at` is written once, not per request.
//!
//! Deadlines here assert bounds, they do not measure speed.

use crate::support::*;
use chrono::Utc;
use fleetmind::app::ServeOptions;
use fleetmind::auth::{AuthFailure, BLIND_MAX_AGE, LimiterOptions, VerifierOptions};
use fleetmind::key_admin;
use fleetmind::keys::ApiKey;
use fleetmind::scopes::Scopes;
use fleetmind::store::{Backend, NewKey, RevokeTarget};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The revocation bound the cache guarantees on both backends.
const BOUND: Duration = Duration::from_secs(1);

fn new_key(api_key: &ApiKey, expires_at: Option<chrono::DateTime<Utc>>) -> NewKey {
    NewKey {
        user_id: "user_cachetest01".into(),
        email: "cache@example.com".into(),
        name: None,
        hash: api_key.hash(),
        prefix: api_key.display_prefix(),
        scopes: Scopes::PREDECESSOR_DEFAULT,
        expires_at,
        created_by: "cli".into(),
        limits: Default::default(),
        created_at: chrono::Utc::now(),
    }
}

backend_test!(
    a_cached_key_costs_no_lookup_and_its_revocation_is_seen_within_the_bound,
    |t| async move {
        let shutdown = CancellationToken::new();
        let clock = fleetmind::clock::Clock::manual(Utc::now());
        let verifier = watched_verifier_on(&t.db, &shutdown, clock.clone()).await;
        let issued = issue_key(&t.db, "rev@example.com", None).await;
        let key = issued.api_key.expose();
        for _ in 0..100 {
            verifier.verify(key).await.expect("valid key");
        }
        assert_eq!(
            verifier.lookups(),
            1,
            "{:?}: one lookup, then the cache",
            t.backend
        );
        // Past the blind bound, the entry is still trusted: only the change
        // watch can evict it below.
        clock.advance(BLIND_MAX_AGE + Duration::from_millis(200));
        verifier.verify(key).await.expect("still valid");
        assert_eq!(verifier.lookups(), 1, "{:?}: still cached", t.backend);

        key_admin::revoke(
            t.db.as_ref(),
            RevokeTarget::KeyId(issued.record.key_id),
            "cli",
            chrono::Utc::now(),
        )
        .await
        .expect("revoke");
        let refused = eventually(BOUND, || async {
            verifier.verify(key).await.err() == Some(AuthFailure::Revoked)
        })
        .await;
        assert!(
            refused,
            "{:?}: revoked key still accepted after {BOUND:?}",
            t.backend
        );
        shutdown.cancel();
    }
);

backend_test!(expiry_is_honoured_while_the_key_is_cached, |t| async move {
    let shutdown = CancellationToken::new();
    let verifier = watched_verifier(&t.db, &shutdown).await;
    let api_key = ApiKey::generate().expect("key");
    let expires_at = Utc::now() + chrono::Duration::milliseconds(1500);
    t.db.insert_key(&new_key(&api_key, Some(expires_at)))
        .await
        .expect("insert");
    verifier
        .verify(api_key.expose())
        .await
        .expect("not yet expired");
    let expired = eventually(Duration::from_secs(5), || async {
        let asked = Utc::now();
        match verifier.verify(api_key.expose()).await {
            Ok(_) => {
                assert!(asked < expires_at, "accepted after expires_at");
                false
            }
            Err(failure) => {
                assert_eq!(failure, AuthFailure::Expired);
                true
            }
        }
    })
    .await;
    assert!(expired, "{:?}: the key never expired", t.backend);
    assert!(Utc::now() >= expires_at);
    assert_eq!(verifier.lookups(), 1, "expiry came from the cached row");
    shutdown.cancel();
});

backend_test!(
    the_old_key_of_a_rotation_stops_when_its_grace_ends,
    |t| async move {
        let shutdown = CancellationToken::new();
        let verifier = watched_verifier(&t.db, &shutdown).await;
        let issued = issue_key(&t.db, "rot@example.com", None).await;
        let old = issued.api_key.expose();
        verifier
            .verify(old)
            .await
            .expect("cached before the rotation");

        let successor = ApiKey::generate().expect("key");
        // Whole microseconds: what Postgres stores.
        let grace_end = (Utc::now() + chrono::Duration::milliseconds(1500)).timestamp_micros();
        let grace_end = chrono::DateTime::from_timestamp_micros(grace_end).expect("instant");
        let rotated =
            t.db.rotate_key(issued.record.key_id, grace_end, &new_key(&successor, None))
                .await
                .expect("rotate");
        let caller = verifier
            .verify(old)
            .await
            .expect("the grace period has begun");
        assert!(caller.expires_at.is_none() || Utc::now() < grace_end);
        // The cached row (no expiry) must give way to the rotated one.
        let picked_up = eventually(BOUND, || async {
            verifier
                .verify(old)
                .await
                .is_ok_and(|c| c.expires_at == Some(grace_end))
        })
        .await;
        assert!(
            picked_up,
            "{:?}: the grace end never reached the cache",
            t.backend
        );
        let ended = eventually(Duration::from_secs(5), || async {
            let asked = Utc::now();
            match verifier.verify(old).await {
                Ok(_) => {
                    assert!(asked < grace_end, "old key accepted after its grace");
                    false
                }
                // Refused as retired by this rotation, at the grace's end:
                // the entry cached during the grace knew its successor.
                Err(failure) => {
                    failure
                        == AuthFailure::Retired {
                            successor_key_id: rotated.key_id,
                            at: grace_end,
                        }
                }
            }
        })
        .await;
        assert!(ended, "{:?}: the old key kept working", t.backend);
        verifier
            .verify(successor.expose())
            .await
            .expect("the successor works");
        shutdown.cancel();
    }
);

backend_test!(
    a_key_issued_after_a_failed_lookup_of_it_works_at_once,
    |t| async move {
        let shutdown = CancellationToken::new();
        let verifier = watched_verifier(&t.db, &shutdown).await;
        let api_key = ApiKey::generate().expect("key");
        for _ in 0..3 {
            assert_eq!(
                verifier.verify(api_key.expose()).await.err(),
                Some(AuthFailure::Unknown)
            );
        }
        t.db.insert_key(&new_key(&api_key, None))
            .await
            .expect("insert");
        verifier
            .verify(api_key.expose())
            .await
            .expect("works on the very next request");
        shutdown.cancel();
    }
);

#[tokio::test]
#[cfg_attr(not(fm_pg), ignore = "Postgres: set FLEETMIND_TEST_PG")]
async fn losing_the_postgres_listener_keeps_the_bound() {
    let t = pg_db().await;
    let shutdown = CancellationToken::new();
    let verifier = watched_verifier(&t.db, &shutdown).await;
    let issued = issue_key(&t.db, "lost@example.com", None).await;
    let key = issued.api_key.expose();
    verifier.verify(key).await.expect("cached");

    // Cut the listener's connection, then revoke at once: the notification
    // is lost, and the cache must notice on its own.
    let admin = sqlx::PgPool::connect(&t.url).await.expect("connect");
    let cut: Vec<i32> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid)::int FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&admin)
    .await
    .expect("terminate");
    assert_eq!(cut.len(), 1, "one listener connection");
    // Revoked from another connection, as another process would: this
    // process's store has no hand in it.
    sqlx::query("UPDATE api_keys SET is_active = false, revoked_at = now() WHERE key_id = $1")
        .bind(issued.record.key_id as i32)
        .execute(&admin)
        .await
        .expect("revoke");
    let refused = eventually(BOUND, || async {
        verifier.verify(key).await.err() == Some(AuthFailure::Revoked)
    })
    .await;
    assert!(refused, "revoked key accepted after the listener was lost");
    assert!(
        eventually(Duration::from_secs(10), || async {
            verifier.cache().is_watching()
        })
        .await,
        "the listener reconnected"
    );
    admin.close().await;
    shutdown.cancel();
}

/// The real `fleetmind` binary serving `database_url` on a free port.
struct ServerProcess {
    child: tokio::process::Child,
    url: String,
}

impl ServerProcess {
    async fn start(database_url: &str) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetmind"))
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start fleetmind");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("FleetMind MCP listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("fleetmind exited without listening");
        })
        .await
        .expect("fleetmind did not start in time");
        // Keep reading so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, url }
    }
}

backend_test!(
    a_cli_revocation_reaches_another_server_process_within_the_bound,
    |t| async move {
        let issued = issue_key(&t.db, "proc@example.com", None).await;
        let key = issued.api_key.expose();
        let mut server = ServerProcess::start(&t.url).await;
        let http = reqwest::Client::new();
        // Wait until the server's change watch is live (its first answers
        // may come from a still-blind cache, which is also within the bound).
        for _ in 0..20 {
            assert_eq!(
                crate::support::whoami_status(&http, &server.url, key).await,
                200
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetmind"))
            .args([
                "keys",
                "revoke",
                "--key-id",
                &issued.record.key_id.to_string(),
            ])
            .args(["--database-url", &t.url])
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .expect("run the CLI");
        assert!(status.success(), "keys revoke failed");
        let refused = eventually(BOUND, || async {
            crate::support::whoami_status(&http, &server.url, key).await == 401
        })
        .await;
        assert!(
            refused,
            "{:?}: the other process still accepts a revoked key after {BOUND:?}",
            t.backend
        );
        let _ = server.child.kill().await;
    }
);

backend_test!(
    a_client_sending_unknown_keys_gets_429_and_valid_keys_keep_working,
    |t| async move {
        let issued = issue_key(&t.db, "flood@example.com", None).await;
        let good = issued.api_key.expose();
        let options = ServeOptions {
            auth: VerifierOptions {
                limiter: LimiterOptions {
                    burst: 5,
                    per_second: 0.5,
                    ..LimiterOptions::default()
                },
                ..VerifierOptions::default()
            },
            ..ServeOptions::default()
        };
        let server = start_server_with(t.db.clone(), options).await;
        let url = server.mcp_url();
        let http = reqwest::Client::new();
        assert_eq!(crate::support::whoami_status(&http, &url, good).await, 200);
        for _ in 0..5 {
            let wrong = ApiKey::generate().expect("key");
            assert_eq!(
                crate::support::whoami_status(&http, &url, wrong.expose()).await,
                401
            );
        }
        let wrong = ApiKey::generate().expect("key");
        let answer = http
            .post(&url)
            .header("Authorization", format!("Bearer {}", wrong.expose()))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .send()
            .await
            .expect("send");
        assert_eq!(answer.status().as_u16(), 429, "{:?}", t.backend);
        let retry: u64 = answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in whole seconds");
        assert!((1..=2).contains(&retry), "Retry-After {retry}");
        let body: serde_json::Value = answer.json().await.expect("JSON body");
        // The JSON-RPC shape of every refusal, so SDKs show the message.
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["error"]["data"]["error"], "too_many_attempts");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("unknown API keys")),
            "{body}"
        );
        assert!(!body.to_string().contains(wrong.expose()));
        // /register (where OAuth-minded clients go next) is no way around it.
        let register = http
            .post(url.replace("/mcp", "/register"))
            .header("Authorization", format!("Bearer {}", wrong.expose()))
            .send()
            .await
            .expect("send");
        assert_eq!(register.status().as_u16(), 429, "{:?}", t.backend);
        // The key this server already verified is not held back.
        assert_eq!(crate::support::whoami_status(&http, &url, good).await, 200);
        server.stop().await;
    }
);

/// Counts updates of `api_keys` rows with a trigger of the test's own.
async fn count_key_updates(
    t: &TestDb,
) -> Box<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = i64>>>> {
    match t.backend {
        Backend::Sqlite => {
            let url = t.url.clone();
            let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
            for sql in [
                "CREATE TABLE test_key_updates (n INTEGER NOT NULL)",
                "CREATE TRIGGER test_count_updates AFTER UPDATE ON api_keys \
                 BEGIN INSERT INTO test_key_updates (n) VALUES (1); END",
            ] {
                sqlx::query(sql).execute(&pool).await.expect("counter");
            }
            Box::new(move || {
                let pool = pool.clone();
                Box::pin(async move {
                    sqlx::query_scalar("SELECT COUNT(*) FROM test_key_updates")
                        .fetch_one(&pool)
                        .await
                        .expect("count")
                })
            })
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&t.url).await.expect("connect");
            for sql in [
                "CREATE TABLE test_key_updates (n INTEGER NOT NULL)",
                "CREATE FUNCTION test_count_update() RETURNS trigger AS $$ \
                 BEGIN INSERT INTO test_key_updates (n) VALUES (1); RETURN NULL; END; \
                 $$ LANGUAGE plpgsql",
                "CREATE TRIGGER test_count_updates AFTER UPDATE ON api_keys \
                 FOR EACH ROW EXECUTE FUNCTION test_count_update()",
            ] {
                sqlx::query(sql).execute(&pool).await.expect("counter");
            }
            Box::new(move || {
                let pool = pool.clone();
                Box::pin(async move {
                    sqlx::query_scalar("SELECT COUNT(*) FROM test_key_updates")
                        .fetch_one(&pool)
                        .await
                        .expect("count")
                })
            })
        }
    }
}

backend_test!(
    many_requests_by_one_key_write_last_used_at_once,
    |t| async move {
        let issued = issue_key(&t.db, "usage@example.com", None).await;
        let key = issued.api_key.expose();
        let updates = count_key_updates(&t).await;
        let server = start_server(t.db.clone()).await;
        let url = server.mcp_url();
        let http = reqwest::Client::new();
        const N: usize = 1000;
        for _ in 0..N {
            assert_eq!(crate::support::whoami_status(&http, &url, key).await, 200);
        }
        assert_eq!(
            updates().await,
            0,
            "{:?}: no write on the request path",
            t.backend
        );
        server.stop().await;
        assert_eq!(
            updates().await,
            1,
            "{:?}: {N} requests within one flush interval, one write at shutdown",
            t.backend
        );
        let row =
            t.db.key_by_id(issued.record.key_id)
                .await
                .expect("read")
                .expect("row");
        assert!(row.last_used_at.is_some(), "last_used_at was written");
    }
);

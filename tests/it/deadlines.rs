//! A store call that cannot finish in time (here: another connection holds
//! the write lock) is answered "unavailable, try again" within its deadline,
//! writes nothing, and leaves the pool able to serve the next call; the
//! health check answers within its own, shorter bound.
//!
//! The silent network partition, Postgres only, is in `partition.rs`.

use crate::support::*;
use fleetmind::store::{self, Backend, PoolOptions};
use serde_json::json;
use std::time::{Duration, Instant};

/// The deadline the server under test is given.
const DEADLINE: Duration = Duration::from_secs(1);
/// Past this the answer is late (the deadline plus room for a loaded machine).
const LATE: Duration = Duration::from_secs(4);

/// A second connection, outside the server's pool, holding the lock every
/// write to `orders` needs, until it is dropped (its transaction then ends).
enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

async fn hold_write_lock(t: &TestDb) -> WriteLock {
    use sqlx::Connection;
    match t.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&t.url)
                .await
                .expect("second sqlite connection");
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .expect("take the write lock");
            WriteLock::Sqlite(conn)
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&t.url)
                .await
                .expect("second postgres connection");
            sqlx::query("BEGIN")
                .execute(&mut conn)
                .await
                .expect("begin");
            sqlx::query("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
                .execute(&mut conn)
                .await
                .expect("lock orders");
            WriteLock::Postgres(conn)
        }
    }
}

async fn release(lock: WriteLock) {
    use sqlx::Connection;
    match lock {
        WriteLock::Sqlite(mut c) => {
            sqlx::query("ROLLBACK")
                .execute(&mut c)
                .await
                .expect("rollback");
            c.close().await.expect("close");
        }
        WriteLock::Postgres(mut c) => {
            sqlx::query("ROLLBACK")
                .execute(&mut c)
                .await
                .expect("rollback");
            c.close().await.expect("close");
        }
    }
}

fn order() -> serde_json::Value {
    json!({
        "customer_name": "Lock",
        "delivery_address": "Lock's door",
        "delivery_lat": 1.0,
        "delivery_lng": 1.0,
        "expected_delivery_time": "2099-01-01T12:00:00Z",
    })
}

backend_test!(
    a_write_kept_waiting_past_the_deadline_is_refused_in_time_writes_nothing_and_the_next_works,
    |t| async move {
        let options = PoolOptions {
            query_timeout: DEADLINE,
            ..PoolOptions::default()
        };
        let db = store::open(&t.url, &options).await.expect("open");
        let server = start_server(db).await;
        let url = server.mcp_url();
        let http = reqwest::Client::new();
        let issued = issue_key(&t.db, "lock@example.com", None).await;
        let key = issued.api_key.expose();
        let warm = tools_call_http(&http, &url, key, "whoami", json!({}), LATE * 5).await;
        assert_eq!(warm.map(|a| a.status), Some(200));

        let lock = hold_write_lock(&t).await;
        let started = Instant::now();
        let answer = tools_call_http(&http, &url, key, "create_order", order(), LATE * 5)
            .await
            .expect("create_order hung behind the lock");
        let took = started.elapsed();
        eprintln!(
            "{:?}: create_order behind a lock -> {answer:?} in {took:?}",
            t.backend
        );
        assert!(took <= LATE, "{:?}: answered after {took:?}", t.backend);
        assert_unavailable(&answer);
        release(lock).await;

        // Nothing was written, and the pool serves the next calls.
        let counted = tools_call_http(&http, &url, key, "count_orders", json!({}), LATE)
            .await
            .expect("count_orders answers");
        assert_eq!(
            counted.body["result"]["structuredContent"]["total"], 0,
            "{counted:?}"
        );
        let created = tools_call_http(&http, &url, key, "create_order", order(), LATE)
            .await
            .expect("create_order answers");
        assert_eq!(created.body["result"]["isError"], false, "{created:?}");
        server.stop().await;
    }
);

/// SQLite's change watch proves itself by reading the change counter; when
/// it cannot (its pool is taken), cached keys stop being trusted after a
/// second and are looked up again; once it reads again, they are trusted.
#[tokio::test]
async fn a_sqlite_watch_that_cannot_read_the_counter_stops_trusting_the_cache() {
    use fleetmind::auth::{UsageRecorder, Verifier};
    use fleetmind::store::RevokeTarget;
    use tokio_util::sync::CancellationToken;

    let t = sqlite_db().await;
    // One connection, held below by a write waiting for the lock: the watch
    // cannot read the counter while it waits.
    let options = PoolOptions {
        max_connections: 1,
        query_timeout: Duration::from_secs(3),
        ..PoolOptions::default()
    };
    let db = store::open(&t.url, &options).await.expect("open");
    let shutdown = CancellationToken::new();
    let verifier = Verifier::new(db.clone(), UsageRecorder::new());
    let _watch = verifier.spawn_watch(shutdown.clone());
    let issued = issue_key(&t.db, "blind@example.com", None).await;
    let key = issued.api_key.expose();
    assert!(
        eventually(Duration::from_secs(10), || async {
            verifier.cache().is_watching()
        })
        .await,
        "the watch never reported in"
    );
    verifier.verify(key).await.expect("looked up and cached");
    let lookups = verifier.lookups();
    verifier.verify(key).await.expect("from the cache");
    assert_eq!(verifier.lookups(), lookups, "a cached key costs no lookup");

    let lock = hold_write_lock(&t).await;
    let waiting = {
        let db = db.clone();
        tokio::spawn(async move {
            db.revoke_keys(&RevokeTarget::KeyId(999_999), "cli", chrono::Utc::now())
                .await
        })
    };
    let blind = eventually(Duration::from_secs(2), || async {
        !verifier.cache().is_watching()
    })
    .await;
    assert!(blind, "the watch still claims to see every change");
    release(lock).await;
    // (It proceeds once the lock is gone, or fails at its deadline.)
    let _ = waiting.await.expect("task");

    assert!(
        eventually(Duration::from_secs(5), || async {
            verifier.cache().is_watching()
        })
        .await,
        "the watch did not prove itself again"
    );
    // Whatever was cached before the blind spell was dropped: looked up again.
    verifier.verify(key).await.expect("looked up again");
    assert_eq!(verifier.lookups(), lookups + 1);
    shutdown.cancel();
}

/// `--db-timeout-secs` (`FLEETMIND_DB_TIMEOUT_SECS`) takes 1 to 300 seconds;
/// anything else stops the command before it opens the database.
#[test]
fn the_deadline_setting_is_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("fleetmind.db").display());
    let run = |args: &[&str], env: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fleetmind"));
        cmd.args(["keys", "list", "--database-url", &url])
            .args(args);
        match env {
            Some(value) => cmd.env("FLEETMIND_DB_TIMEOUT_SECS", value),
            None => cmd.env_remove("FLEETMIND_DB_TIMEOUT_SECS"),
        };
        cmd.output().expect("run fleetmind")
    };
    for (args, env) in [
        (&["--db-timeout-secs", "0"][..], None),
        (&["--db-timeout-secs", "301"][..], None),
        (&[][..], Some("soon")),
    ] {
        let out = run(args, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?} was accepted");
        assert!(stderr.contains("db-timeout-secs"), "{stderr}");
    }
    assert!(
        !dir.path().join("fleetmind.db").exists(),
        "the database was opened"
    );
    // `keys` never creates a database: make it, then the good settings run.
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_fleetmind"))
        .args(["migrate", "--database-url", &url])
        .output()
        .expect("run fleetmind migrate");
    assert!(made.status.success(), "{made:?}");
    for (args, env) in [
        (&["--db-timeout-secs", "2"][..], None),
        (&[][..], Some("30")),
    ] {
        let out = run(args, env);
        assert!(
            out.status.success(),
            "{args:?} {env:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

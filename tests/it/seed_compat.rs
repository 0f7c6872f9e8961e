//! An operator moves from the Python server: the predecessor's own key module
//! (tests/fixtures/seed_api_keys.py, unchanged) creates its table and a key in
//! Postgres; this server adopts the table in place, verifies that key with
//! its existing user id, issues more keys per user, and the predecessor's
//! `verify_api_key` still reads the rows this server writes.
//!
//! Needs Postgres and Python with psycopg2: ignored unless
//! `FLEETMIND_TEST_PG` and `FLEETMIND_TEST_PYTHON` are set (`.ci/run` sets
//! them, the latter through tests/support/python_env.sh).

use crate::support::keys::DEFAULT_SCOPES;
use crate::support::*;
use fleetmind::store::{self, PoolOptions, RevokeTarget};
use serde_json::{Value, json};
use std::process::Command;

/// The Python to run the seed with; it must have psycopg2 (the test is
/// ignored unless `FLEETMIND_TEST_PYTHON` is set, see `build.rs`).
fn python() -> String {
    let candidate = std::env::var("FLEETMIND_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&candidate)
        .args(["-c", "import psycopg2"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{candidate} has no psycopg2; run tests/support/python_env.sh and set \
         FLEETMIND_TEST_PYTHON=$(bash tests/support/python_env.sh --print)"
    );
    candidate
}

/// Runs the seed's module through tests/support/seed_driver.py.
fn seed(python: &str, dsn: &str, args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/seed_driver.py");
    let out = Command::new(python)
        .arg(script)
        .arg(dsn)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "seed {:?} failed: {}",
        args.first(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("null");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("seed output {last:?}: {e}"))
}

#[tokio::test]
#[cfg_attr(
    not(all(fm_pg, fm_python)),
    ignore = "Postgres and Python: set FLEETMIND_TEST_PG and FLEETMIND_TEST_PYTHON"
)]
async fn a_database_of_the_python_server_is_adopted_in_place() {
    let python = python();
    let pg = fresh_pg().await;
    let url = pg.url.clone();

    // The predecessor creates its table (with UNIQUE(user_id)) and a key for
    // a mixed-case email, hashed unnormalised as it always did.
    seed(&python, &url, &["create-table"]);
    let legacy = seed(&python, &url, &["generate", "Legacy.User@Example.com"]);
    assert_eq!(legacy["success"], true, "{legacy}");
    let legacy_key = legacy["api_key"].as_str().unwrap().to_owned();
    let legacy_user = "user_eb3187401c46"; // md5("Legacy.User@Example.com"), by hashlib

    // This server migrates the same database, twice (idempotent).
    let db = store::open(&url, &PoolOptions::default())
        .await
        .expect("migrate a seed database");
    drop(db);
    let db = store::open(&url, &PoolOptions::default())
        .await
        .expect("migrate again");

    // The old key works, as its old user, with the predecessor's five scopes.
    let server = start_server(db.clone()).await;
    let client = connect(&server.mcp_url(), &legacy_key)
        .await
        .expect("legacy key connects");
    let (who, _) = call(&client, "whoami", json!({})).await;
    assert_eq!(who["user_id"], legacy_user);
    assert_eq!(who["scopes"], json!(DEFAULT_SCOPES));
    let _ = client.cancel().await;

    // A second key for the same person (any spelling of the email) keeps the
    // user id: UNIQUE(user_id) is gone.
    let second = issue_key(&db, " legacy.user@example.COM", None).await;
    assert_eq!(second.record.user_id, legacy_user);
    let client = connect(&server.mcp_url(), second.api_key.expose())
        .await
        .expect("second key connects");
    let (who, _) = call(&client, "whoami", json!({})).await;
    assert_eq!(who["user_id"], legacy_user);
    let _ = client.cancel().await;

    // A new user gets the normalised id: md5("newcomer@example.com"), by hashlib.
    let newcomer = issue_key(&db, "Newcomer@Example.com", None).await;
    assert_eq!(newcomer.record.user_id, "user_9be86a7fdf74");

    // The predecessor's verify_api_key reads rows this server wrote.
    let verified = seed(&python, &url, &["verify", second.api_key.expose()]);
    assert_eq!(verified["user_id"], legacy_user, "{verified}");
    let verified = seed(&python, &url, &["verify", newcomer.api_key.expose()]);
    assert_eq!(verified["user_id"], "user_9be86a7fdf74", "{verified}");
    let listed = seed(&python, &url, &["list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");

    // Revocation here is revocation there (is_active = false).
    db.revoke_keys(
        &RevokeTarget::KeyId(newcomer.record.key_id),
        "cli",
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(
        seed(&python, &url, &["verify", newcomer.api_key.expose()]),
        Value::Null
    );

    // And the old server's key still verifies in the old server too.
    let verified = seed(&python, &url, &["verify", &legacy_key]);
    assert_eq!(verified["user_id"], legacy_user);

    server.stop().await;
}

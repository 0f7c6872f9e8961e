//! Per-key limits as stored and managed (issue 13): read with the key, set
//! and cleared in one audited transaction, refused by the database itself
//! when zero or negative, and a change reaches another server's cached key
//! within the change watch's bound; the CLI (`keys create` flags, `keys
//! limits`, `keys list`/`show`), the admin tools (`admin_create_api_key`,
//! `admin_set_key_limits`) and `serve --default-rate-limit-per-minute`.
//! (Enforcing them on requests is tested in `limits_enforced.rs`.)

use crate::support::binary::{BinaryServer, run_fleetmind};
use crate::support::keys::{call_err, call_ok, key_actor};
use crate::support::*;
use fleetmind::app::ServeOptions;
use fleetmind::auth::Verifier;
use fleetmind::clock::Clock;
use fleetmind::limits::{KeyLimits, LimitsChange};
use fleetmind::scopes::Scopes;
use fleetmind::store::{self, Db, PoolOptions, StoreError};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How soon every replica must see a change of limits.
const BOUND: Duration = Duration::from_secs(1);

fn limits(rate: Option<u32>, quota: Option<u64>, ips: Option<&str>) -> KeyLimits {
    KeyLimits {
        rate_limit_per_minute: rate,
        monthly_quota: quota,
        allowed_ips: ips.map(|list| list.parse().expect("allowlist")),
    }
}

backend_test!(
    limits_are_set_read_with_the_key_and_audited_before_and_after,
    |t| async move {
        let issued = issue_key(&t.db, "limits@example.com", None).await;
        let key_id = issued.record.key_id;
        assert_eq!(issued.record.limits, KeyLimits::default());

        let set =
            t.db.set_key_limits(
                key_id,
                &LimitsChange {
                    rate_limit_per_minute: Some(Some(600)),
                    monthly_quota: Some(Some(100_000)),
                    allowed_ips: Some(Some("10.1.0.0/8, 192.0.2.7".parse().unwrap())),
                },
                "cli",
                chrono::Utc::now(),
            )
            .await
            .expect("set limits");
        let want = limits(Some(600), Some(100_000), Some("10.0.0.0/8,192.0.2.7/32"));
        assert!(set.changed());
        assert_eq!(set.before.limits, KeyLimits::default());
        assert_eq!(set.after.limits, want);

        // Read back by every query that reads a key: the hash lookup of the
        // verification path carries them in the same row.
        let hash = fleetmind::keys::ApiKey::parse(issued.api_key.expose())
            .expect("key")
            .hash();
        let by_hash = t.db.key_by_hash(&hash).await.expect("by hash");
        assert_eq!(by_hash.expect("row").limits, want);
        let by_id = t.db.key_by_id(key_id).await.expect("by id").expect("row");
        assert_eq!(by_id.limits, want);
        let listed = t.db.list_keys(None).await.expect("list");
        assert_eq!(listed[0].limits, want);

        // A change of one kind keeps the others; `Some(None)` removes one.
        let set =
            t.db.set_key_limits(
                key_id,
                &LimitsChange {
                    monthly_quota: Some(None),
                    ..Default::default()
                },
                "key:1",
                chrono::Utc::now(),
            )
            .await
            .expect("clear quota");
        assert_eq!(
            set.after.limits,
            limits(Some(600), None, Some("10.0.0.0/8,192.0.2.7/32"))
        );

        // A change that changes nothing writes nothing (and on SQLite does
        // not move the change counter, which would empty every cache).
        let generation = sqlite_generation(&t.url).await;
        let same =
            t.db.set_key_limits(
                key_id,
                &LimitsChange {
                    rate_limit_per_minute: Some(Some(600)),
                    ..Default::default()
                },
                "cli",
                chrono::Utc::now(),
            )
            .await
            .expect("same limits");
        assert!(!same.changed());
        assert_eq!(sqlite_generation(&t.url).await, generation);

        let events = t.db.key_events(key_id).await.expect("events");
        let changes: Vec<_> = events
            .iter()
            .filter(|e| e.event == "limits_changed")
            .map(|e| (e.actor.as_str(), e.detail.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            changes,
            [
                (
                    "cli",
                    "rate none, quota none, ips none → \
                     rate 600/min, quota 100000/month, ips 10.0.0.0/8,192.0.2.7/32"
                ),
                (
                    "key:1",
                    "rate 600/min, quota 100000/month, ips 10.0.0.0/8,192.0.2.7/32 → \
                     rate 600/min, quota none, ips 10.0.0.0/8,192.0.2.7/32"
                ),
            ],
            "{:?}",
            t.backend
        );
        assert!(
            events.iter().all(|e| issued.record.user_id == e.user_id),
            "events are the key's tenant's"
        );

        let missing =
            t.db.set_key_limits(
                key_id + 1000,
                &LimitsChange {
                    monthly_quota: Some(Some(5)),
                    ..Default::default()
                },
                "cli",
                chrono::Utc::now(),
            )
            .await;
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{missing:?}"
        );
    }
);

backend_test!(
    the_database_refuses_zero_negative_and_empty_limits,
    |t| async move {
        let issued = issue_key(&t.db, "check@example.com", None).await;
        let key_id = issued.record.key_id;
        let url = t.url.clone();
        for (column, value) in [
            ("rate_limit_per_minute", "0"),
            ("rate_limit_per_minute", "-1"),
            ("rate_limit_per_minute", "4294967296"),
            ("monthly_quota", "0"),
            ("monthly_quota", "-7"),
            ("allowed_ips", "''"),
        ] {
            let sql = format!("UPDATE api_keys SET {column} = {value} WHERE key_id = {key_id}");
            let refused = raw_execute(&url, &sql).await;
            assert!(refused.is_err(), "{:?}: {sql} was accepted", t.backend);
        }
        let row = t.db.key_by_id(key_id).await.expect("read").expect("row");
        assert_eq!(row.limits, KeyLimits::default(), "nothing was written");
    }
);

/// SQLite's key change counter (`None` on Postgres, which notifies instead).
async fn sqlite_generation(url: &str) -> Option<i64> {
    use sqlx::Connection;
    if !url.starts_with("sqlite:") {
        return None;
    }
    let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
    let generation = sqlx::query_scalar("SELECT generation FROM api_key_changes WHERE id = 1")
        .fetch_one(&mut conn)
        .await
        .expect("generation");
    Some(generation)
}

/// Runs one statement on its own connection, as another process would.
async fn raw_execute(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query(sql).execute(&mut conn).await?;
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query(sql).execute(&mut conn).await?;
    }
    Ok(())
}

/// A verifier on its own pool with its change watch reporting: one
/// replica's view of the keys.
async fn replica(url: &str, shutdown: &CancellationToken, clock: Clock) -> Verifier {
    let db: Db = store::open(url, &PoolOptions::default())
        .await
        .expect("open the replica's pool");
    watched_verifier_on(&db, shutdown, clock).await
}

backend_test!(
    a_change_of_limits_reaches_another_replicas_cached_key_within_a_second,
    |t| async move {
        let shutdown = CancellationToken::new();
        let issued = issue_key(&t.db, "replica@example.com", None).await;
        let key = issued.api_key.expose();
        let clock = Clock::manual(chrono::Utc::now());
        let other = replica(&t.url, &shutdown, clock.clone()).await;
        let caller = other.verify(key).await.expect("valid key");
        assert_eq!(caller.limits, KeyLimits::default());
        // Cached: past the blind bound it is still served without a query,
        // so only the change watch can bring the new limits.
        clock.advance(fleetmind::auth::BLIND_MAX_AGE + Duration::from_millis(200));
        other.verify(key).await.expect("cached");
        assert_eq!(other.lookups(), 1, "{:?}: cached", t.backend);

        // Changed through this process's store: another pool, another
        // replica's cache.
        t.db.set_key_limits(
            issued.record.key_id,
            &LimitsChange {
                rate_limit_per_minute: Some(Some(60)),
                allowed_ips: Some(Some("127.0.0.1".parse().unwrap())),
                ..Default::default()
            },
            "cli",
            chrono::Utc::now(),
        )
        .await
        .expect("set limits");
        let want = limits(Some(60), None, Some("127.0.0.1/32"));
        let seen = eventually(BOUND, || async {
            other.verify(key).await.expect("valid key").limits == want
        })
        .await;
        assert!(
            seen,
            "{:?}: the other replica still holds the old limits after {BOUND:?}",
            t.backend
        );
        assert_eq!(other.lookups(), 2, "{:?}: reloaded once", t.backend);
        shutdown.cancel();
    }
);

/// The CLI's output; its exit status, stdout and stderr.
async fn cli(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = run_fleetmind(url, args).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The `limits_changed` events of a key: (actor, detail).
async fn limit_events(db: &Db, key_id: i64) -> Vec<(String, String)> {
    db.key_events(key_id)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.event == "limits_changed")
        .map(|e| (e.actor, e.detail.unwrap_or_default()))
        .collect()
}

backend_test!(
    the_cli_creates_shows_and_changes_limits_and_refuses_bad_ones,
    |t| async move {
        let (ok, out, err) = cli(
            &t.url,
            &[
                "keys",
                "create",
                "--email",
                "cli-limits@example.com",
                "--rate-limit-per-minute",
                "600",
                "--monthly-quota",
                "100000",
                "--allowed-ips",
                "10.0.0.0/8,192.0.2.7",
                "--json",
            ],
        )
        .await;
        assert!(ok, "{err}");
        let created = json_of(&out);
        let key_id = created["key_id"].as_i64().expect("key_id");
        let id = key_id.to_string();
        let want = json!({
            "rate_limit_per_minute": 600,
            "monthly_quota": 100000,
            "allowed_ips": ["10.0.0.0/8", "192.0.2.7/32"],
        });
        assert_eq!(created["limits"], want);
        let events = t.db.key_events(key_id).await.expect("events");
        assert!(
            events[0].detail.as_deref().is_some_and(|d| d.ends_with(
                "; limits rate 600/min, quota 100000/month, ips 10.0.0.0/8,192.0.2.7/32"
            )),
            "the created event records the limits: {events:?}"
        );

        let (ok, out, err) = cli(&t.url, &["keys", "list", "--json"]).await;
        assert!(ok, "{err}");
        assert_eq!(json_of(&out)[0]["limits"], want);
        let (ok, table, err) = cli(&t.url, &["keys", "list"]).await;
        assert!(ok, "{err}");
        assert!(
            table.contains("LIMITS") && table.contains("600/min,100000/month,ips 10.0.0.0/8"),
            "{table}"
        );
        let (ok, out, err) = cli(&t.url, &["keys", "show", "--key-id", &id, "--json"]).await;
        assert!(ok, "{err}");
        let shown = json_of(&out);
        assert_eq!(shown["limits"], want);
        assert_eq!(shown["units_used_this_month"], 0);

        // Bad values: refused by name, nothing changed, nothing audited.
        for (flag, value, named) in [
            (
                "--rate-limit-per-minute",
                "0",
                "rate_limit_per_minute must be",
            ),
            (
                "--rate-limit-per-minute",
                "-5",
                "rate_limit_per_minute must be",
            ),
            (
                "--rate-limit-per-minute",
                "4294967296",
                "rate_limit_per_minute must be",
            ),
            ("--monthly-quota", "0", "monthly_quota must be"),
            ("--monthly-quota", "lots", "monthly_quota must be"),
            ("--allowed-ips", "10.0.0.300", "'10.0.0.300'"),
            ("--allowed-ips", "10.0.0.0/8,bogus", "'bogus'"),
            ("--allowed-ips", "", "lists no address"),
        ] {
            let arg = format!("{flag}={value}");
            let (ok, _, err) = cli(&t.url, &["keys", "limits", "--key-id", &id, &arg]).await;
            assert!(!ok, "{arg} was accepted");
            assert!(err.contains(named), "{arg}: {err}");
            let (ok, _, err) = cli(
                &t.url,
                &["keys", "create", "--email", "bad@example.com", &arg],
            )
            .await;
            assert!(!ok, "create {arg} was accepted");
            assert!(err.contains(named), "create {arg}: {err}");
        }
        let (ok, _, err) = cli(&t.url, &["keys", "limits", "--key-id", &id]).await;
        assert!(!ok && err.contains("--rate-limit-per-minute"), "{err}");
        let (ok, _, err) = cli(
            &t.url,
            &[
                "keys",
                "limits",
                "--key-id",
                "99999",
                "--monthly-quota",
                "5",
            ],
        )
        .await;
        assert!(!ok && err.contains("not found"), "{err}");
        assert_eq!(limit_events(&t.db, key_id).await, []);
        let row = t.db.key_by_id(key_id).await.expect("read").expect("row");
        assert_eq!(row.limits.rate_limit_per_minute, Some(600));
        assert!(
            t.db.list_keys(Some("bad@example.com"))
                .await
                .expect("list")
                .is_empty(),
            "no key was created with a bad limit"
        );

        // A change prints each kind that moved, before → after.
        let (ok, out, err) = cli(
            &t.url,
            &[
                "keys",
                "limits",
                "--key-id",
                &id,
                "--rate-limit-per-minute",
                "60",
                "--allowed-ips",
                "none",
            ],
        )
        .await;
        assert!(ok, "{err}");
        assert_eq!(
            out.trim(),
            format!(
                "limits of key {id} changed:\n  rate_limit_per_minute: 600 \u{2192} 60\n  \
                 allowed_ips: 10.0.0.0/8,192.0.2.7/32 \u{2192} none"
            )
        );
        let (ok, out, err) = cli(
            &t.url,
            &[
                "keys",
                "limits",
                "--key-id",
                &id,
                "--monthly-quota",
                "100000",
                "--json",
            ],
        )
        .await;
        assert!(ok, "{err}");
        let same = json_of(&out);
        assert_eq!(same["changed"], false, "{same}");
        assert_eq!(
            same["after"],
            json!({"rate_limit_per_minute": 60, "monthly_quota": 100000, "allowed_ips": null})
        );
        assert_eq!(
            limit_events(&t.db, key_id).await,
            [(
                "cli".to_owned(),
                "rate 600/min, quota 100000/month, ips 10.0.0.0/8,192.0.2.7/32 \u{2192} \
                 rate 60/min, quota 100000/month, ips none"
                    .to_owned()
            )]
        );
    }
);

backend_test!(
    the_admin_tools_set_and_clear_limits_audited_with_the_admin_as_actor,
    |t| async move {
        let admin = issue_key(&t.db, "ops@example.com", Some(Scopes::admin())).await;
        let server = start_server(t.db.clone()).await;
        let ops = connect(&server.mcp_url(), admin.api_key.expose())
            .await
            .expect("connect admin");

        let created = call_ok(
            &ops,
            "admin_create_api_key",
            json!({
                "email": "limited@example.com",
                "rate_limit_per_minute": 120,
                "allowed_ips": "192.0.2.0/24, ::1",
            }),
        )
        .await;
        let key_id = created["key_id"].as_i64().expect("key_id");
        assert_eq!(
            created["limits"],
            json!({
                "rate_limit_per_minute": 120,
                "monthly_quota": null,
                "allowed_ips": ["192.0.2.0/24", "::1/128"],
            })
        );

        // A value sets, null removes, absent keeps.
        let changed = call_ok(
            &ops,
            "admin_set_key_limits",
            json!({"key_id": key_id, "monthly_quota": 5000, "allowed_ips": null}),
        )
        .await;
        assert_eq!(changed["changed"], true);
        assert_eq!(changed["exhausted"], false);
        assert_eq!(changed["units_used_this_month"], 0);
        assert_eq!(
            changed["before"],
            json!({"rate_limit_per_minute": 120, "monthly_quota": null,
                   "allowed_ips": ["192.0.2.0/24", "::1/128"]})
        );
        let after =
            json!({"rate_limit_per_minute": 120, "monthly_quota": 5000, "allowed_ips": null});
        assert_eq!(changed["after"], after);
        assert_eq!(changed["key"]["limits"], after);
        let listed = call_ok(
            &ops,
            "admin_list_api_keys",
            json!({"email": "limited@example.com"}),
        )
        .await;
        assert_eq!(listed["keys"][0]["limits"], after);

        // Bad input: a tool error naming the field; nothing changed.
        for (args, named) in [
            (
                json!({"key_id": key_id, "rate_limit_per_minute": 0}),
                "rate_limit_per_minute must be a whole number between 1",
            ),
            (
                json!({"key_id": key_id, "rate_limit_per_minute": -3}),
                "rate_limit_per_minute must be",
            ),
            (
                json!({"key_id": key_id, "rate_limit_per_minute": 4294967296_i64}),
                "rate_limit_per_minute must be",
            ),
            (
                json!({"key_id": key_id, "monthly_quota": 0}),
                "monthly_quota must be",
            ),
            (
                json!({"key_id": key_id, "monthly_quota": "10"}),
                "monthly_quota must be",
            ),
            (
                json!({"key_id": key_id, "allowed_ips": ["10.0.0.0/8", "10.0.0.0/99"]}),
                "allowed_ips: '10.0.0.0/99'",
            ),
            (
                json!({"key_id": key_id, "allowed_ips": []}),
                "allowed_ips lists no address",
            ),
            (
                json!({"key_id": key_id, "allowed_ips": 7}),
                "allowed_ips must be a list",
            ),
            (json!({"key_id": key_id}), "give at least one of"),
            (json!({"monthly_quota": 5}), "key_id is required"),
            (
                json!({"key_id": key_id, "rate_limit": 5}),
                "unknown argument 'rate_limit'",
            ),
            (
                json!({"key_id": key_id + 1000, "monthly_quota": 5}),
                "key_id: no key has this id",
            ),
        ] {
            let text = call_err(&ops, "admin_set_key_limits", args.clone()).await;
            assert!(text.contains(named), "{args}: {text}");
        }
        let text = call_err(
            &ops,
            "admin_create_api_key",
            json!({"email": "bad@example.com", "monthly_quota": -1}),
        )
        .await;
        assert!(text.contains("monthly_quota must be"), "{text}");
        assert!(
            t.db.list_keys(Some("bad@example.com"))
                .await
                .expect("list")
                .is_empty()
        );
        let row = t.db.key_by_id(key_id).await.expect("read").expect("row");
        assert_eq!(row.limits, limits(Some(120), Some(5000), None));
        assert_eq!(
            limit_events(&t.db, key_id).await,
            [(
                key_actor(admin.record.key_id),
                "rate 120/min, quota none, ips 192.0.2.0/24,::1/128 \u{2192} \
                 rate 120/min, quota 5000/month, ips none"
                    .to_owned()
            )]
        );

        // Without the admin scope: refused, and a `denied` event of the caller.
        let user = issue_key(&t.db, "user@example.com", None).await;
        let plain = connect(&server.mcp_url(), user.api_key.expose())
            .await
            .expect("connect");
        let text = call_err(
            &plain,
            "admin_set_key_limits",
            json!({"key_id": user.record.key_id, "rate_limit_per_minute": null}),
        )
        .await;
        assert!(text.contains("'admin'"), "{text}");
        let denied = t.db.key_events(user.record.key_id).await.expect("events");
        assert!(
            denied.iter().any(|e| e.event == "denied"
                && e.detail
                    .as_deref()
                    .is_some_and(|d| d.contains("admin_set_key_limits"))),
            "{denied:?}"
        );
        let _ = plain.cancel().await;
        let _ = ops.cancel().await;
        server.stop().await;
    }
);

// On the server's clock (a manual one, at the last microsecond of this
// month: the CLI reads the system clock, so the month must be the real one
// for its step), then across the month's turn, where the quota starts over.
backend_test!(
    a_quota_below_this_months_use_is_set_and_said_to_exhaust_the_key,
    |t| async move {
        let month_end = fleetmind::limits::quota::next_month_start(chrono::Utc::now());
        let last_micro = month_end - chrono::Duration::microseconds(1);
        let clock = fleetmind::clock::Clock::manual(last_micro);
        let admin = issue_key(&t.db, "ops@example.com", Some(Scopes::admin())).await;
        let user = issue_key(&t.db, "busy@example.com", None).await;
        let key_id = user.record.key_id;
        t.db.set_key_limits(
            key_id,
            &LimitsChange {
                monthly_quota: Some(Some(1000)),
                ..Default::default()
            },
            "cli",
            clock.now(),
        )
        .await
        .expect("quota");
        let server = start_server_with(
            t.db.clone(),
            ServeOptions {
                limits_sync_interval: Duration::from_millis(50),
                clock: clock.clone(),
                ..ServeOptions::default()
            },
        )
        .await;
        let url = server.mcp_url();
        let http = reqwest::Client::new();
        for _ in 0..3 {
            assert_eq!(whoami_status(&http, &url, user.api_key.expose()).await, 200);
        }
        // The calls reach the shared counters within a sync interval.
        let month = fleetmind::limits::quota::month_of(clock.now());
        let synced = eventually(Duration::from_secs(10), || async {
            t.db.limit_count(key_id, month)
                .await
                .expect("count")
                .is_some_and(|c| c.units >= 3)
        })
        .await;
        assert!(synced, "{:?}: the calls were never counted", t.backend);

        let ops = connect(&url, admin.api_key.expose())
            .await
            .expect("connect");
        let changed = call_ok(
            &ops,
            "admin_set_key_limits",
            json!({"key_id": key_id, "monthly_quota": 2}),
        )
        .await;
        assert_eq!(changed["changed"], true, "{changed}");
        assert_eq!(changed["exhausted"], true, "{changed}");
        assert_eq!(changed["units_used_this_month"], 3, "{changed}");
        let message = changed["message"].as_str().expect("message");
        assert!(
            message.contains("has already used 3 of its 2 units this month")
                && message.contains("now exhausted"),
            "{message}"
        );
        // The CLI says the same when it changes it.
        let (ok, out, err) = cli(
            &t.url,
            &[
                "keys",
                "limits",
                "--key-id",
                &key_id.to_string(),
                "--monthly-quota",
                "3",
            ],
        )
        .await;
        assert!(ok, "{err}");
        assert!(
            out.contains("monthly_quota: 2 \u{2192} 3") && out.contains("now exhausted"),
            "{out}"
        );
        // And the key's next call is refused for its quota.
        let refused = eventually(Duration::from_secs(2), || async {
            let answer = tools_call_http(
                &http,
                &url,
                user.api_key.expose(),
                "whoami",
                json!({}),
                Duration::from_secs(30),
            )
            .await
            .expect("an answer");
            answer.status == 429 && answer.body["error"]["data"]["error"] == "quota_exhausted"
        })
        .await;
        assert!(
            refused,
            "{:?}: the exhausted key is still served",
            t.backend
        );

        // The month turns on the server's clock: nothing used yet, the key
        // is served again, and each change is audited at the clock's time.
        clock.set(month_end);
        let changed = call_ok(
            &ops,
            "admin_set_key_limits",
            json!({"key_id": key_id, "monthly_quota": 2}),
        )
        .await;
        assert_eq!(changed["units_used_this_month"], 0, "{changed}");
        assert_eq!(changed["exhausted"], false, "{changed}");
        assert_eq!(whoami_status(&http, &url, user.api_key.expose()).await, 200);
        let admin_changes: Vec<_> = t
            .db
            .key_events(key_id)
            .await
            .expect("events")
            .into_iter()
            .filter(|e| e.event == "limits_changed" && e.actor == key_actor(admin.record.key_id))
            .map(|e| e.at)
            .collect();
        assert_eq!(admin_changes, vec![last_micro, month_end]);
        let _ = ops.cancel().await;
        server.stop().await;
    }
);

backend_test!(
    serve_applies_its_default_rate_limit_to_keys_without_one,
    |t| async move {
        let plain = issue_key(&t.db, "plain@example.com", None).await;
        let own = issue_key(&t.db, "own@example.com", None).await;
        t.db.set_key_limits(
            own.record.key_id,
            &LimitsChange {
                rate_limit_per_minute: Some(Some(1000)),
                ..Default::default()
            },
            "cli",
            chrono::Utc::now(),
        )
        .await
        .expect("own limit");
        let server = BinaryServer::start_with(
            &t.url,
            "warn",
            &[],
            &[("FLEETMIND_DEFAULT_RATE_LIMIT_PER_MINUTE", "2")],
        )
        .await;
        let url = server.mcp_url();
        let http = reqwest::Client::new();
        let statuses = |key: String| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let mut all = Vec::new();
                for _ in 0..3 {
                    all.push(whoami_status(&http, &url, &key).await);
                }
                all
            }
        };
        assert_eq!(
            statuses(plain.api_key.expose().to_owned()).await,
            [200, 200, 429],
            "{:?}: a key without a limit gets the default",
            t.backend
        );
        assert_eq!(
            statuses(own.api_key.expose().to_owned()).await,
            [200, 200, 200],
            "{:?}: a key's own limit wins",
            t.backend
        );
        server.stop().await;

        let (ok, _, err) = cli(
            &t.url,
            &[
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--default-rate-limit-per-minute",
                "0",
            ],
        )
        .await;
        assert!(
            !ok && err.contains("--default-rate-limit-per-minute"),
            "{err}"
        );
    }
);

backend_test!(
    limits_set_through_one_server_reach_another_within_a_second,
    |t| async move {
        let admin = issue_key(&t.db, "ops@example.com", Some(Scopes::admin())).await;
        let user = issue_key(&t.db, "two@example.com", None).await;
        let key = user.api_key.expose();
        // Two servers, each on its own pool of the same database: replicas.
        let other_db: Db = store::open(&t.url, &PoolOptions::default())
            .await
            .expect("open the other server's pool");
        let one = start_server(t.db.clone()).await;
        let two = start_server(other_db).await;
        let http = reqwest::Client::new();
        let limits_on_two = || async {
            tools_call_http(&http, &two.mcp_url(), key, "whoami", json!({}), BOUND * 30)
                .await
                .expect("an answer")
                .body["result"]["structuredContent"]["limits"]["rate_limit_per_minute"]
                .clone()
        };
        assert_eq!(limits_on_two().await, Value::Null, "cached with no limit");

        let ops = connect(&one.mcp_url(), admin.api_key.expose())
            .await
            .expect("connect");
        call_ok(
            &ops,
            "admin_set_key_limits",
            json!({"key_id": user.record.key_id, "rate_limit_per_minute": 500}),
        )
        .await;
        let seen = eventually(BOUND, || async { limits_on_two().await == json!(500) }).await;
        assert!(
            seen,
            "{:?}: the other server still shows the old limits after {BOUND:?}",
            t.backend
        );
        let _ = ops.cancel().await;
        one.stop().await;
        two.stop().await;
    }
);

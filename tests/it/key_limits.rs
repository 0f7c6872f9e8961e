//! Per-key limits as stored and managed (issue 13): read with the key, set
//! and cleared in one audited transaction, refused by the database itself
//! when zero or negative, and a change reaches another server's cached key
//! within the change watch's bound. (Enforcing them on requests is tested
//! beside the enforcement.)

use crate::support::*;
use fleetmind::auth::{UsageRecorder, Verifier};
use fleetmind::limits::{KeyLimits, LimitsChange};
use fleetmind::store::{self, Db, PoolOptions, StoreError};
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
            )
            .await
            .expect("clear quota");
        assert_eq!(
            set.after.limits,
            limits(Some(600), None, Some("10.0.0.0/8,192.0.2.7/32"))
        );

        // A change that changes nothing writes nothing.
        let same =
            t.db.set_key_limits(
                key_id,
                &LimitsChange {
                    rate_limit_per_minute: Some(Some(600)),
                    ..Default::default()
                },
                "cli",
            )
            .await
            .expect("same limits");
        assert!(!same.changed());

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
async fn replica(url: &str, shutdown: &CancellationToken) -> Verifier {
    let db: Db = store::open(url, &PoolOptions::default())
        .await
        .expect("open the replica's pool");
    let verifier = Verifier::new(db, UsageRecorder::new());
    let _watch = verifier.spawn_watch(shutdown.clone());
    assert!(
        eventually(Duration::from_secs(10), || async {
            verifier.cache().is_watching()
        })
        .await,
        "the change watch never reported in"
    );
    verifier
}

backend_test!(
    a_change_of_limits_reaches_another_replicas_cached_key_within_a_second,
    |t| async move {
        let shutdown = CancellationToken::new();
        let issued = issue_key(&t.db, "replica@example.com", None).await;
        let key = issued.api_key.expose();
        let other = replica(&t.url, &shutdown).await;
        let caller = other.verify(key).await.expect("valid key");
        assert_eq!(caller.limits, KeyLimits::default());
        // Cached: past the blind bound it is still served without a query,
        // so only the change watch can bring the new limits.
        tokio::time::sleep(fleetmind::auth::BLIND_MAX_AGE + Duration::from_millis(200)).await;
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

//! Per-key limits in the console (issues 12 and 13): an admin sets them on
//! a new key and changes them on a key's row (audited `limits_changed`, actor
//! `console:key:<id>`); a non-admin cannot, and the keys it issues carry its
//! own key's limits, so a limited key cannot mint an unlimited one.

use crate::console::{Browser, key_count};
use crate::support::*;
use fleetmind::keys::ApiKey;
use fleetmind::limits::{KeyLimits, LimitsChange};
use fleetmind::scopes::Scopes;
use fleetmind::store::KeyRecord;

async fn record_of(t: &TestDb, key: &str) -> KeyRecord {
    fleetmind::store::KeyStore::key_by_hash(t.db.as_ref(), &ApiKey::parse(key).unwrap().hash())
        .await
        .unwrap()
        .unwrap()
}

backend_test!(
    limits_are_set_by_an_admin_and_inherited_otherwise,
    |t| async move {
        let db = t.db.clone();
        let admin = issue_key(&db, "admin@example.com", Some(Scopes::admin())).await;
        let user = issue_key(&db, "user@example.com", None).await;
        let user_limits = LimitsChange {
            rate_limit_per_minute: Some(Some(5)),
            ..LimitsChange::default()
        };
        db.set_key_limits(user.record.key_id, &user_limits, "cli", chrono::Utc::now())
            .await
            .unwrap();
        let server = start_server(db.clone()).await;

        // The admin: labelled fields on the create form and on each row.
        let mut console = Browser::new(&server);
        let page = console.sign_in(admin.api_key.expose()).await;
        for id in [
            "key-limits-rate-limit-per-minute",
            "key-limits-monthly-quota",
            "key-limits-allowed-ips",
        ] {
            assert!(page.body.contains(&format!("<label for=\"{id}\"")), "{id}");
        }
        let user_row = format!("action=\"/console/keys/{}/limits\"", user.record.key_id);
        assert!(page.body.contains(&user_row));
        assert!(page.body.contains("rate 5/min"), "the Limits column");
        let csrf = page.csrf();

        // A key with all three limits.
        let page = console
            .post(
                "/console/keys",
                &[
                    ("csrf", &csrf),
                    ("email", "limited@example.com"),
                    ("scopes", "orders:read"),
                    ("rate_limit_per_minute", "60"),
                    ("monthly_quota", "1000"),
                    ("allowed_ips", "10.0.0.0/8, 192.0.2.7"),
                ],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let limited = record_of(&t, &page.key()).await;
        assert_eq!(limited.limits.rate_limit_per_minute, Some(60));
        assert_eq!(limited.limits.monthly_quota, Some(1000));
        assert_eq!(
            limited.limits.allowed_ips.as_ref().unwrap().to_string(),
            "10.0.0.0/8,192.0.2.7/32"
        );

        // Bad values: 400 naming the field, nothing created or changed.
        let before = key_count(&db).await;
        for (field, value) in [
            ("rate_limit_per_minute", "0"),
            ("monthly_quota", "many"),
            ("allowed_ips", "10.0.0.300"),
        ] {
            let page = console
                .post(
                    "/console/keys",
                    &[("csrf", &csrf), ("scopes", "orders:read"), (field, value)],
                )
                .await;
            assert_eq!(page.status, 400, "{field}={value}: {}", page.body);
            assert!(page.body.contains(field), "{}", page.body);
            let path = format!("/console/keys/{}/limits", limited.key_id);
            let page = console
                .post(&path, &[("csrf", &csrf), (field, value)])
                .await;
            assert_eq!(page.status, 400, "{field}={value}: {}", page.body);
        }
        assert_eq!(key_count(&db).await, before);

        // A change on the row: none removes, blank keeps, a value sets.
        let path = format!("/console/keys/{}/limits", limited.key_id);
        let page = console
            .post(
                &path,
                &[
                    ("csrf", &csrf),
                    ("rate_limit_per_minute", "none"),
                    ("monthly_quota", ""),
                    ("allowed_ips", "127.0.0.1"),
                ],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        let changed = db.key_by_id(limited.key_id).await.unwrap().unwrap();
        assert_eq!(changed.limits.rate_limit_per_minute, None);
        assert_eq!(changed.limits.monthly_quota, Some(1000));
        assert_eq!(
            changed.limits.allowed_ips.as_ref().unwrap().to_string(),
            "127.0.0.1/32"
        );
        let events = db.key_events(limited.key_id).await.unwrap();
        let event = events.iter().find(|e| e.event == "limits_changed").unwrap();
        assert_eq!(event.actor, format!("console:key:{}", admin.record.key_id));
        // An empty change is refused.
        let page = console.post(&path, &[("csrf", &csrf)]).await;
        assert_eq!(page.status, 400, "{}", page.body);

        // A non-admin: no limits form, no change, and its keys carry its limits.
        let mut browser = Browser::new(&server);
        let page = browser.sign_in(user.api_key.expose()).await;
        assert!(
            !page.body.contains("/limits\""),
            "a limits form for a non-admin"
        );
        assert!(page.body.contains("gets your key's limits: rate 5/min"));
        let csrf = page.csrf();
        let own = format!("/console/keys/{}/limits", user.record.key_id);
        let page = browser
            .post(&own, &[("csrf", &csrf), ("rate_limit_per_minute", "none")])
            .await;
        assert_eq!(page.status, 403, "{}", page.body);
        let still = db.key_by_id(user.record.key_id).await.unwrap().unwrap();
        assert_eq!(still.limits.rate_limit_per_minute, Some(5));
        let page = browser
            .post(
                "/console/keys",
                &[
                    ("csrf", &csrf),
                    ("scopes", "orders:read"),
                    ("rate_limit_per_minute", "none"),
                ],
            )
            .await;
        assert_eq!(page.status, 403, "{}", page.body);
        let page = browser
            .post(
                "/console/keys",
                &[("csrf", &csrf), ("scopes", "orders:read")],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let minted = record_of(&t, &page.key()).await;
        assert_eq!(
            minted.limits,
            KeyLimits {
                rate_limit_per_minute: Some(5),
                ..KeyLimits::default()
            }
        );

        server.stop().await;
        drop(t);
    }
);

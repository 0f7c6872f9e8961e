//! Console sessions end after 30 minutes idle and 12 hours in all (issue
//! 12), judged by the server's clock: the tests move a manual clock
//! (`ServeOptions::clock`) instead of sleeping.

use crate::console::{Browser, Page};
use crate::support::*;
use fleetmind::app::ServeOptions;
use fleetmind::clock::Clock;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// The sign-in page, with why the session ended.
fn assert_sent_to_sign_in(page: &Page, at: &str) {
    assert_eq!(page.status, 401, "{at}: {}", page.body);
    assert!(
        page.body.contains("name=\"api_key\""),
        "{at}: {}",
        page.body
    );
    assert!(
        page.body.contains("session has expired"),
        "{at}: {}",
        page.body
    );
}

backend_test!(a_session_ends_after_30_idle_minutes, |t| async move {
    let db = t.db.clone();
    let key = issue_key(&db, "idle@example.com", None).await;
    let start = chrono::Utc::now();
    let clock = Clock::manual(start);
    let options = ServeOptions {
        clock: clock.clone(),
        ..Default::default()
    };
    let server = start_server_with(db.clone(), options).await;
    let mut browser = Browser::new(&server);
    assert_eq!(browser.sign_in(key.api_key.expose()).await.status, 200);

    // A request within 30 minutes keeps the session alive, and restarts
    // the idle count: 29 + 29 minutes of use is fine.
    clock.advance(29 * MINUTE);
    assert_eq!(
        browser.get("/console/keys").await.status,
        200,
        "after 29 min"
    );
    clock.advance(29 * MINUTE);
    assert_eq!(
        browser.get("/console/keys").await.status,
        200,
        "after 58 min"
    );
    // 30 minutes without a request: the next page is the sign-in page,
    // and the session is gone (moving the clock back does not revive it).
    clock.advance(30 * MINUTE);
    let page = browser.get("/console/keys").await;
    assert_sent_to_sign_in(&page, "30 min idle");
    clock.set(start + chrono::Duration::minutes(59));
    let page = browser.get("/console/keys").await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("session has ended"), "{}", page.body);

    // Signing in again opens a new session at the clock's time.
    assert_eq!(browser.sign_in(key.api_key.expose()).await.status, 200);
    server.stop().await;
    drop(t);
});

backend_test!(
    a_session_ends_12_hours_after_sign_in_however_busy,
    |t| async move {
        let db = t.db.clone();
        let key = issue_key(&db, "busy@example.com", None).await;
        let clock = Clock::manual(chrono::Utc::now());
        let options = ServeOptions {
            clock: clock.clone(),
            ..Default::default()
        };
        let server = start_server_with(db.clone(), options).await;
        let mut browser = Browser::new(&server);
        assert_eq!(browser.sign_in(key.api_key.expose()).await.status, 200);

        // A page every 20 minutes, never idle, up to 11 h 40 min in.
        for step in 1..=35 {
            clock.advance(20 * MINUTE);
            let page = browser.get("/console/keys").await;
            assert_eq!(page.status, 200, "after {} min: {}", step * 20, page.body);
        }
        // 12 h after sign-in (20 minutes after the last page): over.
        clock.advance(20 * MINUTE);
        let page = browser.get("/console/keys").await;
        assert_sent_to_sign_in(&page, "12 h");

        // The key itself still works: only the session ended.
        let http = reqwest::Client::new();
        assert_eq!(
            whoami_status(&http, &server.mcp_url(), key.api_key.expose()).await,
            200
        );
        server.stop().await;
        drop(t);
    }
);

// A session lives no longer than the key it was opened with: past the key's
// expiry, or past the grace of a rotation that retired it, the next page is
// the sign-in page however recently the session was used.
backend_test!(
    a_session_ends_when_its_key_expires_or_is_rotated_out,
    |t| async move {
        let db = t.db.clone();
        let clock = Clock::manual(chrono::Utc::now());
        let expiring = fleetmind::keys::ApiKey::generate().expect("key");
        db.insert_key(&fleetmind::store::NewKey {
            user_id: fleetmind::keys::user_id_for_email("expiring@example.com"),
            email: "expiring@example.com".into(),
            name: None,
            hash: expiring.hash(),
            prefix: expiring.display_prefix(),
            scopes: fleetmind::scopes::Scopes::PREDECESSOR_DEFAULT,
            expires_at: Some(clock.now() + chrono::Duration::minutes(20)),
            created_by: "cli".into(),
            limits: Default::default(),
            created_at: clock.now(),
        })
        .await
        .expect("insert");
        let rotated = issue_key(&db, "rotated@example.com", None).await;
        let options = ServeOptions {
            clock: clock.clone(),
            ..Default::default()
        };
        let server = start_server_with(db.clone(), options).await;
        let mut by_expiry = Browser::new(&server);
        let mut by_rotation = Browser::new(&server);
        assert_eq!(by_expiry.sign_in(expiring.expose()).await.status, 200);
        assert_eq!(
            by_rotation.sign_in(rotated.api_key.expose()).await.status,
            200
        );
        let successor = fleetmind::keys::ApiKey::generate().expect("key");
        db.rotate_key(
            rotated.record.key_id,
            clock.now() + chrono::Duration::minutes(20),
            &successor_of(&rotated.record, &successor, clock.now()),
        )
        .await
        .expect("rotate");

        // Busy sessions, well inside the idle limit, up to the keys' end ...
        for at in [10 * MINUTE, 9 * MINUTE + Duration::from_secs(59)] {
            clock.advance(at);
            for browser in [&mut by_expiry, &mut by_rotation] {
                assert_eq!(browser.get("/console/keys").await.status, 200);
            }
        }
        // ... and over at that instant, 20 minutes after both were set up.
        clock.advance(Duration::from_secs(1));
        for (browser, what) in [
            (&mut by_expiry, "expired"),
            (&mut by_rotation, "rotated out"),
        ] {
            let page = browser.get("/console/keys").await;
            assert_eq!(page.status, 401, "{what}: {}", page.body);
            assert!(
                page.body.contains("name=\"api_key\""),
                "{what}: {}",
                page.body
            );
        }
        server.stop().await;
        drop(t);
    }
);

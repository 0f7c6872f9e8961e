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

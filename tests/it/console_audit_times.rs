//! What the console writes is dated by the server's clock (issue 10): on a
//! manual clock, a key issued, rotated, limited and revoked from the
//! console, and an invitation made and claimed, carry the clock's time in
//! their rows and their audit events, to the microsecond; a rotation's grace
//! ends by the clock the verifier judges by.

use crate::console::Browser;
use crate::support::keys::{assert_accepted, assert_refused};
use crate::support::*;
use chrono::{DateTime, Duration, Utc};
use fleetmind::app::ServeOptions;
use fleetmind::clock::Clock;
use fleetmind::scopes::Scopes;
use fleetmind::store::{Db, KeyEvent, KeyRecord};

/// The one key of `email`.
async fn key_of(db: &Db, email: &str) -> KeyRecord {
    let mut keys = db.list_keys(Some(email)).await.expect("list");
    assert_eq!(keys.len(), 1, "{email}");
    keys.remove(0)
}

/// A key's audit trail as (event, time).
async fn trail(db: &Db, key_id: i64) -> Vec<(String, DateTime<Utc>)> {
    let events: Vec<KeyEvent> = db.key_events(key_id).await.expect("events");
    events.into_iter().map(|e| (e.event, e.at)).collect()
}

fn event(name: &str, at: DateTime<Utc>) -> (String, DateTime<Utc>) {
    (name.to_owned(), at)
}

backend_test!(
    the_console_dates_keys_invitations_and_audit_by_the_servers_clock,
    |t| async move {
        let db = t.db.clone();
        let admin = issue_key(&db, "admin@example.com", Some(Scopes::admin())).await;
        let start = DateTime::parse_from_rfc3339("2031-05-06T07:08:09.123456Z")
            .expect("time")
            .with_timezone(&Utc);
        let clock = Clock::manual(start);
        let options = ServeOptions {
            clock: clock.clone(),
            ..Default::default()
        };
        let server = start_server_with(db.clone(), options).await;
        let url = server.mcp_url();
        let mut console = Browser::new(&server);
        let csrf = console.sign_in(admin.api_key.expose()).await.csrf();

        // A key issued for two days ...
        let page = console
            .post(
                "/console/keys",
                &[
                    ("csrf", &csrf),
                    ("email", "made@example.com"),
                    ("scopes", "orders:read"),
                    ("expires_in_days", "2"),
                ],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let made_plain = page.key();
        let made = key_of(&db, "made@example.com").await;
        assert_eq!(made.created_at, Some(start));
        assert_eq!(made.expires_at, Some(start + Duration::days(2)));

        // ... rotated a minute later with three minutes of grace.
        let rotated_at = start + Duration::minutes(1);
        clock.set(rotated_at);
        let path = format!("/console/keys/{}/rotate", made.key_id);
        let page = console
            .post(&path, &[("csrf", &csrf), ("grace_minutes", "3")])
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let successor_plain = page.key();
        let grace_end = rotated_at + Duration::minutes(3);
        let successor = db
            .list_keys(Some("made@example.com"))
            .await
            .expect("list")
            .into_iter()
            .find(|k| k.key_id != made.key_id)
            .expect("the successor");
        assert_eq!(successor.created_at, Some(rotated_at));
        let old = db.key_by_id(made.key_id).await.expect("read").expect("old");
        assert_eq!(old.expires_at, Some(grace_end));
        // The old key works to the end of its grace, and not a moment after.
        clock.set(grace_end - Duration::microseconds(1));
        assert_accepted(&url, &made_plain, "old key 1 µs before its grace ends").await;
        assert_accepted(&url, &successor_plain, "successor").await;
        clock.set(grace_end);
        assert_refused(&url, &made_plain, "old key as its grace ends").await;

        // An invitation, made and claimed.
        let invited_at = grace_end + Duration::seconds(5);
        clock.set(invited_at);
        let page = console
            .post(
                "/console/invites",
                &[
                    ("csrf", &csrf),
                    ("email", "invitee@example.com"),
                    ("scopes", "orders:read"),
                ],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let at = page.body.find("/console/invite/").expect("the link");
        let link: String = page.body[at..].split('<').next().unwrap_or("").to_owned();
        let claimed_at = invited_at + Duration::minutes(2);
        clock.set(claimed_at);
        let page = Browser::new(&server)
            .post(&link, &[("name", "invited")])
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let invited = key_of(&db, "invitee@example.com").await;
        assert_eq!(invited.created_at, Some(claimed_at));

        // The successor's limits changed, then the successor revoked.
        let limited_at = claimed_at + Duration::seconds(1);
        clock.set(limited_at);
        let path = format!("/console/keys/{}/limits", successor.key_id);
        let page = console
            .post(&path, &[("csrf", &csrf), ("rate_limit_per_minute", "60")])
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        let revoked_at = limited_at + Duration::seconds(1);
        clock.set(revoked_at);
        let path = format!("/console/keys/{}/revoke", successor.key_id);
        let page = console.post(&path, &[("csrf", &csrf)]).await;
        assert_eq!(page.status, 303, "{}", page.body);
        let revoked = db.key_by_id(successor.key_id).await.expect("read");
        assert_eq!(revoked.expect("successor").revoked_at, Some(revoked_at));

        assert_eq!(
            trail(&db, made.key_id).await,
            vec![event("created", start), event("rotated", rotated_at)]
        );
        assert_eq!(
            trail(&db, successor.key_id).await,
            vec![
                event("created", rotated_at),
                event("limits_changed", limited_at),
                event("revoked", revoked_at),
            ]
        );
        assert_eq!(
            trail(&db, invited.key_id).await,
            vec![
                event("created", claimed_at),
                event("invite_claimed", claimed_at)
            ]
        );
        let invited_events: Vec<_> = trail(&db, admin.record.key_id)
            .await
            .into_iter()
            .filter(|(name, _)| name == "invited")
            .collect();
        assert_eq!(invited_events, vec![event("invited", invited_at)]);
        server.stop().await;
        drop(t);
    }
);

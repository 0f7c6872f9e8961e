//! An invitation is spent only with the key it issues (issue 12): the claim
//! and the key's row are one transaction, so a key the database refuses to
//! store leaves the invitation claimable. The refusal is real: a trigger of
//! the test's own makes the database reject that key's `INSERT`.

use crate::console::{Browser, key_count};
use crate::support::*;
use fleetmind::keys::ApiKey;
use fleetmind::scopes::Scopes;
use fleetmind::store::Backend;

const INVITEE: &str = "invitee@example.com";

/// Runs statements on the test's database, outside the server's pool.
async fn run_sql(t: &TestDb, statements: &[&str]) {
    match t.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&t.url).await.expect("connect");
            for sql in statements {
                sqlx::query(sql).execute(&pool).await.expect(sql);
            }
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&t.url).await.expect("connect");
            for sql in statements {
                sqlx::query(sql).execute(&pool).await.expect(sql);
            }
            pool.close().await;
        }
    }
}

/// From now on the database refuses to store a key for `INVITEE`.
async fn refuse_invitee_keys(t: &TestDb) {
    match t.backend {
        Backend::Sqlite => {
            run_sql(
                t,
                &[
                    "CREATE TRIGGER test_refuse_invitee BEFORE INSERT ON api_keys \
                   WHEN NEW.email = 'invitee@example.com' \
                   BEGIN SELECT RAISE(ABORT, 'test refuses this key'); END",
                ],
            )
            .await
        }
        Backend::Postgres => {
            run_sql(
                t,
                &[
                    "CREATE FUNCTION test_refuse_invitee() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN IF NEW.email = 'invitee@example.com' THEN \
                       RAISE EXCEPTION 'test refuses this key'; END IF; RETURN NEW; END $$",
                    "CREATE TRIGGER test_refuse_invitee BEFORE INSERT ON api_keys \
                     FOR EACH ROW EXECUTE FUNCTION test_refuse_invitee()",
                ],
            )
            .await
        }
    }
}

async fn accept_invitee_keys(t: &TestDb) {
    let sql = match t.backend {
        Backend::Sqlite => "DROP TRIGGER test_refuse_invitee",
        Backend::Postgres => "DROP TRIGGER test_refuse_invitee ON api_keys",
    };
    run_sql(t, &[sql]).await;
}

backend_test!(
    a_key_that_cannot_be_stored_spends_no_invitation,
    |t| async move {
        let db = t.db.clone();
        let admin = issue_key(&db, "admin@example.com", Some(Scopes::admin())).await;
        let server = start_server(db.clone()).await;
        let mut console = Browser::new(&server);
        let csrf = console.sign_in(admin.api_key.expose()).await.csrf();
        let page = console
            .post(
                "/console/invites",
                &[
                    ("csrf", &csrf),
                    ("email", INVITEE),
                    ("scopes", "orders:read"),
                ],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let at = page.body.find("/console/invite/").unwrap();
        let path: String = page.body[at..].split('<').next().unwrap().to_owned();

        // The database refuses the key: the claim fails, says nothing inside,
        // stores nothing, and the invitation can still be claimed.
        refuse_invitee_keys(&t).await;
        let before = key_count(&db).await;
        let mut invitee = Browser::new(&server);
        let page = invitee.post(&path, &[("name", "laptop")]).await;
        assert_eq!(page.status, 503, "{}", page.body);
        assert!(!page.body.contains("test refuses"), "{}", page.body);
        assert!(!page.body.contains("fm_"), "a key shown: {}", page.body);
        assert!(invitee.cookie.is_none(), "a session was opened");
        assert_eq!(key_count(&db).await, before);
        let page = invitee.get(&path).await;
        assert_eq!(page.status, 200, "the invitation was spent: {}", page.body);

        // Once the key can be stored, the same link issues it, once.
        accept_invitee_keys(&t).await;
        let page = invitee.post(&path, &[("name", "laptop")]).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let key = page.key();
        assert_eq!(key_count(&db).await, before + 1);
        let http = reqwest::Client::new();
        assert_eq!(whoami_status(&http, &server.mcp_url(), &key).await, 200);
        let record = fleetmind::store::KeyStore::key_by_hash(
            db.as_ref(),
            &ApiKey::parse(&key).unwrap().hash(),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(record.email, INVITEE);
        let events = db.key_events(record.key_id).await.unwrap();
        let names: Vec<_> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(names, ["created", "invite_claimed"]);
        assert_eq!(invitee.get("/console/keys").await.status, 200);
        let page = Browser::new(&server).get(&path).await;
        assert_eq!(page.status, 410);
        assert!(page.body.contains("already been used"));

        server.stop().await;
        drop(t);
    }
);

// An invitation's expiry is judged by the server's clock: the test moves a
// manual clock past it instead of waiting an hour.
backend_test!(an_invitation_expires_by_the_servers_clock, |t| async move {
    let db = t.db.clone();
    let admin = issue_key(&db, "admin@example.com", Some(Scopes::admin())).await;
    let clock = fleetmind::clock::Clock::manual(chrono::Utc::now());
    let options = fleetmind::app::ServeOptions {
        clock: clock.clone(),
        ..Default::default()
    };
    let server = start_server_with(db.clone(), options).await;
    let mut console = Browser::new(&server);
    let csrf = console.sign_in(admin.api_key.expose()).await.csrf();
    let page = console
        .post(
            "/console/invites",
            &[
                ("csrf", &csrf),
                ("email", INVITEE),
                ("scopes", "orders:read"),
                ("expires_in_hours", "1"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let at = page.body.find("/console/invite/").unwrap();
    let path: String = page.body[at..].split('<').next().unwrap().to_owned();

    let mut invitee = Browser::new(&server);
    clock.advance(std::time::Duration::from_secs(59 * 60));
    assert_eq!(invitee.get(&path).await.status, 200, "after 59 min");
    clock.advance(std::time::Duration::from_secs(60));
    let before = key_count(&db).await;
    for page in [
        invitee.get(&path).await,
        invitee.post(&path, &[("name", "late")]).await,
    ] {
        assert_eq!(page.status, 410, "{}", page.body);
        assert!(page.body.contains("expired"), "{}", page.body);
    }
    assert_eq!(key_count(&db).await, before);

    server.stop().await;
    drop(t);
});

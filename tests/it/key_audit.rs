//! The audit trail of key events: written by the CLI (actor `cli`) as by the
//! admin tools, and append-only in the database itself on both backends.

use crate::support::binary::run_fleetmind;
use crate::support::keys::leaks_secret;
use crate::support::*;
use fleetmind::store::{Backend, RevokeTarget};
use serde_json::Value;
use sqlx::Connection;

/// Runs the real `fleetmind` binary, which must succeed; its stdout.
async fn fleetmind(database_url: &str, args: &[&str]) -> String {
    let what = args.join(" ");
    let output = run_fleetmind(database_url, args).await;
    assert!(
        output.status.success(),
        "fleetmind {what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

fn json(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

backend_test!(
    cli_key_commands_are_audited_with_actor_cli,
    |t| async move {
        let created = json(
            &fleetmind(
                &t.url,
                &[
                    "keys",
                    "create",
                    "--email",
                    "cli@example.com",
                    "--scopes",
                    "orders:read",
                    "--json",
                ],
            )
            .await,
        );
        let key_id = created["key_id"].as_i64().expect("key_id");
        assert_eq!(created["scopes"], serde_json::json!(["orders:read"]));
        assert!(
            created["api_key"]
                .as_str()
                .is_some_and(|k| k.starts_with("fm_"))
        );

        let listed = fleetmind(&t.url, &["keys", "list", "--json"]).await;
        assert_eq!(leaks_secret(&listed), None, "{listed}");
        let rows = json(&listed);
        let row = rows
            .as_array()
            .expect("array")
            .iter()
            .find(|r| r["key_id"] == key_id)
            .expect("listed");
        assert_eq!(row["state"], "active");

        let rotated = json(
            &fleetmind(
                &t.url,
                &[
                    "keys",
                    "rotate",
                    "--key-id",
                    &key_id.to_string(),
                    "--grace-minutes",
                    "5",
                    "--json",
                ],
            )
            .await,
        );
        let successor = rotated["key_id"].as_i64().expect("key_id");
        fleetmind(
            &t.url,
            &["keys", "revoke", "--key-id", &successor.to_string()],
        )
        .await;

        let trail = |id| {
            let db = t.db.clone();
            async move {
                db.key_events(id)
                    .await
                    .expect("events")
                    .into_iter()
                    .map(|e| (e.event, e.actor))
                    .collect::<Vec<_>>()
            }
        };
        let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            trail(key_id).await,
            vec![s("created", "cli"), s("rotated", "cli")]
        );
        assert_eq!(
            trail(successor).await,
            vec![s("created", "cli"), s("revoked", "cli")]
        );
        let listed = json(
            &fleetmind(
                &t.url,
                &["keys", "list", "--json", "--email", "cli@example.com"],
            )
            .await,
        );
        let states: Vec<_> = listed
            .as_array()
            .expect("array")
            .iter()
            .map(|r| r["state"].as_str().expect("state").to_owned())
            .collect();
        assert_eq!(states, ["revoked", "active"]);
    }
);

backend_test!(
    the_audit_table_refuses_update_delete_and_truncate,
    |t| async move {
        let key = issue_key(&t.db, "audit@example.com", None).await;
        fleetmind::key_admin::revoke(
            t.db.as_ref(),
            RevokeTarget::KeyId(key.record.key_id),
            "cli",
            chrono::Utc::now(),
        )
        .await
        .expect("revoke");
        let before = t.db.key_events(key.record.key_id).await.expect("events");
        assert_eq!(before.len(), 2);

        let mut statements = vec![
            "UPDATE api_key_events SET actor = 'someone else'",
            "DELETE FROM api_key_events",
        ];
        if t.backend == Backend::Postgres {
            statements.push("TRUNCATE api_key_events");
        }
        for statement in statements {
            let err = match t.backend {
                Backend::Sqlite => {
                    let mut conn = sqlx::SqliteConnection::connect(&t.url)
                        .await
                        .expect("connect");
                    sqlx::query(statement).execute(&mut conn).await.err()
                }
                Backend::Postgres => {
                    let mut conn = sqlx::PgConnection::connect(&t.url).await.expect("connect");
                    sqlx::query(statement).execute(&mut conn).await.err()
                }
            };
            let err = err.unwrap_or_else(|| panic!("{:?}: '{statement}' was allowed", t.backend));
            assert!(
                err.to_string().contains("append-only"),
                "{statement}: {err}"
            );
        }

        let after = t.db.key_events(key.record.key_id).await.expect("events");
        let view = |events: &[fleetmind::store::KeyEvent]| {
            events
                .iter()
                .map(|e| (e.event.clone(), e.actor.clone(), e.at))
                .collect::<Vec<_>>()
        };
        assert_eq!(view(&after), view(&before));
    }
);

backend_test!(
    the_first_admin_key_of_a_fresh_server_is_audited_as_bootstrap,
    |t| async move {
        let issued = fleetmind::key_admin::bootstrap_admin_key(t.db.as_ref(), chrono::Utc::now())
            .await
            .expect("bootstrap")
            .expect("a fresh database gets a key");
        let trail = t.db.key_events(issued.record.key_id).await.expect("events");
        let trail: Vec<_> = trail
            .iter()
            .map(|e| (e.event.as_str(), e.actor.as_str()))
            .collect();
        assert_eq!(trail, [("created", "bootstrap")]);
        let events = t.db.key_events(issued.record.key_id).await.expect("events");
        assert_eq!(
            events[0].detail.as_deref(),
            Some(r#"first start; name "first admin key"; scopes admin; expires never"#)
        );
        // Once only.
        assert!(
            fleetmind::key_admin::bootstrap_admin_key(t.db.as_ref(), chrono::Utc::now())
                .await
                .expect("bootstrap")
                .is_none()
        );
    }
);

// An id no key can have (beyond Postgres's `SERIAL`, an `i32`) names no
// key: nothing is read, written or audited, on either backend.
backend_test!(an_id_no_key_can_have_names_no_key, |t| async move {
    use fleetmind::keys::ApiKey;
    use fleetmind::store::StoreError;

    let key = issue_key(&t.db, "range@example.com", None).await;
    let trail_before = t.db.key_events(key.record.key_id).await.expect("events");
    let big = i64::from(i32::MAX) + 1;
    let backend = t.backend;

    assert!(t.db.key_by_id(big).await.expect("key_by_id").is_none());

    match t.db.key_events(big).await {
        Ok(events) => assert!(events.is_empty(), "{backend:?}: {events:?}"),
        Err(StoreError::NotFound(_)) => {}
        Err(other) => panic!("{backend:?}: key_events: {other}"),
    }

    match t
        .db
        .revoke_keys(&RevokeTarget::KeyId(big), "cli", chrono::Utc::now())
        .await
    {
        Ok(revoked) => assert!(revoked.is_empty(), "{backend:?}: {revoked:?}"),
        Err(StoreError::NotFound(_)) => {}
        Err(other) => panic!("{backend:?}: revoke_keys: {other}"),
    }

    let successor = ApiKey::generate().expect("generate");
    let rotated =
        t.db.rotate_key(
            big,
            chrono::Utc::now(),
            &successor_of(&key.record, &successor, chrono::Utc::now()),
        )
        .await;
    assert!(
        matches!(rotated, Err(StoreError::NotFound(_))),
        "{backend:?}: rotate_key: {:?}",
        rotated.map(|r| r.key_id)
    );

    t.db.record_key_use(&[(big, chrono::Utc::now())])
        .await
        .expect("record_key_use");

    assert_eq!(t.db.count_keys().await.expect("count"), 1);
    let listed = t.db.list_keys(None).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key_id, key.record.key_id);
    assert!(listed[0].is_active && listed[0].revoked_at.is_none());
    let trail_after = t.db.key_events(key.record.key_id).await.expect("events");
    assert_eq!(trail_after.len(), trail_before.len());
});

// `created` and `rotated` events record what was granted (name, scopes,
// expiry), and never the key, its hash or the email.
backend_test!(
    created_and_rotated_events_record_the_grant_and_no_secret,
    |t| async move {
        let created = json(
            &fleetmind(
                &t.url,
                &[
                    "keys",
                    "create",
                    "--email",
                    "grant@example.com",
                    "--name",
                    "night shift",
                    "--scopes",
                    "drivers:write,orders:read",
                    "--expires-in-days",
                    "30",
                    "--json",
                ],
            )
            .await,
        );
        let key_id = created["key_id"].as_i64().expect("key_id");
        let expires = created["expires_at"]
            .as_str()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .expect("expires_at")
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let grant =
            format!(r#"name "night shift"; scopes orders:read,drivers:write; expires {expires}"#);
        let rotated = json(
            &fleetmind(
                &t.url,
                &[
                    "keys",
                    "rotate",
                    "--key-id",
                    &key_id.to_string(),
                    "--grace-minutes",
                    "0",
                    "--json",
                ],
            )
            .await,
        );
        let successor = rotated["key_id"].as_i64().expect("key_id");

        let old = t.db.key_events(key_id).await.expect("events");
        let new = t.db.key_events(successor).await.expect("events");
        assert_eq!(old.len(), 2);
        assert_eq!(
            (old[0].event.as_str(), old[0].detail.as_deref()),
            ("created", Some(grant.as_str()))
        );
        assert_eq!(old[1].event, "rotated");
        let rotated_detail = old[1].detail.as_deref().unwrap_or_default();
        assert!(
            rotated_detail.starts_with(&format!(
                "replaced by key {successor}; old key valid until "
            )) && rotated_detail.ends_with(&format!("; {grant}")),
            "{rotated_detail}"
        );
        assert_eq!(new.len(), 1);
        assert_eq!(
            new[0].detail.as_deref(),
            Some(format!("rotation of key {key_id}; {grant}").as_str())
        );
        let keys = [
            created["api_key"].as_str().expect("api_key"),
            rotated["api_key"].as_str().expect("api_key"),
        ];
        for event in old.iter().chain(&new) {
            let detail = event.detail.as_deref().unwrap_or_default();
            assert!(!detail.contains("grant@example.com"), "{detail}");
            for key in keys {
                assert!(!detail.contains(key), "{detail}");
                assert!(
                    !detail.contains(&crate::support::keys::stored_hash(key)),
                    "{detail}"
                );
            }
            assert_eq!(leaks_secret(detail), None, "{detail}");
        }
    }
);

// A name or email with a bidi override or isolate (which would make
// `keys list` show other text) or a control character is refused by the
// CLI with a clear error, and nothing is written.
backend_test!(
    the_cli_refuses_names_and_emails_that_reorder_text_and_writes_nothing,
    |t| async move {
        let cases: [(&[&str], &str); 5] = [
            (
                &["--email", "a@example.com", "--name", "laptop\u{202E}nimda"],
                "name contains a bidirectional formatting character (U+202E)",
            ),
            (
                &["--email", "a@example.com", "--name", "\u{2066}ops\u{2069}"],
                "name contains a bidirectional formatting character (U+2066)",
            ),
            (
                &["--email", "a@example.com", "--name", "a\u{7}b"],
                "name contains control characters",
            ),
            (
                &["--email", "ev\u{202D}e@example.com"],
                "email contains a bidirectional formatting character (U+202D)",
            ),
            (
                &["--email", "eve@example.com\u{2068}"],
                "email contains a bidirectional formatting character (U+2068)",
            ),
        ];
        for (args, want) in cases {
            let mut full = vec!["keys", "create"];
            full.extend_from_slice(args);
            let output = run_fleetmind(&t.url, &full).await;
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{args:?} was accepted");
            assert!(stderr.contains(want), "{args:?}: {stderr}");
            assert!(
                stderr.to_lowercase().contains("nothing was written"),
                "{stderr}"
            );
        }
        assert_eq!(
            t.db.count_keys().await.expect("count"),
            0,
            "{:?}",
            t.backend
        );
    }
);

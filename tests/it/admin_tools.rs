//! The admin tools end to end: the real server on 127.0.0.1, the real rmcp
//! client, both backends. An admin key issues, lists, rotates and revokes
//! keys; what it issues is limited to what it holds; every change lands in
//! the audit trail with the admin key as actor.

use crate::support::keys::*;
use crate::support::*;
use chrono::{DateTime, Utc};
use fleetmind::app::ServeOptions;
use fleetmind::clock::Clock;
use fleetmind::key_admin::{self, CreateKey, KeyAdminError};
use fleetmind::keys::ApiKey;
use fleetmind::mcp::policy::{Access, TOOL_ACCESS};
use fleetmind::scopes::{Scope, Scopes};
use fleetmind::store::NewKey;
use serde_json::{Value, json};

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {v}"))
}

fn events(list: &[fleetmind::store::KeyEvent]) -> Vec<(String, String)> {
    list.iter()
        .map(|e| (e.event.clone(), e.actor.clone()))
        .collect()
}

fn pair(event: &str, actor: &str) -> (String, String) {
    (event.to_owned(), actor.to_owned())
}

backend_test!(
    an_admin_issues_a_read_only_key_which_is_refused_writes_and_after_revocation_gets_401,
    |t| async move {
        let admin = issue_key(&t.db, "ops@example.com", Some(Scopes::admin())).await;
        let admin_actor = key_actor(admin.record.key_id);
        let server = start_server(t.db.clone()).await;
        let url = server.mcp_url();
        let ops = connect(&url, admin.api_key.expose())
            .await
            .expect("connect admin");

        let created = call_ok(
            &ops,
            "admin_create_api_key",
            json!({"email": " Reader@Example.com", "name": "read only", "scopes": ["orders:read"], "expires_in_days": 30}),
        )
        .await;
        let reader_key = created["api_key"].as_str().expect("api_key").to_owned();
        assert!(
            ApiKey::parse(&reader_key).is_ok(),
            "not a key: {reader_key}"
        );
        assert!(
            created["warning"]
                .as_str()
                .expect("warning")
                .contains("only this once")
        );
        assert_eq!(created["scopes"], json!(["orders:read"]));
        assert_eq!(created["email"], "reader@example.com");
        assert_eq!(created["name"], "read only");
        assert_eq!(created["state"], "active");
        assert_eq!(created["key_prefix"], reader_key[..12]);
        assert_eq!(created["created_by"], admin_actor);
        let days = (time(&created["expires_at"]) - Utc::now()).num_minutes() as f64 / 1440.0;
        assert!((29.9..=30.0).contains(&days), "expires in {days} days");
        let reader_id = created["key_id"].as_i64().expect("key_id");

        // The new key sees only what orders:read (and any key) allows.
        let reader = connect(&url, &reader_key).await.expect("connect reader");
        let listed: Vec<String> = reader
            .list_all_tools()
            .await
            .expect("tools/list")
            .into_iter()
            .map(|tool| tool.name.into_owned())
            .collect();
        for name in &listed {
            let access = fleetmind::mcp::policy::access_for(name).expect("listed tool has a row");
            assert!(
                matches!(access, Access::AnyKey | Access::Needs(Scope::OrdersRead)),
                "{:?}: read-only key lists {name}",
                t.backend
            );
        }
        assert!(listed.iter().any(|n| n == "whoami"));
        let who = call_ok(&reader, "whoami", json!({})).await;
        assert_eq!(who["scopes"], json!(["orders:read"]));
        assert_eq!(who["user_id"], created["user_id"]);
        // Every tool that needs more than orders:read is refused, naming what
        // it needs; that includes every write.
        for (tool, access) in TOOL_ACCESS {
            if let Access::Needs(scope) = access
                && *scope != Scope::OrdersRead
            {
                let text = call_err(&reader, tool, json!({})).await;
                assert!(text.contains(&format!("'{scope}'")), "{tool}: {text}");
            }
        }
        // A write in particular: refused before it runs, so nothing is stored.
        let text = call_err(
            &reader,
            "create_order",
            json!({
                "customer_name": "Ada",
                "delivery_address": "1 Main St",
                "delivery_lat": 52.52,
                "delivery_lng": 13.40,
                "expected_delivery_time": "2026-12-01T15:00:00Z"
            }),
        )
        .await;
        assert!(
            text.contains("permission denied") && text.contains("'orders:write'"),
            "{text}"
        );
        let counted = call_ok(&reader, "count_orders", json!({})).await;
        assert_eq!(counted["total"], 0);
        let keys_before = t.db.count_keys().await.expect("count");
        let text = call_err(
            &reader,
            "admin_create_api_key",
            json!({"email": "mallory@example.com", "scopes": ["admin"]}),
        )
        .await;
        assert!(text.contains("'admin'"), "{text}");
        assert_eq!(t.db.count_keys().await.expect("count"), keys_before);

        // Revoked through the admin tool: refused at once, with 401.
        assert_accepted(&url, &reader_key, "reader before revocation").await;
        let revoked = call_ok(&ops, "admin_revoke_api_key", json!({"key_id": reader_id})).await;
        assert_eq!(revoked["count"], 1);
        assert_eq!(revoked["revoked"][0]["key_id"], reader_id);
        assert_eq!(revoked["revoked"][0]["state"], "revoked");
        assert_refused(&url, &reader_key, "reader after revocation").await;
        assert!(
            reader
                .call_tool(rmcp::model::CallToolRequestParams::new("whoami"))
                .await
                .is_err(),
            "a client connected before the revocation still works"
        );

        let trail = t.db.key_events(reader_id).await.expect("events");
        // The admin tools of the TOOL_ACCESS loop and the admin_create_api_key
        // call above were refused: each is a `denied` event of the reader itself.
        let admin_tools = TOOL_ACCESS
            .iter()
            .filter(|(_, access)| matches!(access, Access::Needs(Scope::Admin)))
            .count();
        let reader_actor = key_actor(reader_id);
        let mut expected = vec![pair("created", &admin_actor)];
        expected.extend(std::iter::repeat_n(
            pair("denied", &reader_actor),
            admin_tools + 1,
        ));
        expected.push(pair("revoked", &admin_actor));
        assert_eq!(events(&trail), expected);
        // The created event records what was granted, to the second.
        let expires =
            time(&created["expires_at"]).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        assert_eq!(
            trail[0].detail.as_deref(),
            Some(format!(r#"name "read only"; scopes orders:read; expires {expires}"#).as_str())
        );
        for denied in &trail[1..6] {
            assert!(
                denied
                    .detail
                    .as_deref()
                    .is_some_and(|d| d.starts_with("tool admin_")
                        && d.ends_with(": needs the 'admin' scope")),
                "{:?}",
                denied.detail
            );
            assert_eq!(
                denied.user_id,
                created["user_id"].as_str().expect("user_id")
            );
        }
        assert!(trail.iter().all(|e| (Utc::now() - e.at).num_seconds() < 60));
        // The admin key itself still works.
        assert_accepted(&url, admin.api_key.expose(), "admin").await;
        let _ = ops.cancel().await;
        server.stop().await;
    }
);

backend_test!(
    revoking_by_email_revokes_every_active_key_of_that_email,
    |t| async move {
        let admin = issue_key(&t.db, "ops@example.com", Some(Scopes::admin())).await;
        let first = issue_key(&t.db, "Team@Example.com", None).await;
        let second = issue_key(&t.db, "team@example.com", None).await;
        let other = issue_key(&t.db, "other@example.com", None).await;
        let server = start_server(t.db.clone()).await;
        let url = server.mcp_url();
        let ops = connect(&url, admin.api_key.expose())
            .await
            .expect("connect");
        let revoked = call_ok(
            &ops,
            "admin_revoke_api_key",
            json!({"email": " TEAM@example.com"}),
        )
        .await;
        assert_eq!(revoked["count"], 2);
        let mut ids: Vec<i64> = revoked["revoked"]
            .as_array()
            .expect("revoked")
            .iter()
            .map(|k| k["key_id"].as_i64().expect("key_id"))
            .collect();
        ids.sort();
        assert_eq!(ids, vec![first.record.key_id, second.record.key_id]);
        for id in ids {
            assert_eq!(
                events(&t.db.key_events(id).await.expect("events")),
                vec![
                    pair("created", "cli"),
                    pair("revoked", &key_actor(admin.record.key_id))
                ]
            );
        }
        assert_refused(&url, first.api_key.expose(), "first").await;
        assert_refused(&url, second.api_key.expose(), "second").await;
        assert_accepted(&url, other.api_key.expose(), "other email").await;
        // Nothing left to revoke is said, not silently ignored.
        let text = call_err(
            &ops,
            "admin_revoke_api_key",
            json!({"email": "team@example.com"}),
        )
        .await;
        assert!(text.starts_with("email: no active key"), "{text}");
        let _ = ops.cancel().await;
        server.stop().await;
    }
);

backend_test!(
    rotation_keeps_the_old_key_during_the_grace_and_refuses_it_after,
    |t| async move {
        let admin = issue_key(&t.db, "ops@example.com", Some(Scopes::admin())).await;
        let admin_actor = key_actor(admin.record.key_id);
        let old = issue_key(&t.db, "dispatch@example.com", None).await;
        let server = start_server(t.db.clone()).await;
        let url = server.mcp_url();
        let ops = connect(&url, admin.api_key.expose())
            .await
            .expect("connect");

        let rotated = call_ok(
            &ops,
            "admin_rotate_api_key",
            json!({"key_id": old.record.key_id, "grace_minutes": 30}),
        )
        .await;
        let second_key = rotated["api_key"].as_str().expect("api_key").to_owned();
        assert!(ApiKey::parse(&second_key).is_ok());
        assert!(
            rotated["warning"]
                .as_str()
                .expect("warning")
                .contains("only this once")
        );
        let second_id = rotated["new_key"]["key_id"].as_i64().expect("key_id");
        assert_ne!(second_id, old.record.key_id);
        assert_eq!(rotated["new_key"]["user_id"], old.record.user_id.as_str());
        assert_eq!(
            rotated["new_key"]["scopes"],
            json!(Scopes::PREDECESSOR_DEFAULT.names())
        );
        assert_eq!(rotated["new_key"]["created_by"], admin_actor);
        assert_eq!(rotated["old_key"]["key_id"], old.record.key_id);
        assert_eq!(rotated["old_key"]["state"], "active");
        let grace = (time(&rotated["old_key_valid_until"]) - Utc::now()).num_seconds();
        assert!((29 * 60..=30 * 60).contains(&grace), "grace of {grace}s");

        // During the grace both keys work, as the same tenant.
        let who_old = assert_accepted(&url, old.api_key.expose(), "old key in its grace").await;
        let who_new = assert_accepted(&url, &second_key, "successor").await;
        assert_eq!(who_old["user_id"], who_new["user_id"]);
        assert_eq!(who_new["key_id"], second_id);

        // No grace: the rotated key is refused at once, its successor works.
        let rotated = call_ok(
            &ops,
            "admin_rotate_api_key",
            json!({"key_id": second_id, "grace_minutes": 0}),
        )
        .await;
        let third_key = rotated["api_key"].as_str().expect("api_key").to_owned();
        let third_id = rotated["new_key"]["key_id"].as_i64().expect("key_id");
        assert_eq!(rotated["old_key"]["state"], "expired");
        assert_refused(&url, &second_key, "rotated without grace").await;
        assert_accepted(&url, &third_key, "third key").await;
        // An expired key has no successor.
        let text = call_err(
            &ops,
            "admin_rotate_api_key",
            json!({"key_id": second_id, "grace_minutes": 5}),
        )
        .await;
        assert!(text.starts_with("key_id: no active key"), "{text}");

        let listed = call_ok(
            &ops,
            "admin_list_api_keys",
            json!({"email": "dispatch@example.com"}),
        )
        .await;
        let states: Vec<(i64, String)> = listed["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| {
                (
                    k["key_id"].as_i64().expect("id"),
                    k["state"].as_str().expect("state").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            states,
            vec![
                (third_id, "active".into()),
                (second_id, "expired".into()),
                (old.record.key_id, "active".into()),
            ]
        );

        assert_eq!(
            events(&t.db.key_events(old.record.key_id).await.expect("events")),
            vec![pair("created", "cli"), pair("rotated", &admin_actor)]
        );
        let second_trail = t.db.key_events(second_id).await.expect("events");
        assert_eq!(
            events(&second_trail),
            vec![pair("created", &admin_actor), pair("rotated", &admin_actor)]
        );
        let successor_of = format!(
            "rotation of key {}; no name; scopes orders:read,orders:write,drivers:read,drivers:write,assignments:manage,routing:use; expires never",
            old.record.key_id
        );
        assert_eq!(
            second_trail[0].detail.as_deref(),
            Some(successor_of.as_str())
        );
        let old_trail = t.db.key_events(old.record.key_id).await.expect("events");
        let replaced_by = format!("replaced by key {second_id};");
        assert!(
            old_trail[1]
                .detail
                .as_deref()
                .is_some_and(|d| d.starts_with(&replaced_by)
                    && d.ends_with("; no name; scopes orders:read,orders:write,drivers:read,drivers:write,assignments:manage,routing:use; expires never")),
            "{:?}",
            old_trail[1].detail
        );
        assert_eq!(
            events(&t.db.key_events(third_id).await.expect("events")),
            vec![pair("created", &admin_actor)]
        );

        // Revoking the email counts the keys that still worked (the first,
        // in its grace, and the third), not the one rotation already retired.
        let revoked = call_ok(
            &ops,
            "admin_revoke_api_key",
            json!({"email": "dispatch@example.com"}),
        )
        .await;
        assert_eq!(revoked["count"], 2, "{revoked}");
        let mut ids: Vec<i64> = revoked["revoked"]
            .as_array()
            .expect("revoked")
            .iter()
            .map(|k| k["key_id"].as_i64().expect("key_id"))
            .collect();
        ids.sort();
        assert_eq!(ids, vec![old.record.key_id, third_id]);
        let _ = ops.cancel().await;
        server.stop().await;
    }
);

backend_test!(
    a_rotated_key_is_refused_once_its_grace_has_run_out,
    |t| async move {
        let old = issue_key(&t.db, "dispatch@example.com", None).await;
        // The server judges grace by a clock the test moves: no waiting,
        // and no "machine too slow" escape.
        let clock = Clock::manual(Utc::now());
        let server = start_server_with(
            t.db.clone(),
            ServeOptions {
                clock: clock.clone(),
                ..ServeOptions::default()
            },
        )
        .await;
        let url = server.mcp_url();
        let successor = ApiKey::generate().expect("key");
        let grace_end = clock.now() + chrono::Duration::minutes(5);
        t.db.rotate_key(
            old.record.key_id,
            grace_end,
            &successor_of(&old.record, &successor, clock.now()),
        )
        .await
        .expect("rotate");
        // Used during the grace (so the cache of verified keys holds it),
        // up to its last microsecond ...
        assert_accepted(&url, old.api_key.expose(), "old key in its grace").await;
        clock.set(grace_end - chrono::Duration::microseconds(1));
        assert_accepted(
            &url,
            old.api_key.expose(),
            "old key at the end of its grace",
        )
        .await;
        // ... and refused from the instant it runs out, with nothing else
        // changed (no row written, so no change notice: the cached entry
        // itself must be judged by the time).
        clock.set(grace_end);
        assert_refused(&url, old.api_key.expose(), "old key after its grace").await;
        assert_accepted(&url, successor.expose(), "successor").await;
        server.stop().await;
    }
);

backend_test!(
    a_cached_key_is_refused_from_the_instant_it_expires,
    |t| async move {
        let clock = Clock::manual(Utc::now());
        let expires_at = clock.now() + chrono::Duration::days(30);
        let key = ApiKey::generate().expect("key");
        t.db.insert_key(&NewKey {
            user_id: fleetmind::keys::user_id_for_email("expiring@example.com"),
            email: "expiring@example.com".into(),
            name: None,
            hash: key.hash(),
            prefix: key.display_prefix(),
            scopes: Scopes::PREDECESSOR_DEFAULT,
            expires_at: Some(expires_at),
            created_by: "cli".into(),
            limits: Default::default(),
            created_at: clock.now(),
        })
        .await
        .expect("insert");
        let server = start_server_with(
            t.db.clone(),
            ServeOptions {
                clock: clock.clone(),
                ..ServeOptions::default()
            },
        )
        .await;
        let url = server.mcp_url();
        assert_accepted(&url, key.expose(), "key before its expiry").await;
        clock.advance(std::time::Duration::from_secs(30 * 86_400 - 1));
        assert_accepted(&url, key.expose(), "key a second before its expiry").await;
        clock.advance(std::time::Duration::from_secs(1));
        assert_refused(&url, key.expose(), "key at its expiry").await;
        server.stop().await;
    }
);

// The admin tools date what they write by the server's clock, the one its
// verifier judges by: on a manual clock a key issued for one day ends at that
// clock plus one day to the microsecond, a rotation's grace at the clock plus
// its minutes, and every audit event and row time is the clock's.
backend_test!(
    admin_tools_date_expiry_grace_and_audit_by_the_servers_clock,
    |t| async move {
        let admin = issue_key(&t.db, "ops@example.com", Some(Scopes::admin())).await;
        let admin_actor = key_actor(admin.record.key_id);
        let start = time(&json!("2031-05-06T07:08:09.123456Z"));
        let clock = Clock::manual(start);
        let server = start_server_with(
            t.db.clone(),
            ServeOptions {
                clock: clock.clone(),
                ..ServeOptions::default()
            },
        )
        .await;
        let url = server.mcp_url();
        let ops = connect(&url, admin.api_key.expose())
            .await
            .expect("connect admin");
        let micro = chrono::Duration::microseconds(1);

        let created = call_ok(
            &ops,
            "admin_create_api_key",
            json!({"email": "day@example.com", "expires_in_days": 1}),
        )
        .await;
        let day_key = created["api_key"].as_str().expect("api_key").to_owned();
        let ends = start + chrono::Duration::days(1);
        assert_eq!(time(&created["created_at"]), start, "{created}");
        assert_eq!(time(&created["expires_at"]), ends, "{created}");
        clock.set(ends - micro);
        assert_accepted(&url, &day_key, "one-day key 1 µs before its end").await;
        clock.set(ends);
        assert_refused(&url, &day_key, "one-day key at its end").await;

        // A rotation a minute after the old key's issue: its grace runs
        // from the rotation, by the same clock.
        let issued_at = ends + chrono::Duration::hours(1);
        clock.set(issued_at);
        let old = call_ok(
            &ops,
            "admin_create_api_key",
            json!({"email": "rotated@example.com"}),
        )
        .await;
        let old_key = old["api_key"].as_str().expect("api_key").to_owned();
        let old_id = old["key_id"].as_i64().expect("key_id");
        let rotated_at = issued_at + chrono::Duration::minutes(1);
        clock.set(rotated_at);
        let rotated = call_ok(
            &ops,
            "admin_rotate_api_key",
            json!({"key_id": old_id, "grace_minutes": 5}),
        )
        .await;
        let grace_end = rotated_at + chrono::Duration::minutes(5);
        assert_eq!(
            time(&rotated["old_key_valid_until"]),
            grace_end,
            "{rotated}"
        );
        assert_eq!(time(&rotated["new_key"]["created_at"]), rotated_at);
        clock.set(grace_end - micro);
        assert_accepted(&url, &old_key, "old key 1 µs before its grace ends").await;
        clock.set(grace_end);
        assert_refused(&url, &old_key, "old key as its grace ends").await;

        let revoked_at = grace_end + chrono::Duration::seconds(7);
        clock.set(revoked_at);
        let new_id = rotated["new_key"]["key_id"].as_i64().expect("key_id");
        let revoked = call_ok(&ops, "admin_revoke_api_key", json!({"key_id": new_id})).await;
        assert_eq!(time(&revoked["revoked"][0]["revoked_at"]), revoked_at);
        let trail = |events: Vec<fleetmind::store::KeyEvent>| {
            events
                .into_iter()
                .map(|e| (e.event, e.actor, e.at))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            trail(t.db.key_events(old_id).await.expect("events")),
            vec![
                ("created".into(), admin_actor.clone(), issued_at),
                ("rotated".into(), admin_actor.clone(), rotated_at),
            ]
        );
        assert_eq!(
            trail(t.db.key_events(new_id).await.expect("events")),
            vec![
                ("created".into(), admin_actor.clone(), rotated_at),
                ("revoked".into(), admin_actor.clone(), revoked_at),
            ]
        );
        let _ = ops.cancel().await;
        server.stop().await;
    }
);

backend_test!(
    keys_without_admin_are_refused_every_admin_tool_and_nothing_changes,
    |t| async move {
        let target = issue_key(&t.db, "target@example.com", None).await;
        let fleet = issue_key(&t.db, "fleet@example.com", None).await;
        let server = start_server(t.db.clone()).await;
        let client = connect(&server.mcp_url(), fleet.api_key.expose())
            .await
            .expect("connect");
        let id = target.record.key_id;
        let calls = [
            (
                "admin_create_api_key",
                json!({"email": "x@example.com", "scopes": ["admin"]}),
            ),
            ("admin_list_api_keys", json!({})),
            ("admin_revoke_api_key", json!({"key_id": id})),
            (
                "admin_rotate_api_key",
                json!({"key_id": id, "grace_minutes": 0}),
            ),
        ];
        for (tool, args) in calls.clone() {
            let text = call_err(&client, tool, args).await;
            assert!(
                text.contains("permission denied") && text.contains("'admin'"),
                "{tool}: {text}"
            );
        }
        assert_eq!(t.db.count_keys().await.expect("count"), 2);
        assert_eq!(
            events(&t.db.key_events(id).await.expect("events")),
            vec![pair("created", "cli")]
        );
        // Each refusal is a `denied` event of the refused key, naming the tool.
        let fleet_actor = key_actor(fleet.record.key_id);
        let trail = t.db.key_events(fleet.record.key_id).await.expect("events");
        let mut expected = vec![pair("created", "cli")];
        expected.extend(std::iter::repeat_n(
            pair("denied", &fleet_actor),
            calls.len(),
        ));
        assert_eq!(events(&trail), expected, "{:?}", t.backend);
        for ((tool, _), event) in calls.iter().zip(&trail[1..]) {
            assert_eq!(
                event.detail.as_deref(),
                Some(format!("tool {tool}: needs the 'admin' scope").as_str())
            );
            assert_eq!(event.user_id, fleet.record.user_id.as_str());
        }
        // A fleet tool refused for lack of its scope is no audit event.
        let reader = issue_key(
            &t.db,
            "reader@example.com",
            Scopes::parse_list("orders:read").ok(),
        )
        .await;
        let as_reader = connect(&server.mcp_url(), reader.api_key.expose())
            .await
            .expect("connect reader");
        let text = call_err(&as_reader, "delete_all_orders", json!({})).await;
        assert!(text.contains("permission denied"), "{text}");
        assert_eq!(
            events(&t.db.key_events(reader.record.key_id).await.expect("events")),
            vec![pair("created", "cli")]
        );
        let _ = as_reader.cancel().await;
        assert_accepted(&server.mcp_url(), target.api_key.expose(), "target").await;
        let _ = client.cancel().await;
        server.stop().await;
    }
);

backend_test!(an_issuer_cannot_grant_more_than_it_holds, |t| async move {
    let holder = Scopes::from_iter([Scope::OrdersRead, Scope::AssignmentsManage]);
    let create = |scopes: Option<Scopes>| CreateKey {
        email: "new@example.com".into(),
        name: None,
        scopes,
        expires_in_days: None,
        created_by: "key:1".into(),
        issuer_scopes: Some(holder),
        limits: Default::default(),
    };
    let db = t.db.as_ref();
    let refused = [
        (
            Some(Scopes::from_iter([Scope::OrdersWrite])),
            "orders:write",
        ),
        (Some(Scopes::admin()), "admin"),
        // The default set holds more than this issuer.
        (None, "drivers:read"),
    ];
    for (scopes, missing) in refused {
        match key_admin::create_key(db, create(scopes), chrono::Utc::now()).await {
            Err(KeyAdminError::Escalation(names)) => {
                assert!(names.contains(missing), "{names}");
                assert!(!names.contains("orders:read"), "{names}");
            }
            other => panic!("{scopes:?}: want an escalation refusal, got {other:?}"),
        }
    }
    assert_eq!(db.count_keys().await.expect("count"), 0);

    // What the issuer holds, or what it implies, may be granted.
    for scopes in [
        Scopes::from_iter([Scope::AssignmentsRead]),
        Scopes::from_iter([Scope::OrdersRead, Scope::AssignmentsManage]),
    ] {
        let issued = key_admin::create_key(db, create(Some(scopes)), chrono::Utc::now())
            .await
            .expect("within the issuer's scopes");
        assert_eq!(issued.record.scopes, scopes);
    }

    // Rotating a key whose scopes exceed the issuer's is refused too.
    let wide = issue_key(&t.db, "wide@example.com", None).await;
    let before = db.count_keys().await.expect("count");
    match key_admin::rotate_key(
        db,
        wide.record.key_id,
        0,
        "key:1".into(),
        Some(holder),
        chrono::Utc::now(),
    )
    .await
    {
        Err(KeyAdminError::Escalation(names)) => {
            // routing:use is in the default set since the routing tools landed.
            assert_eq!(
                names,
                "orders:write, drivers:read, drivers:write, routing:use"
            );
        }
        other => panic!("want an escalation refusal, got {other:?}"),
    }
    assert_eq!(db.count_keys().await.expect("count"), before);
    let still = db
        .key_by_id(wide.record.key_id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(still.expires_at, None);

    // An admin holds everything, so it may issue another admin key.
    let issued = key_admin::create_key(
        db,
        CreateKey {
            issuer_scopes: Some(Scopes::admin()),
            ..create(Some(Scopes::admin()))
        },
        chrono::Utc::now(),
    )
    .await
    .expect("admin grants admin");
    assert_eq!(issued.record.scopes, Scopes::admin());
});

backend_test!(the_admin_list_never_shows_a_key_or_a_hash, |t| async move {
    let admin = issue_key(&t.db, "ops@example.com", Some(Scopes::admin())).await;
    let revoked = issue_key(&t.db, "gone@example.com", None).await;
    key_admin::revoke(
        t.db.as_ref(),
        fleetmind::store::RevokeTarget::KeyId(revoked.record.key_id),
        "cli",
        chrono::Utc::now(),
    )
    .await
    .expect("revoke");
    let server = start_server(t.db.clone()).await;
    let ops = connect(&server.mcp_url(), admin.api_key.expose())
        .await
        .expect("connect");
    let created = call_ok(
        &ops,
        "admin_create_api_key",
        json!({"email": "new@example.com"}),
    )
    .await;
    let rotated = call_ok(
        &ops,
        "admin_rotate_api_key",
        json!({"key_id": created["key_id"], "grace_minutes": 0}),
    )
    .await;

    // The scan finds what it looks for (a key, a hash) ...
    let new_key = created["api_key"].as_str().expect("key").to_owned();
    assert!(leaks_secret(&created.to_string()).is_some());
    let hash = ApiKey::parse(&new_key)
        .expect("key")
        .hash()
        .as_hex()
        .to_owned();
    assert!(leaks_secret(&format!("\"h\":\"{hash}\"")).is_some());

    // ... and finds neither in any listing.
    let secrets = [
        admin.api_key.expose().to_owned(),
        revoked.api_key.expose().to_owned(),
        new_key,
        rotated["api_key"].as_str().expect("key").to_owned(),
    ];
    for args in [
        json!({}),
        json!({"email": "new@example.com"}),
        json!({"email": "gone@example.com"}),
    ] {
        let result = call_result(&ops, "admin_list_api_keys", args.clone()).await;
        let structured = result.structured_content.clone().expect("structured");
        for output in [structured.to_string(), text_of(&result)] {
            assert_eq!(leaks_secret(&output), None, "{args}: {output}");
            for secret in &secrets {
                let hash = ApiKey::parse(secret)
                    .expect("key")
                    .hash()
                    .as_hex()
                    .to_owned();
                assert!(!output.contains(secret.as_str()) && !output.contains(&hash));
            }
        }
    }
    let all = call_ok(&ops, "admin_list_api_keys", json!({})).await;
    let mut states: Vec<&str> = all["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["state"].as_str().expect("state"))
        .collect();
    states.sort();
    assert_eq!(states, ["active", "active", "expired", "revoked"]);
    assert_eq!(all["count"], 4);
    let fields: Vec<&str> = all["keys"][0]
        .as_object()
        .expect("key")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "key_id",
            "user_id",
            "email",
            "name",
            "key_prefix",
            "scopes",
            "state",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "created_by",
            "limits"
        ]
    );
    let _ = ops.cancel().await;
    server.stop().await;
});

backend_test!(
    bad_admin_input_is_a_tool_error_naming_the_field_and_writes_nothing,
    |t| async move {
        let admin = issue_key(&t.db, "ops@example.com", Some(Scopes::admin())).await;
        let target = issue_key(&t.db, "target@example.com", None).await;
        let id = target.record.key_id;
        let server = start_server(t.db.clone()).await;
        let ops = connect(&server.mcp_url(), admin.api_key.expose())
            .await
            .expect("connect");
        let email = "new@example.com";
        let long_name = "n".repeat(256);
        let cases = [
            ("admin_create_api_key", json!({}), "email is required"),
            (
                "admin_create_api_key",
                json!({"email": 42}),
                "email must be a string",
            ),
            (
                "admin_create_api_key",
                json!({"email": "not-an-email"}),
                "email must look like",
            ),
            (
                "admin_create_api_key",
                json!({"email": " "}),
                "email is empty",
            ),
            (
                "admin_create_api_key",
                json!({"email": "a b@example.com"}),
                "email contains",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "scopes": ["root"]}),
                "scopes: unknown scope 'root'",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "scopes": "orders:read,DROP TABLE"}),
                "scopes: unknown scope",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "scopes": []}),
                "scopes is empty",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "scopes": [7]}),
                "scopes must be",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "expires_in_days": 0}),
                "expires_in_days must be",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "expires_in_days": 3651}),
                "expires_in_days must be",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "expires_in_days": -5}),
                "expires_in_days must be",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "expires_in_days": 1.5}),
                "expires_in_days must be",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "expires_in_days": "ten"}),
                "expires_in_days must be",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "name": long_name}),
                "name is longer than 255",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "name": "a\u{0}b"}),
                "name contains control",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "name": 5}),
                "name must be a string",
            ),
            // Bidi overrides and isolates would let a name spoof a listing.
            (
                "admin_create_api_key",
                json!({"email": email, "name": "laptop\u{202E}nimda"}),
                "name contains a bidirectional formatting character (U+202E)",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "name": "\u{202A}x"}),
                "name contains a bidirectional formatting character (U+202A)",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "name": "x\u{2066}y\u{2069}"}),
                "name contains a bidirectional formatting character (U+2066)",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "name": "a\u{1b}[31mred"}),
                "name contains control",
            ),
            (
                "admin_create_api_key",
                json!({"email": "ev\u{202E}moc.elpmaxe@il"}),
                "email contains a bidirectional formatting character (U+202E)",
            ),
            (
                "admin_create_api_key",
                json!({"email": "eve@exa\u{2067}mple.com"}),
                "email contains a bidirectional formatting character (U+2067)",
            ),
            (
                "admin_create_api_key",
                json!({"email": email, "expires_days": 3}),
                "unknown argument 'expires_days'",
            ),
            (
                "admin_list_api_keys",
                json!({"email": "nobody"}),
                "email must look like",
            ),
            (
                "admin_list_api_keys",
                json!({"email": ["x"]}),
                "email must be a string",
            ),
            (
                "admin_revoke_api_key",
                json!({}),
                "give exactly one of key_id or email",
            ),
            (
                "admin_revoke_api_key",
                json!({"key_id": id, "email": "target@example.com"}),
                "give exactly one of key_id or email",
            ),
            (
                "admin_revoke_api_key",
                json!({"key_id": "1; DELETE FROM api_keys"}),
                "key_id must be",
            ),
            (
                "admin_revoke_api_key",
                json!({"key_id": 0}),
                "key_id must be",
            ),
            (
                "admin_revoke_api_key",
                json!({"email": "bad"}),
                "email must look like",
            ),
            (
                "admin_revoke_api_key",
                json!({"key_id": 987654}),
                "key_id: no active key",
            ),
            (
                "admin_revoke_api_key",
                json!({"key_id": 9_000_000_000_i64}),
                "key_id: no active key",
            ),
            (
                "admin_revoke_api_key",
                json!({"email": "nobody@example.com"}),
                "email: no active key",
            ),
            (
                "admin_rotate_api_key",
                json!({"grace_minutes": 5}),
                "key_id is required",
            ),
            (
                "admin_rotate_api_key",
                json!({"key_id": id}),
                "grace_minutes is required",
            ),
            (
                "admin_rotate_api_key",
                json!({"key_id": id, "grace_minutes": -1}),
                "grace_minutes must be",
            ),
            (
                "admin_rotate_api_key",
                json!({"key_id": id, "grace_minutes": 10081}),
                "grace_minutes must be",
            ),
            (
                "admin_rotate_api_key",
                json!({"key_id": id, "grace_minutes": "soon"}),
                "grace_minutes must be",
            ),
            (
                "admin_rotate_api_key",
                json!({"key_id": 987654, "grace_minutes": 5}),
                "key_id: no active key",
            ),
            (
                "admin_rotate_api_key",
                json!({"key_id": id, "grace_minutes": 5, "scopes": ["admin"]}),
                "unknown argument 'scopes'",
            ),
        ];
        for (tool, args, want) in cases {
            let text = call_err(&ops, tool, args.clone()).await;
            assert!(
                text.starts_with(want),
                "{:?}: {tool} {args}: want '{want}…', got '{text}'",
                t.backend
            );
            assert!(
                !text.to_lowercase().contains("sql"),
                "{tool} {args}: {text}"
            );
        }
        assert_eq!(t.db.count_keys().await.expect("count"), 2);
        for key in [&admin, &target] {
            let row =
                t.db.key_by_id(key.record.key_id)
                    .await
                    .expect("read")
                    .expect("row");
            assert!(row.is_active && row.revoked_at.is_none() && row.expires_at.is_none());
            assert_eq!(
                events(&t.db.key_events(key.record.key_id).await.expect("events")),
                vec![pair("created", "cli")]
            );
        }
        let _ = ops.cancel().await;
        server.stop().await;
    }
);

#[tokio::test]
async fn admin_tools_describe_their_input_and_output() {
    // The schemas come from types, not from the database: one backend is enough.
    let t = sqlite_db().await;
    let admin = issue_key(&t.db, "ops@example.com", Some(Scopes::admin())).await;
    let server = start_server(t.db.clone()).await;
    let ops = connect(&server.mcp_url(), admin.api_key.expose())
        .await
        .expect("connect");
    let tools = ops.list_all_tools().await.expect("tools/list");
    let expect = [
        (
            "admin_create_api_key",
            vec!["email"],
            vec![
                "email",
                "name",
                "scopes",
                "expires_in_days",
                "rate_limit_per_minute",
                "monthly_quota",
                "allowed_ips",
            ],
        ),
        ("admin_list_api_keys", vec![], vec!["email"]),
        ("admin_revoke_api_key", vec![], vec!["key_id", "email"]),
        (
            "admin_rotate_api_key",
            vec!["key_id", "grace_minutes"],
            vec!["key_id", "grace_minutes"],
        ),
        (
            "admin_set_key_limits",
            vec!["key_id"],
            vec![
                "key_id",
                "rate_limit_per_minute",
                "monthly_quota",
                "allowed_ips",
            ],
        ),
    ];
    for (name, required, properties) in expect {
        let tool = tools
            .iter()
            .find(|tool| tool.name == name)
            .unwrap_or_else(|| panic!("{name} not listed to an admin"));
        assert!(
            tool.description
                .as_deref()
                .is_some_and(|d| d.starts_with("Admin: "))
        );
        let input = Value::Object((*tool.input_schema).clone());
        assert_eq!(input["type"], "object", "{name}");
        assert_eq!(input["additionalProperties"], false, "{name}");
        let mut listed: Vec<&str> = input["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect();
        listed.sort();
        let mut want = properties.clone();
        want.sort();
        assert_eq!(listed, want, "{name}");
        let mut req: Vec<&str> = input["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        req.sort();
        let mut want_req = required.clone();
        want_req.sort();
        assert_eq!(req, want_req, "{name}");
        let output = tool
            .output_schema
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no output schema"));
        assert_eq!(output.get("type"), Some(&json!("object")), "{name}");
    }
    let _ = ops.cancel().await;
    server.stop().await;
}

backend_test!(
    the_admin_list_shows_when_each_key_was_last_used,
    |t| async move {
        let admin = issue_key(&t.db, "ops@example.com", Some(Scopes::admin())).await;
        let used = issue_key(&t.db, "used@example.com", None).await;
        issue_key(&t.db, "idle@example.com", None).await;
        let server = start_server(t.db.clone()).await;
        let before = Utc::now();
        assert_accepted(&server.mcp_url(), used.api_key.expose(), "used key").await;
        // Uses are written in batches; stopping the server writes the last one.
        server.stop().await;

        let server = start_server(t.db.clone()).await;
        let ops = connect(&server.mcp_url(), admin.api_key.expose())
            .await
            .expect("connect");
        let used_row = call_ok(
            &ops,
            "admin_list_api_keys",
            json!({"email": "used@example.com"}),
        )
        .await;
        let last = time(&used_row["keys"][0]["last_used_at"]);
        assert!(
            last >= before - chrono::Duration::seconds(1) && last <= Utc::now(),
            "{last}"
        );
        let idle_row = call_ok(
            &ops,
            "admin_list_api_keys",
            json!({"email": "idle@example.com"}),
        )
        .await;
        assert_eq!(idle_row["keys"][0]["last_used_at"], Value::Null);
        let _ = ops.cancel().await;
        server.stop().await;
    }
);

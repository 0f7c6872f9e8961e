//! Two tenants on one server, both backends. Tenant B aims every fleet tool
//! at tenant A's ids and gets "not found"; B's counts, lists, searches and
//! resources never include A's rows; B's bulk deletes leave A alone; and
//! A's rows are byte-for-byte what they were.

use crate::support::fleet::*;
use crate::support::*;
use fleetmind::mcp::policy::{Access, TOOL_ACCESS};
use fleetmind::scopes::Scope;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn ids(list: &Value, key: &str, id: &str) -> BTreeSet<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .map(|row| row[id].as_str().unwrap().to_owned())
        .collect()
}

backend_test!(
    one_tenant_can_neither_see_nor_touch_another,
    |t| async move {
        let server = start_server(t.db.clone()).await;
        let a = tenant(&t, &server.mcp_url(), "alice@example.com").await;
        let b = tenant(&t, &server.mcp_url(), "bob@example.com").await;
        assert_ne!(a.user_id, b.user_id);

        // A: an assigned order with its busy driver, a pending order, an
        // idle driver right next to everything.
        let a_busy = create_driver(&a, "Alice Busy", 48.85, 2.35).await;
        let a_idle = create_driver(&a, "Alice Idle", 48.851, 2.351).await;
        let a_assigned = create_order(&a, "Alice Customer", 48.86, 2.34).await;
        let a_pending = create_order(&a, "Alice Pending", 48.852, 2.352).await;
        let out = ok(
            &a.client,
            "create_assignment",
            json!({"order_id": a_assigned, "driver_id": a_busy}),
        )
        .await;
        let a_asn = out["assignment"]["assignment_id"]
            .as_str()
            .unwrap()
            .to_owned();
        // B: its own order and driver, far away.
        let b_order = create_order(&b, "Bob Customer", 40.0, -3.7).await;
        let b_driver = create_driver(&b, "Bob Driver", 40.0, -3.7).await;
        ok(
            &a.client,
            "save_place",
            json!({"name": "Alice Depot", "lat": 48.85, "lng": 2.35}),
        )
        .await;
        let a_before = dump(&t, &a.user_id).await;
        assert_eq!(a_before.len(), 6, "{a_before:#?}");

        let c = &b.client;
        let fail_args = |asn: &str| {
            json!({
                "assignment_id": asn, "current_address": "x", "current_lat": 1.0, "current_lng": 1.0,
                "failure_reason": "other", "confirm": true
            })
        };
        // Every tool aimed at A's ids: (tool, args, what is not found).
        let aimed: Vec<(&str, Value, String)> = vec![
            (
                "get_order_details",
                json!({"order_id": a_assigned}),
                format!("order '{a_assigned}' not found"),
            ),
            (
                "update_order",
                json!({"order_id": a_pending, "customer_name": "Mallory"}),
                format!("order '{a_pending}' not found"),
            ),
            (
                "update_order",
                json!({"order_id": a_pending, "status": "cancelled"}),
                format!("order '{a_pending}' not found"),
            ),
            (
                "delete_order",
                json!({"order_id": a_pending, "confirm": true}),
                format!("order '{a_pending}' not found"),
            ),
            (
                "get_driver_details",
                json!({"driver_id": a_idle}),
                format!("driver '{a_idle}' not found"),
            ),
            (
                "update_driver",
                json!({"driver_id": a_idle, "status": "offline"}),
                format!("driver '{a_idle}' not found"),
            ),
            (
                "delete_driver",
                json!({"driver_id": a_idle, "confirm": true}),
                format!("driver '{a_idle}' not found"),
            ),
            (
                "create_assignment",
                json!({"order_id": a_pending, "driver_id": b_driver}),
                format!("order '{a_pending}' not found"),
            ),
            (
                "create_assignment",
                json!({"order_id": b_order, "driver_id": a_idle}),
                format!("driver '{a_idle}' not found"),
            ),
            (
                "auto_assign_order",
                json!({"order_id": a_pending}),
                format!("order '{a_pending}' not found"),
            ),
            (
                "intelligent_assign_order",
                json!({"order_id": a_pending}),
                format!("order '{a_pending}' not found"),
            ),
            (
                "get_assignment_details",
                json!({"assignment_id": a_asn}),
                format!("assignment '{a_asn}' not found"),
            ),
            (
                "get_assignment_details",
                json!({"order_id": a_assigned}),
                format!("order '{a_assigned}' not found"),
            ),
            (
                "get_assignment_details",
                json!({"driver_id": a_busy}),
                format!("driver '{a_busy}' not found"),
            ),
            (
                "update_assignment",
                json!({"assignment_id": a_asn, "status": "in_progress"}),
                format!("assignment '{a_asn}' not found"),
            ),
            (
                "update_assignment",
                json!({"assignment_id": a_asn, "notes": "mine now"}),
                format!("assignment '{a_asn}' not found"),
            ),
            (
                "unassign_order",
                json!({"assignment_id": a_asn, "confirm": true}),
                format!("assignment '{a_asn}' not found"),
            ),
            (
                "complete_delivery",
                json!({"assignment_id": a_asn, "confirm": true}),
                format!("assignment '{a_asn}' not found"),
            ),
            (
                "fail_delivery",
                fail_args(&a_asn),
                format!("assignment '{a_asn}' not found"),
            ),
            (
                "delete_place",
                json!({"name": "Alice Depot"}),
                "place 'Alice Depot' not found".into(),
            ),
        ];
        let mut covered: BTreeSet<&str> = BTreeSet::new();
        for (tool, args, expected) in &aimed {
            let message = err(c, tool, args.clone()).await;
            assert_eq!(&message, expected, "{tool} {args}");
            covered.insert(tool);
        }

        // Reads never show A's rows.
        let counts = ok(c, "count_orders", json!({})).await;
        assert_eq!(
            (counts["total"].clone(), counts["by_status"].clone()),
            (json!(1), json!({"pending": 1}))
        );
        assert_eq!(
            ok(c, "count_orders", json!({"assigned_driver_id": a_busy})).await["total"],
            0
        );
        assert_eq!(ok(c, "count_drivers", json!({})).await["total"], 1);
        let one_order = BTreeSet::from([b_order.clone()]);
        let one_driver = BTreeSet::from([b_driver.clone()]);
        assert_eq!(
            ids(
                &ok(c, "fetch_orders", json!({"limit": 100})).await,
                "orders",
                "order_id"
            ),
            one_order
        );
        assert_eq!(
            ids(
                &ok(c, "fetch_orders", json!({"status": "assigned"})).await,
                "orders",
                "order_id"
            ),
            BTreeSet::new()
        );
        assert_eq!(
            ids(
                &ok(c, "get_incomplete_orders", json!({})).await,
                "orders",
                "order_id"
            ),
            one_order
        );
        assert_eq!(
            ids(
                &ok(c, "fetch_drivers", json!({"limit": 100})).await,
                "drivers",
                "driver_id"
            ),
            one_driver
        );
        assert_eq!(
            ids(
                &ok(c, "get_available_drivers", json!({})).await,
                "drivers",
                "driver_id"
            ),
            one_driver
        );
        for term in [
            "Alice",
            a_assigned.as_str(),
            "alice.customer@example.com",
            "customer",
        ] {
            let found = ids(
                &ok(c, "search_orders", json!({"search_term": term})).await,
                "orders",
                "order_id",
            );
            assert!(
                !found.contains(&a_assigned) && !found.contains(&a_pending),
                "{term}: {found:?}"
            );
        }
        for term in ["Alice", a_idle.as_str(), "driver", "busy"] {
            let found = ids(
                &ok(c, "search_drivers", json!({"search_term": term})).await,
                "drivers",
                "driver_id",
            );
            assert!(
                !found.contains(&a_idle) && !found.contains(&a_busy),
                "{term}: {found:?}"
            );
        }
        for (uri, key, id, mine) in [
            ("orders://all", "orders", "order_id", &one_order),
            ("drivers://all", "drivers", "driver_id", &one_driver),
        ] {
            let result = b
                .client
                .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
                .await
                .expect("read");
            let Some(rmcp::model::ResourceContents::TextResourceContents { text, .. }) =
                result.contents.first()
            else {
                panic!("{uri}: no text");
            };
            let body: Value = serde_json::from_str(text).unwrap();
            assert_eq!(&ids(&body, key, id), mine, "{uri}");
        }
        // A's place names mean nothing to B (no geocoder here: refused).
        for (tool, args) in [
            ("geocode_address", json!({"address": "alice depot"})),
            (
                "calculate_route",
                json!({"origin": "Alice Depot", "destination": "1,1"}),
            ),
            (
                "calculate_intelligent_route",
                json!({"origin": "1,1", "destination": "ALICE DEPOT"}),
            ),
        ] {
            let message = err(c, tool, args.clone()).await;
            assert!(
                message.contains("no geocoder is configured"),
                "{tool}: {message}"
            );
            covered.insert(tool);
        }
        assert_eq!(ok(c, "list_places", json!({})).await["count"], 0);
        covered.insert("list_places");
        covered.extend([
            "count_orders",
            "count_drivers",
            "fetch_orders",
            "fetch_drivers",
            "get_incomplete_orders",
            "get_available_drivers",
            "search_orders",
            "search_drivers",
        ]);

        // B's own writes and assignments stay in B's data: the nearest
        // driver to B's new order is A's, yet B's own is chosen.
        let near_a = create_order(&b, "Bob Near Alice", 48.8515, 2.3515).await;
        let auto = ok(c, "auto_assign_order", json!({"order_id": near_a})).await;
        assert_eq!(auto["driver"]["driver_id"], json!(b_driver));
        assert_eq!(auto["candidates"], 1);
        ok(
            c,
            "unassign_order",
            json!({"assignment_id": auto["assignment"]["assignment_id"]}),
        )
        .await;
        let smart = ok(c, "intelligent_assign_order", json!({"order_id": near_a})).await;
        assert_eq!(smart["driver"]["driver_id"], json!(b_driver));
        assert_eq!(ids(&smart, "ranking", "driver_id"), one_driver);
        let b_asn = smart["assignment"]["assignment_id"]
            .as_str()
            .unwrap()
            .to_owned();
        ok(
            c,
            "update_assignment",
            json!({"assignment_id": b_asn, "status": "in_progress"}),
        )
        .await;
        ok(
            c,
            "complete_delivery",
            json!({"assignment_id": b_asn, "confirm": true}),
        )
        .await;
        let asn2 = ok(
            c,
            "create_assignment",
            json!({"order_id": b_order, "driver_id": b_driver}),
        )
        .await;
        ok(
            c,
            "fail_delivery",
            fail_args(asn2["assignment"]["assignment_id"].as_str().unwrap()),
        )
        .await;
        ok(
            c,
            "update_order",
            json!({"order_id": b_order, "status": "cancelled"}),
        )
        .await;
        ok(
            c,
            "update_driver",
            json!({"driver_id": b_driver, "status": "offline"}),
        )
        .await;
        ok(c, "get_assignment_details", json!({"driver_id": b_driver})).await;
        covered.extend([
            "create_order",
            "create_driver",
            "create_assignment",
            "auto_assign_order",
            "intelligent_assign_order",
            "unassign_order",
            "update_assignment",
            "complete_delivery",
            "fail_delivery",
            "update_order",
            "update_driver",
            "get_assignment_details",
        ]);

        // B's bulk deletes take B's rows only.
        let deleted = ok(c, "delete_all_orders", json!({"confirm": true})).await;
        assert_eq!(deleted["deleted"], 2);
        let deleted = ok(c, "delete_all_drivers", json!({"confirm": true})).await;
        assert_eq!(deleted["deleted"], 1);
        let extra = create_order(&b, "Bob Again", 1.0, 1.0).await;
        ok(
            c,
            "delete_order",
            json!({"order_id": extra, "confirm": true}),
        )
        .await;
        let extra = create_driver(&b, "Bob Again", 1.0, 1.0).await;
        ok(
            c,
            "delete_driver",
            json!({"driver_id": extra, "confirm": true}),
        )
        .await;
        ok(
            c,
            "save_place",
            json!({"name": "Alice Depot", "lat": 1.0, "lng": 1.0}),
        )
        .await;
        assert_eq!(
            ok(c, "geocode_address", json!({"address": "Alice Depot"})).await["lat"],
            1.0
        );
        ok(c, "delete_place", json!({"name": "Alice Depot"})).await;
        covered.extend([
            "delete_all_orders",
            "delete_all_drivers",
            "delete_order",
            "delete_driver",
            "save_place",
        ]);
        assert_eq!(
            dump(&t, &b.user_id).await,
            Vec::<String>::new(),
            "B emptied its own data"
        );

        assert_eq!(
            dump(&t, &a.user_id).await,
            a_before,
            "tenant A's rows changed"
        );
        // A still works normally on its data.
        assert_eq!(ok(&a.client, "count_orders", json!({})).await["total"], 2);
        ok(
            &a.client,
            "complete_delivery",
            json!({"assignment_id": a_asn, "confirm": true}),
        )
        .await;

        // Every fleet tool (every tool a fleet scope guards) was exercised here.
        let fleet_tools: BTreeSet<&str> = TOOL_ACCESS
            .iter()
            .filter(|(_, access)| matches!(access, Access::Needs(scope) if *scope != Scope::Admin))
            .map(|(name, _)| *name)
            .collect();
        let missing: Vec<_> = fleet_tools.difference(&covered).collect();
        assert!(
            missing.is_empty(),
            "tools not covered by the isolation suite: {missing:?}"
        );
        let _ = a.client.cancel().await;
        let _ = b.client.cancel().await;
        server.stop().await;
    }
);

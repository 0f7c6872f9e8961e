//! The fleet tools end to end (real server, real rmcp client, both
//! backends): a delivery from order to done, the cascades and state
//! machines as a client sees them, the resources, and bad input.

use crate::support::fleet::*;
use crate::support::*;
use serde_json::{Value, json};

backend_test!(a_delivery_from_order_to_done, |t| async move {
    let server = start_server(t.db.clone()).await;
    let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
    let c = &a.client;
    let near = create_driver(&a, "Near", 48.85, 2.35).await;
    let far = create_driver(&a, "Far", 45.76, 4.83).await;
    let order = create_order(&a, "Olive", 48.86, 2.34).await;
    assert!(order.starts_with("ORD-") && near.starts_with("DRV-"));

    let out = ok(c, "auto_assign_order", json!({"order_id": order})).await;
    assert_eq!(out["driver"]["driver_id"], json!(near));
    assert_eq!(out["driver"]["status"], "busy");
    assert_eq!(out["order"]["status"], "assigned");
    assert_eq!(out["candidates"], 2);
    assert!(out["distance_km"].as_f64().unwrap() < 2.0, "{out}");
    assert!(out["reason"].as_str().unwrap().contains("nearest"));
    let asn = out["assignment"]["assignment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(asn.starts_with("ASN-"));

    let out = ok(
        c,
        "update_assignment",
        json!({"assignment_id": asn, "status": "in_progress"}),
    )
    .await;
    assert_eq!(out["order"]["status"], "in_transit");
    let refused = err(c, "unassign_order", json!({"assignment_id": asn})).await;
    assert!(refused.contains("in_progress"), "{refused}");

    let out = ok(c, "complete_delivery", json!({"assignment_id": asn, "confirm": true, "actual_distance_meters": 1500, "notes": "left with the concierge"})).await;
    assert_eq!(out["assignment"]["status"], "completed");
    assert_eq!(out["assignment"]["actual_distance_meters"], 1500.0);
    assert_eq!(out["order"]["status"], "delivered");
    assert_eq!(out["order"]["delivery_status"], "on_time");
    assert_eq!(out["driver"]["status"], "active");
    assert_eq!(out["driver"]["current_lat"], 48.86);
    assert_eq!(out["driver"]["current_address"], "Olive's door");

    let again = err(
        c,
        "complete_delivery",
        json!({"assignment_id": asn, "confirm": true}),
    )
    .await;
    assert!(
        again.contains("completed and cannot become completed"),
        "{again}"
    );
    let details = ok(c, "get_assignment_details", json!({"order_id": order})).await;
    assert_eq!(details["count"], 1);
    let counts = ok(c, "count_orders", json!({})).await;
    assert_eq!(counts["total"], 1);
    assert_eq!(counts["by_status"], json!({"delivered": 1}));
    let _ = far;
    let _ = a.client.cancel().await;
    server.stop().await;
});

backend_test!(
    failing_unassigning_and_manual_status_changes_follow_the_state_machines,
    |t| async move {
        let server = start_server(t.db.clone()).await;
        let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
        let c = &a.client;
        let driver = create_driver(&a, "Dan", 1.0, 1.0).await;
        let order = create_order(&a, "Olive", 1.01, 1.01).await;

        let out = ok(
            c,
            "create_assignment",
            json!({"order_id": order, "driver_id": driver}),
        )
        .await;
        let asn = out["assignment"]["assignment_id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Busy and assigned: no second assignment, no manual moves, no deletes.
        let other = create_order(&a, "Otto", 1.0, 1.0).await;
        assert!(
            err(
                c,
                "create_assignment",
                json!({"order_id": other, "driver_id": driver})
            )
            .await
            .contains("busy")
        );
        assert!(
            err(
                c,
                "update_driver",
                json!({"driver_id": driver, "status": "offline"})
            )
            .await
            .contains("busy")
        );
        assert!(
            err(
                c,
                "update_driver",
                json!({"driver_id": driver, "status": "busy"})
            )
            .await
            .starts_with("status:")
        );
        assert!(
            err(
                c,
                "update_order",
                json!({"order_id": order, "status": "cancelled"})
            )
            .await
            .contains("unassign")
        );
        assert!(
            err(
                c,
                "update_order",
                json!({"order_id": order, "status": "delivered"})
            )
            .await
            .starts_with("status:")
        );
        assert!(
            err(
                c,
                "delete_order",
                json!({"order_id": order, "confirm": true})
            )
            .await
            .contains("open assignment")
        );
        assert!(
            err(
                c,
                "delete_driver",
                json!({"driver_id": driver, "confirm": true})
            )
            .await
            .contains("open assignment")
        );
        assert!(
            err(c, "delete_all_orders", json!({"confirm": true}))
                .await
                .contains("open assignments")
        );
        assert!(
            err(c, "delete_all_drivers", json!({"confirm": true}))
                .await
                .contains("open assignments")
        );

        let out = ok(
            c,
            "unassign_order",
            json!({"assignment_id": asn, "confirm": true}),
        )
        .await;
        assert_eq!(out["assignment"]["status"], "cancelled");
        assert_eq!(out["order"]["status"], "pending");
        assert_eq!(out["order"]["assigned_driver_id"], Value::Null);
        assert_eq!(out["driver"]["status"], "active");

        let out = ok(c, "intelligent_assign_order", json!({"order_id": order})).await;
        assert_eq!(out["driver"]["driver_id"], json!(driver));
        assert!(out["explanation"].as_str().unwrap().contains(&driver));
        assert_eq!(out["ranking"].as_array().unwrap().len(), 1);
        let asn = out["assignment"]["assignment_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let out = ok(
            c,
            "fail_delivery",
            json!({
                "assignment_id": asn, "current_address": "Lay-by", "current_lat": 2.0,
                "current_lng": 3.0, "failure_reason": "customer_not_available", "confirm": true
            }),
        )
        .await;
        assert_eq!(
            out["assignment"]["failure_reason"],
            "customer_not_available"
        );
        assert_eq!(out["order"]["status"], "failed");
        assert_eq!(out["order"]["delivery_status"], "failed_on_time");
        assert_eq!(
            (
                out["driver"]["status"].clone(),
                out["driver"]["current_lat"].clone()
            ),
            (json!("active"), json!(2.0))
        );

        // A failed order can be reopened, then cancelled; a cancelled one cannot be assigned.
        let out = ok(
            c,
            "update_order",
            json!({"order_id": order, "status": "pending"}),
        )
        .await;
        assert_eq!(out["order"]["assigned_driver_id"], Value::Null);
        ok(
            c,
            "update_order",
            json!({"order_id": order, "status": "cancelled"}),
        )
        .await;
        assert!(
            err(c, "auto_assign_order", json!({"order_id": order}))
                .await
                .contains("cancelled")
        );
        // The driver can go offline now, and then is not available.
        ok(
            c,
            "update_driver",
            json!({"driver_id": driver, "status": "offline"}),
        )
        .await;
        assert_eq!(ok(c, "get_available_drivers", json!({})).await["count"], 0);
        assert!(
            err(c, "auto_assign_order", json!({"order_id": other}))
                .await
                .contains("none is active")
        );
        let _ = a.client.cancel().await;
        server.stop().await;
    }
);

backend_test!(resources_show_the_callers_rows_as_json, |t| async move {
    let server = start_server(t.db.clone()).await;
    let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
    let order = create_order(&a, "Olive", 1.0, 1.0).await;
    let driver = create_driver(&a, "Dan", 1.0, 1.0).await;
    let listed = a.client.list_all_resources().await.expect("list resources");
    let uris: Vec<_> = listed.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["orders://all", "drivers://all"]);
    for (uri, key, id) in [
        ("orders://all", "orders", &order),
        ("drivers://all", "drivers", &driver),
    ] {
        let body = read_resource(&a.client, uri).await;
        assert_eq!(body["count"], 1);
        assert_eq!(
            body[key][0][if key == "orders" {
                "order_id"
            } else {
                "driver_id"
            }],
            json!(id)
        );
    }
    // A key without drivers:read sees and reads only orders.
    let issued = issue_key(
        &t.db,
        "reader@example.com",
        Some(fleetmind::scopes::Scopes::parse_list("orders:read").unwrap()),
    )
    .await;
    let reader = connect(&server.mcp_url(), issued.api_key.expose())
        .await
        .unwrap();
    let listed = reader.list_all_resources().await.expect("list resources");
    assert_eq!(
        listed.iter().map(|r| r.uri.as_str()).collect::<Vec<_>>(),
        ["orders://all"]
    );
    let refused = reader
        .read_resource(rmcp::model::ReadResourceRequestParams::new("drivers://all"))
        .await
        .expect_err("drivers://all needs drivers:read");
    assert!(refused.to_string().contains("drivers:read"), "{refused}");
    let _ = reader.cancel().await;
    let _ = a.client.cancel().await;
    server.stop().await;
});

// Bad input of every kind: a tool error naming the field, nothing written.
backend_test!(
    bad_input_is_a_tool_error_naming_the_field_and_writes_nothing,
    |t| async move {
        let server = start_server(t.db.clone()).await;
        let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
        let c = &a.client;
        let order = create_order(&a, "Olive", 1.0, 1.0).await;
        let driver = create_driver(&a, "Dan", 1.0, 1.0).await;
        let asn = ok(
            c,
            "create_assignment",
            json!({"order_id": order, "driver_id": driver}),
        )
        .await["assignment"]["assignment_id"]
            .clone();
        let with = |base: Value, field: &str, value: Value| {
            let mut args = base;
            args[field] = value;
            args
        };
        let without = |base: Value, field: &str| {
            let mut args = base;
            args.as_object_mut().unwrap().remove(field);
            args
        };
        let o = order_args("Zed", 1.0, 1.0);
        let d = driver_args("Zed", 1.0, 1.0);
        let long = "x".repeat(201);
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "create_order",
                without(o.clone(), "customer_name"),
                "customer_name",
            ),
            (
                "create_order",
                with(o.clone(), "customer_name", json!("   ")),
                "customer_name",
            ),
            (
                "create_order",
                with(o.clone(), "customer_name", json!(long)),
                "customer_name",
            ),
            (
                "create_order",
                with(o.clone(), "customer_name", json!(42)),
                "customer_name",
            ),
            (
                "create_order",
                with(o.clone(), "delivery_lat", json!("north")),
                "delivery_lat",
            ),
            (
                "create_order",
                with(o.clone(), "delivery_lat", json!(90.5)),
                "delivery_lat",
            ),
            (
                "create_order",
                with(o.clone(), "delivery_lng", json!(-180.01)),
                "delivery_lng",
            ),
            (
                "create_order",
                with(o.clone(), "priority", json!("asap")),
                "priority",
            ),
            (
                "create_order",
                with(o.clone(), "payment_status", json!("maybe")),
                "payment_status",
            ),
            (
                "create_order",
                with(o.clone(), "expected_delivery_time", json!("tomorrow")),
                "expected_delivery_time",
            ),
            (
                "create_order",
                with(o.clone(), "customer_email", json!("not-an-email")),
                "customer_email",
            ),
            (
                "create_order",
                with(
                    o.clone(),
                    "customer_phone",
                    json!("'; DROP TABLE orders;--"),
                ),
                "customer_phone",
            ),
            (
                "create_order",
                with(o.clone(), "weight_kg", json!(-1)),
                "weight_kg",
            ),
            (
                "create_order",
                with(o.clone(), "special_instructions", json!("nul\u{0}byte")),
                "special_instructions",
            ),
            (
                "create_order",
                with(o.clone(), "special_instructions", json!("y".repeat(2001))),
                "special_instructions",
            ),
            (
                "create_order",
                with(
                    o.clone(),
                    "time_window_start",
                    json!("2099-01-02T00:00:00Z"),
                )
                .tap("time_window_end", json!("2099-01-01T00:00:00Z")),
                "time_window_end",
            ),
            (
                "create_order",
                with(o.clone(), "colour", json!("red")),
                "colour",
            ),
            (
                "create_driver",
                with(d.clone(), "vehicle_type", json!("spaceship")),
                "vehicle_type",
            ),
            (
                "create_driver",
                with(d.clone(), "skills", json!(["flying"])),
                "skills",
            ),
            (
                "create_driver",
                with(d.clone(), "skills", json!("refrigerated")),
                "skills",
            ),
            (
                "create_driver",
                with(d.clone(), "capacity_kg", json!(0)),
                "capacity_kg",
            ),
            (
                "create_driver",
                with(d.clone(), "status", json!("busy")),
                "status",
            ),
            (
                "create_driver",
                with(d.clone(), "current_lat", json!(null)),
                "current_lat",
            ),
            (
                "create_driver",
                without(d.clone(), "current_address"),
                "current_address",
            ),
            ("fetch_orders", json!({"limit": 0}), "limit"),
            ("fetch_orders", json!({"limit": 101}), "limit"),
            ("fetch_orders", json!({"limit": "ten"}), "limit"),
            ("fetch_orders", json!({"status": "lost"}), "status"),
            ("fetch_orders", json!({"sort_by": "name"}), "sort_by"),
            ("fetch_orders", json!({"sort_order": "UP"}), "sort_order"),
            ("fetch_drivers", json!({"offset": -1}), "offset"),
            (
                "count_drivers",
                json!({"vehicle_type": "bike"}),
                "vehicle_type",
            ),
            ("search_orders", json!({"search_term": ""}), "search_term"),
            (
                "search_drivers",
                json!({"search_term": long}),
                "search_term",
            ),
            (
                "get_order_details",
                json!({"order_id": "O".repeat(65)}),
                "order_id",
            ),
            ("get_order_details", json!({"order_id": 5}), "order_id"),
            ("get_driver_details", json!({}), "driver_id"),
            (
                "update_order",
                json!({"order_id": order, "status": "delivered"}),
                "status",
            ),
            (
                "update_order",
                json!({"order_id": order, "delivery_lat": 1000}),
                "delivery_lat",
            ),
            (
                "update_driver",
                json!({"driver_id": driver, "current_lng": 200}),
                "current_lng",
            ),
            (
                "update_driver",
                json!({"driver_id": driver, "name": ""}),
                "name",
            ),
            (
                "delete_order",
                json!({"order_id": order, "confirm": false}),
                "confirm",
            ),
            ("delete_order", json!({"order_id": order}), "confirm"),
            ("delete_all_orders", json!({"confirm": "yes"}), "confirm"),
            ("delete_all_drivers", json!({"confirm": false}), "confirm"),
            ("get_assignment_details", json!({}), "assignment_id"),
            (
                "get_assignment_details",
                json!({"order_id": order, "driver_id": driver}),
                "assignment_id",
            ),
            ("update_assignment", json!({"assignment_id": asn}), "status"),
            (
                "update_assignment",
                json!({"assignment_id": asn, "status": "failed"}),
                "status",
            ),
            (
                "update_assignment",
                json!({"assignment_id": asn, "status": "teleported"}),
                "status",
            ),
            (
                "update_assignment",
                json!({"assignment_id": asn, "actual_distance_meters": -5}),
                "actual_distance_meters",
            ),
            (
                "update_assignment",
                json!({"assignment_id": asn, "actual_arrival": "soon"}),
                "actual_arrival",
            ),
            (
                "unassign_order",
                json!({"assignment_id": asn, "confirm": false}),
                "confirm",
            ),
            (
                "complete_delivery",
                json!({"assignment_id": asn}),
                "confirm",
            ),
            (
                "complete_delivery",
                json!({"assignment_id": asn, "confirm": true, "notes": "z".repeat(2001)}),
                "notes",
            ),
            (
                "fail_delivery",
                json!({"assignment_id": asn, "current_address": "x", "current_lat": 1, "current_lng": 1, "failure_reason": "aliens", "confirm": true}),
                "failure_reason",
            ),
            (
                "fail_delivery",
                json!({"assignment_id": asn, "current_address": "x", "current_lat": 91, "current_lng": 1, "failure_reason": "other", "confirm": true}),
                "current_lat",
            ),
            ("create_assignment", json!({"order_id": order}), "driver_id"),
            (
                "auto_assign_order",
                json!({"order_id": ["ORD-1"]}),
                "order_id",
            ),
        ];
        let before = dump(&t, &a.user_id).await;
        for (tool, args, field) in cases {
            let message = err(c, tool, args.clone()).await;
            assert!(
                message.contains(field),
                "{tool} {args}: the error should name {field}: {message}"
            );
            assert!(
                !message.to_lowercase().contains("sql"),
                "{tool}: internal text leaked: {message}"
            );
        }
        assert_eq!(
            dump(&t, &a.user_id).await,
            before,
            "bad input changed the data"
        );
        let _ = a.client.cancel().await;
        server.stop().await;
    }
);

// SQL metacharacters and unicode are data: stored and found literally.
backend_test!(
    sql_metacharacters_and_unicode_are_plain_text,
    |t| async move {
        let server = start_server(t.db.clone()).await;
        let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
        let c = &a.client;
        let names = [
            "Robert'); DROP TABLE orders;--",
            "Zoë 🚚 東京",
            "100% _real_ \\ name",
            "O\"Brien",
        ];
        for name in names {
            let mut args = order_args("x", 1.0, 1.0);
            args["customer_name"] = json!(name);
            args["special_instructions"] = json!(format!("{name}\nline two"));
            let out = ok(c, "create_order", args).await;
            assert_eq!(out["order"]["customer_name"], json!(name));
            let id = out["order"]["order_id"].clone();
            let back = ok(c, "get_order_details", json!({"order_id": id})).await;
            assert_eq!(back["order"], out["order"], "read differs from write");
        }
        assert_eq!(ok(c, "count_orders", json!({})).await["total"], 4);
        let found = |term: &'static str| async move {
            let out = ok(c, "search_orders", json!({"search_term": term})).await;
            out["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["customer_name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(found("drop table").await, [names[0]]);
        assert_eq!(found("東京").await, [names[1]]);
        assert_eq!(found("ZOË").await, [names[1]]);
        assert_eq!(found("%").await, [names[2]], "% is a literal character");
        assert_eq!(found("_").await, [names[2]], "_ is a literal character");
        assert_eq!(found("\\").await, [names[2]]);
        assert_eq!(found("'").await, [names[0]]);
        assert!(found("zzz").await.is_empty());
        let _ = a.client.cancel().await;
        server.stop().await;
    }
);

trait Tap {
    fn tap(self, field: &str, value: Value) -> Value;
}

impl Tap for Value {
    fn tap(mut self, field: &str, value: Value) -> Value {
        self[field] = value;
        self
    }
}

async fn read_resource(client: &Client, uri: &str) -> Value {
    let result = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
        .await
        .expect("read resource");
    match result.contents.first() {
        Some(rmcp::model::ResourceContents::TextResourceContents {
            text, mime_type, ..
        }) => {
            assert_eq!(mime_type.as_deref(), Some("application/json"));
            serde_json::from_str(text).expect("resource JSON")
        }
        other => panic!("unexpected resource contents {other:?}"),
    }
}

fn at(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {v}"))
}

// The fleet's times come from the server's clock (issue 10): at a fixed
// instant of a manual clock, intelligent_assign_order measures the slack
// from that instant and dates the assignment with it, a driver's workload
// is counted over the clock's last 24 hours, and a delivery a microsecond
// past the promise and its grace is late.
backend_test!(fleet_times_come_from_the_servers_clock, |t| async move {
    use chrono::Duration;
    let start = at(&json!("2031-05-06T07:00:00.250000Z"));
    let clock = fleetmind::clock::Clock::manual(start);
    let options = fleetmind::app::ServeOptions {
        clock: clock.clone(),
        ..Default::default()
    };
    let server = start_server_with(t.db.clone(), options).await;
    let a = tenant(&t, &server.mcp_url(), "clock@example.com").await;
    let c = &a.client;
    let driver = create_driver(&a, "Dee", 48.85, 2.35).await;
    let promised = start + Duration::hours(2);
    let order_args_at = |name: &str| {
        let mut args = order_args(name, 48.86, 2.34);
        args["expected_delivery_time"] = json!(promised.to_rfc3339());
        args["sla_grace_period_minutes"] = json!(15);
        args
    };
    let made = ok(c, "create_order", order_args_at("Olive")).await;
    assert_eq!(at(&made["order"]["created_at"]), start, "{made}");
    let order = made["order"]["order_id"].as_str().expect("id").to_owned();

    let out = ok(c, "intelligent_assign_order", json!({"order_id": order})).await;
    let best = &out["ranking"][0];
    assert_eq!(best["driver_id"], json!(driver));
    let drive = best["duration_seconds"].as_i64().expect("duration");
    let due = promised + Duration::minutes(15);
    assert_eq!(
        best["slack_minutes"].as_i64(),
        Some((due - start - Duration::seconds(drive)).num_minutes()),
        "{out}"
    );
    assert_eq!(best["recent_assignments"], 0, "{out}");
    assert_eq!(at(&out["assignment"]["assigned_at"]), start, "{out}");
    assert_eq!(at(&out["order"]["updated_at"]), start, "{out}");

    // Delivered a microsecond after the promise and its grace: late.
    let asn = out["assignment"]["assignment_id"]
        .as_str()
        .expect("id")
        .to_owned();
    clock.set(due + Duration::microseconds(1));
    let done = ok(
        c,
        "complete_delivery",
        json!({"assignment_id": asn, "confirm": true}),
    )
    .await;
    assert_eq!(done["order"]["delivery_status"], "late", "{done}");
    assert_eq!(
        at(&done["order"]["delivered_at"]),
        due + Duration::microseconds(1)
    );

    // A day and a microsecond after the first assignment, it is no longer
    // the driver's recent workload.
    clock.set(start + Duration::hours(24) + Duration::microseconds(1));
    let second = ok(c, "create_order", order_args_at("Pia")).await;
    let second = second["order"]["order_id"].as_str().expect("id").to_owned();
    let out = ok(c, "intelligent_assign_order", json!({"order_id": second})).await;
    assert_eq!(out["ranking"][0]["recent_assignments"], 0, "{out}");
    server.stop().await;
});

//! The routing tools end to end (real server, real rmcp client, both
//! backends): routes by a real Valhalla on a network built here, the marked
//! estimate without an engine or when it is down or silent, and the
//! tenant's saved places.

use crate::support::fleet::*;
use crate::support::valhalla::*;
use crate::support::*;
use fleetmind::routing::estimate::{DETOUR_FACTOR, haversine_km};
use serde_json::{Value, json};
use std::time::Duration;

fn point(p: fleetmind::routing::Point) -> String {
    format!("{},{}", p.lat, p.lng)
}

/// Within 1 % (Valhalla's earth model is not quite the great circle's).
fn assert_close(got: &Value, want: f64) {
    let got = got.as_f64().expect("a number");
    assert!(
        (got - want).abs() <= want * 0.01,
        "{got} m, expected about {want:.0} m"
    );
}

/// The engine does not care which database is behind the server: SQLite
/// only (the saved places are tested on both backends below).
#[tokio::test]
#[cfg_attr(not(fm_valhalla), ignore = "Valhalla: set FLEETMIND_TEST_VALHALLA")]
async fn valhalla_routes_along_the_built_streets_and_around_a_blocked_one() {
    let python = valhalla_python();
    let open_engine = Valhalla::start(&python, &[]).await;
    let blocked_engine = Valhalla::start(&python, &["Second Street"]).await;
    let (open, blocked) = (&open_engine.url, &blocked_engine.url);
    let t = sqlite_db().await;
    {
        {
            let server =
                start_server_with(t.db.clone(), with_engine(open, Duration::from_secs(3))).await;
            let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
            let c = &a.client;
            let args = json!({"origin": point(SW), "destination": point(NE), "include_steps": true, "avoid_tolls": true});
            let out = ok(c, "calculate_route", args.clone()).await;
            assert_eq!(out["engine"], "valhalla", "{out}");
            assert_eq!(out["estimated"], false);
            assert_close(
                &out["distance_meters"],
                length_of(&["First Street", "Second Street"]),
            );
            assert!(out["duration_seconds"].as_i64().unwrap() > 0);
            let summary = out["summary"].as_str().unwrap();
            assert!(
                summary.contains("First Street") && summary.contains("Second Street"),
                "{summary}"
            );
            assert!(out["steps"].as_array().unwrap().len() >= 2, "{out}");
            assert_eq!(
                out["not_honoured"],
                json!([]),
                "the engine honours avoid_tolls"
            );
            assert!(
                !out.to_string().contains(open.as_str()),
                "the engine's URL leaked: {out}"
            );

            // A saved depot is a valid origin, and only for its tenant.
            ok(
                c,
                "save_place",
                json!({"name": "Depot", "lat": SW.lat, "lng": SW.lng, "address": "1 First Street"}),
            )
            .await;
            let out = ok(
                c,
                "calculate_route",
                json!({"origin": "depot", "destination": point(NE)}),
            )
            .await;
            assert_eq!(out["origin"]["source"], "saved_place");
            assert_close(
                &out["distance_meters"],
                length_of(&["First Street", "Second Street"]),
            );
            let b = tenant(&t, &server.mcp_url(), "bob@example.com").await;
            let refused = err(
                &b.client,
                "calculate_route",
                json!({"origin": "Depot", "destination": point(NE)}),
            )
            .await;
            assert!(
                refused.contains("origin") && refused.contains("no geocoder"),
                "{refused}"
            );

            // No road near one end: a tool error, not an invented estimate.
            let refused = err(
                c,
                "calculate_route",
                json!({"origin": point(SW), "destination": "10.0,10.0"}),
            )
            .await;
            assert!(refused.contains("no road route"), "{refused}");
            let _ = a.client.cancel().await;
            let _ = b.client.cancel().await;
            server.stop().await;

            let server =
                start_server_with(t.db.clone(), with_engine(blocked, Duration::from_secs(3))).await;
            let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
            let out = ok(&a.client, "calculate_route", args).await;
            assert_eq!(out["estimated"], false);
            assert_close(
                &out["distance_meters"],
                length_of(&["Third Street", "Fourth Street"]),
            );
            assert!(
                out["summary"].as_str().unwrap().contains("Fourth Street"),
                "{out}"
            );
            let _ = a.client.cancel().await;
            server.stop().await;
        }
    }
}

backend_test!(
    without_an_engine_routes_are_the_marked_estimate,
    |t| async move {
        let server = start_server(t.db.clone()).await;
        let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
        let c = &a.client;
        let out = ok(c, "calculate_route", json!({"origin": point(SW), "destination": point(NE), "avoid_ferries": true, "include_steps": true, "vehicle_type": "truck"})).await;
        assert_eq!(out["engine"], "estimate");
        assert_eq!(out["estimated"], true);
        let want = haversine_km(SW, NE) * DETOUR_FACTOR * 1000.0;
        assert!(
            (out["distance_meters"].as_f64().unwrap() - want).abs() <= 1.0,
            "{out}"
        );
        let secs = (want / 1000.0 / 35.0 * 3600.0).round();
        assert_eq!(
            out["duration_seconds"].as_f64().unwrap(),
            secs,
            "trucks at 35 km/h"
        );
        let not_honoured = out["not_honoured"].to_string();
        assert!(
            not_honoured.contains("avoid_ferries") && not_honoured.contains("include_steps"),
            "{out}"
        );

        let out = ok(
            c,
            "calculate_intelligent_route",
            json!({"origin": point(SW), "destination": point(NE)}),
        )
        .await;
        assert_eq!(out["estimated"], true);
        assert_eq!(out["adjustments"], json!([]));
        let notes = out["notes"].to_string();
        assert!(
            notes.contains("no weather source") && notes.contains("no live traffic"),
            "{notes}"
        );

        let refused = err(c, "geocode_address", json!({"address": "1 First Street"})).await;
        assert!(refused.contains("no geocoder is configured"), "{refused}");
        let out = ok(c, "geocode_address", json!({"address": " 52.5, 13.4 "})).await;
        assert_eq!(
            (
                out["lat"].clone(),
                out["lng"].clone(),
                out["source"].clone()
            ),
            (json!(52.5), json!(13.4), json!("coordinates"))
        );
        for (args, says) in [
            (
                json!({"origin": "91,0", "destination": "0,0"}),
                "off the map",
            ),
            (
                json!({"origin": "", "destination": "0,0"}),
                "origin: must not be empty",
            ),
            (
                json!({"origin": "0,0", "destination": "0,0", "mode": "teleport"}),
                "mode",
            ),
            (
                json!({"origin": "0,0", "destination": "0,0", "vehicle_type": "rocket"}),
                "vehicle_type",
            ),
            (
                json!({"origin": "0,0", "destination": "0,0", "speed": 3}),
                "unknown field",
            ),
        ] {
            let refused = err(c, "calculate_route", args.clone()).await;
            assert!(refused.contains(says), "{args}: {refused}");
        }
        let out = ok(
            c,
            "calculate_route",
            json!({"origin": "0,0", "destination": "0,0.01", "mode": "transit"}),
        )
        .await;
        assert!(out["not_honoured"].to_string().contains("transit"), "{out}");
        let _ = a.client.cancel().await;
        server.stop().await;
    }
);

#[tokio::test]
async fn a_down_or_silent_engine_gives_way_to_the_marked_estimate() {
    // Down: nothing listens on the port.
    let down = format!("http://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    // Silent: accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let t = sqlite_db().await;
    for url in [&down, &silent_url] {
        let server =
            start_server_with(t.db.clone(), with_engine(url, Duration::from_millis(500))).await;
        let a = tenant(
            &t,
            &server.mcp_url(),
            &format!("ann{}@example.com", url.len()),
        )
        .await;
        let out = tokio::time::timeout(
            Duration::from_secs(20),
            ok(
                &a.client,
                "calculate_route",
                json!({"origin": point(SW), "destination": point(NE)}),
            ),
        )
        .await
        .expect("the tool answers despite the engine");
        assert_eq!(out["estimated"], true, "{out}");
        assert_eq!(out["engine"], "estimate");
        assert!(
            out["fallback_reason"]
                .as_str()
                .unwrap()
                .contains("did not answer"),
            "{out}"
        );
        let port = url.rsplit(':').next().unwrap();
        assert!(
            !out.to_string().contains(port),
            "the engine's address leaked: {out}"
        );
        let _ = a.client.cancel().await;
        server.stop().await;
    }
    holder.abort();
}

backend_test!(saved_places_per_tenant, |t| async move {
    let server = start_server(t.db.clone()).await;
    let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
    let b = tenant(&t, &server.mcp_url(), "bob@example.com").await;
    let c = &a.client;
    let saved = ok(
        c,
        "save_place",
        json!({"name": " Main Depot ", "lat": 48.85, "lng": 2.35}),
    )
    .await;
    assert_eq!(saved["place"]["name"], "Main Depot");
    assert_eq!(saved["place"]["address"], "48.850000,2.350000");
    ok(
        c,
        "save_place",
        json!({"name": "Customer", "address": "48.86, 2.34"}),
    )
    .await;
    // Same name, other case: replaced, not duplicated.
    let out = ok(
        c,
        "save_place",
        json!({"name": "main depot", "lat": 48.8, "lng": 2.3, "address": "Rue A"}),
    )
    .await;
    assert_eq!(out["place"]["lat"], 48.8);
    let list = ok(c, "list_places", json!({})).await;
    assert_eq!(list["count"], 2, "{list}");
    let out = ok(c, "geocode_address", json!({"address": "MAIN DEPOT"})).await;
    assert_eq!(
        (
            out["lat"].clone(),
            out["source"].clone(),
            out["formatted_address"].clone()
        ),
        (json!(48.8), json!("saved_place"), json!("Rue A"))
    );
    let out = ok(
        c,
        "calculate_route",
        json!({"origin": "Main Depot", "destination": "customer"}),
    )
    .await;
    assert_eq!(out["destination"]["source"], "saved_place");

    // Another tenant sees none of it and can use the same names.
    assert_eq!(ok(&b.client, "list_places", json!({})).await["count"], 0);
    let refused = err(&b.client, "delete_place", json!({"name": "Main Depot"})).await;
    assert!(refused.contains("not found"), "{refused}");
    ok(
        &b.client,
        "save_place",
        json!({"name": "Main Depot", "lat": 1.0, "lng": 1.0}),
    )
    .await;
    assert_eq!(
        ok(c, "geocode_address", json!({"address": "Main Depot"})).await["lat"],
        48.8
    );

    let before = dump_places(&t).await;
    for (args, says) in [
        (
            json!({"name": "", "lat": 1.0, "lng": 1.0}),
            "name: must not be empty",
        ),
        (json!({"name": "1.5, 2", "lat": 1.0, "lng": 1.0}), "lat,lng"),
        (json!({"name": "x", "lat": 1.0}), "both lat and lng"),
        (json!({"name": "x", "lat": 91.0, "lng": 1.0}), "off the map"),
        (json!({"name": "x"}), "give an address"),
        (json!({"name": "x", "address": "Somewhere"}), "no geocoder"),
        (
            json!({"name": "x".repeat(101), "lat": 1.0, "lng": 1.0}),
            "at most 100",
        ),
        (
            json!({"name": "a\u{0}b", "lat": 1.0, "lng": 1.0}),
            "control",
        ),
    ] {
        let refused = err(c, "save_place", args.clone()).await;
        assert!(refused.contains(says), "{args}: {refused}");
    }
    assert_eq!(dump_places(&t).await, before, "bad input changed nothing");

    ok(c, "delete_place", json!({"name": "CUSTOMER"})).await;
    assert_eq!(ok(c, "list_places", json!({})).await["count"], 1);
    assert_eq!(ok(&b.client, "list_places", json!({})).await["count"], 1);
    let _ = a.client.cancel().await;
    let _ = b.client.cancel().await;
    server.stop().await;
});

/// Every place row, straight from the database.
async fn dump_places(t: &TestDb) -> Vec<String> {
    let mut rows = Vec::new();
    for user in all_users(t).await {
        rows.extend(dump(t, &user).await);
    }
    rows
}

async fn all_users(t: &TestDb) -> Vec<String> {
    t.db.list_keys(None)
        .await
        .expect("keys")
        .into_iter()
        .map(|k| k.user_id.to_string())
        .collect()
}

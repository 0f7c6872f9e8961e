//! The assignment tools with a road engine (issue 14): drivers are chosen
//! and their routes stored by road when a real Valhalla answers, by the
//! marked estimate without one, and when it is down or silent the tools
//! answer with the estimate within the deadline, never an error.

use crate::support::fleet::*;
use crate::support::valhalla::*;
use crate::support::*;
use fleetmind::routing::Point;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Within 1 % (Valhalla's earth model is not quite the great circle's).
fn assert_close(got: &Value, want: f64) {
    let got = got.as_f64().expect("a number");
    assert!(
        (got - want).abs() <= want * 0.01,
        "{got} m, expected about {want:.0} m"
    );
}

/// Takes the order back from whoever has it, so it can be assigned again.
async fn take_back(c: &Client, assignment: &Value) {
    let id = assignment["assignment_id"].as_str().expect("an assignment");
    ok(
        c,
        "unassign_order",
        json!({"assignment_id": id, "confirm": true}),
    )
    .await;
}

/// The stored assignment, as get_assignment_details shows it.
async fn stored(c: &Client, assignment: &Value) -> Value {
    let id = assignment["assignment_id"].as_str().expect("an assignment");
    let out = ok(c, "get_assignment_details", json!({"assignment_id": id})).await;
    out["assignments"][0].clone()
}

/// The answer's way is the stored one.
async fn assert_stored_as_answered(c: &Client, out: &Value) {
    let row = stored(c, &out["assignment"]).await;
    assert_eq!(
        (
            &row["route_distance_meters"],
            &row["route_duration_seconds"],
            &row["route_summary"]
        ),
        (
            &out["route"]["distance_meters"],
            &out["route"]["duration_seconds"],
            &out["route"]["summary"]
        ),
        "{out}"
    );
}

/// tests/e2e/valhalla_net.py (the e2e sessions' port of the network
/// builder, the suite being Python) writes the very network of these tests.
fn the_e2e_port_builds_the_same_network(python: &str) {
    let script = "import sys; sys.path.insert(0, 'tests/e2e'); import valhalla_net; \
                  sys.stdout.write(valhalla_net.network_xml(sys.argv[1:]))";
    for blocked in [&[][..], &["Second Street"][..]] {
        let out = std::process::Command::new(python)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("-c")
            .arg(script)
            .args(blocked)
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            network_xml(blocked),
            "tests/e2e/valhalla_net.py drifted from tests/it/support/valhalla.rs"
        );
    }
}

/// The test block with Second Street closed (a bridge out): drivers at
/// NW are nearer the order at NE by the straight line (541 m) than one at
/// SE (556 m), but by road NW must go round by First, Third and Fourth
/// Street (about 2.1 km) while SE takes Fourth Street (about 1 km).
async fn the_nearer_by_road_wins(t: TestDb) {
    let python = valhalla_python();
    the_e2e_port_builds_the_same_network(&python);
    let engine = Valhalla::start(&python, &["Second Street"]).await;
    let to_ne = length_of(&["Fourth Street"]);
    let round = length_of(&["First Street", "Third Street", "Fourth Street"]);
    let line = |p: Point| fleetmind::routing::estimate::haversine_km(p, NE);
    assert!(line(NW) < line(SE) && to_ne < round);

    // Without an engine the straight line decides: NW.
    let server = start_server(t.db.clone()).await;
    let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
    let c = &a.client;
    // Five at NW: the first round of road calls (five, nearest by the
    // straight line) measures only them, South comes out ahead on the
    // estimate, and a second round measures South by road.
    let mut wests = Vec::new();
    for n in 1..=5 {
        wests.push(create_driver(&a, &format!("West {n}"), NW.lat, NW.lng).await);
    }
    let west = wests[0].clone();
    let south = create_driver(&a, "South", SE.lat, SE.lng).await;
    let order = create_order(&a, "Olive", NE.lat, NE.lng).await;
    let out = ok(c, "auto_assign_order", json!({"order_id": order})).await;
    assert!(
        wests.contains(&out["driver"]["driver_id"].as_str().unwrap().to_owned()),
        "{out}"
    );
    assert_eq!(
        (&out["route"]["engine"], &out["route"]["estimated"]),
        (&json!("estimate"), &json!(true))
    );
    assert_stored_as_answered(c, &out).await;
    take_back(c, &out["assignment"]).await;
    let _ = a.client.cancel().await;
    server.stop().await;

    // With the engine: by road, SE (measured in the second round).
    let server = start_server_with(
        t.db.clone(),
        with_engine(&engine.url, Duration::from_secs(3)),
    )
    .await;
    let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
    let c = &a.client;
    // Intelligent first: South has no recent assignment yet, so distance
    // decides between South and the Wests that have none either.
    let out = ok(c, "intelligent_assign_order", json!({"order_id": order})).await;
    assert_eq!(out["driver"]["driver_id"], json!(south), "{out}");
    assert_eq!(out["route"]["estimated"], false, "{out}");
    assert_close(&out["route"]["distance_meters"], to_ne);
    let ranking = out["ranking"].as_array().unwrap();
    assert!(
        ranking[1]["name"].as_str().unwrap().starts_with("West"),
        "{out}"
    );
    assert_close(
        &json!(ranking[1]["distance_km"].as_f64().unwrap() * 1000.0),
        round,
    );
    assert_stored_as_answered(c, &out).await;
    take_back(c, &out["assignment"]).await;

    let out = ok(c, "auto_assign_order", json!({"order_id": order})).await;
    assert_eq!(out["driver"]["driver_id"], json!(south), "{out}");
    assert_eq!(
        (&out["route"]["engine"], &out["route"]["estimated"]),
        (&json!("valhalla"), &json!(false)),
        "{out}"
    );
    assert!(out["route"].get("fallback_reason").is_none(), "{out}");
    assert_close(&out["route"]["distance_meters"], to_ne);
    assert_close(&json!(out["distance_km"].as_f64().unwrap() * 1000.0), to_ne);
    assert!(out["reason"].as_str().unwrap().contains("by road"), "{out}");
    assert!(
        out["route"]["summary"]
            .as_str()
            .unwrap()
            .contains("by road"),
        "{out}"
    );
    assert_stored_as_answered(c, &out).await;
    assert!(
        !out.to_string().contains(&engine.url),
        "the engine's URL leaked: {out}"
    );
    take_back(c, &out["assignment"]).await;

    // By hand, to the driver across the closed bridge: the way round.
    let out = ok(
        c,
        "create_assignment",
        json!({"order_id": order, "driver_id": west}),
    )
    .await;
    assert_eq!(out["route"]["engine"], "valhalla", "{out}");
    assert_close(&out["route"]["distance_meters"], round);
    assert_stored_as_answered(c, &out).await;
    take_back(c, &out["assignment"]).await;

    // Eleven Wests: two rounds route ten of them, the eleventh still leads
    // on the estimate and gets the order, marked, with the reason (the
    // bound on engine calls is kept, and said).
    for n in 6..=11 {
        create_driver(&a, &format!("West {n}"), NW.lat, NW.lng).await;
    }
    let out = ok(c, "auto_assign_order", json!({"order_id": order})).await;
    assert!(
        out["driver"]["name"].as_str().unwrap().starts_with("West"),
        "{out}"
    );
    assert_eq!(
        (&out["route"]["engine"], &out["route"]["estimated"]),
        (&json!("estimate"), &json!(true)),
        "{out}"
    );
    assert!(
        out["route"]["fallback_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not among the 5 (at most 10)"),
        "{out}"
    );
    assert_stored_as_answered(c, &out).await;
    let _ = a.client.cancel().await;
    server.stop().await;
}

#[tokio::test]
#[cfg_attr(not(fm_valhalla), ignore = "Valhalla: set FLEETMIND_TEST_VALHALLA")]
async fn the_nearer_by_road_wins_sqlite() {
    the_nearer_by_road_wins(sqlite_db().await).await
}

#[tokio::test]
#[cfg_attr(
    any(not(fm_valhalla), not(fm_pg)),
    ignore = "Valhalla and Postgres: set FLEETMIND_TEST_VALHALLA and FLEETMIND_TEST_PG"
)]
async fn the_nearer_by_road_wins_postgres() {
    the_nearer_by_road_wins(pg_db().await).await
}

backend_test!(
    a_down_or_silent_engine_gives_assignments_the_marked_estimate,
    |t| async move {
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
        let deadline = Duration::from_millis(500);
        // The order, just north of the near driver.
        const AT: Point = Point {
            lat: 52.5005,
            lng: 13.4,
        };
        for (n, url) in [&down, &silent_url].into_iter().enumerate() {
            let server = start_server_with(t.db.clone(), with_engine(url, deadline)).await;
            let a = tenant(&t, &server.mcp_url(), &format!("ann{n}@example.com")).await;
            let c = &a.client;
            let near = create_driver(&a, "Near", SW.lat, SW.lng).await;
            create_driver(&a, "Far", 52.53, 13.45).await;
            for tool in [
                "auto_assign_order",
                "intelligent_assign_order",
                "create_assignment",
            ] {
                let order = create_order(&a, "Olive", AT.lat, AT.lng).await;
                let args = if tool == "create_assignment" {
                    json!({"order_id": order, "driver_id": near})
                } else {
                    json!({"order_id": order})
                };
                let began = Instant::now();
                let out = tokio::time::timeout(Duration::from_secs(20), ok(c, tool, args))
                    .await
                    .expect("the tool answers despite the engine");
                // One engine timeout (the calls run side by side), plus
                // the tool's own work; not one timeout per driver.
                assert!(
                    began.elapsed() < deadline * 4,
                    "{tool} took {:?}",
                    began.elapsed()
                );
                assert_eq!(out["driver"]["driver_id"], json!(near), "{tool}: {out}");
                assert_eq!(
                    (&out["route"]["engine"], &out["route"]["estimated"]),
                    (&json!("estimate"), &json!(true)),
                    "{tool}: {out}"
                );
                assert!(
                    out["route"]["fallback_reason"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("did not answer"),
                    "{tool}: {out}"
                );
                let want = fleetmind::routing::estimate::route(
                    SW,
                    AT,
                    fleetmind::routing::Travel::Driving(fleetmind::fleet::VehicleType::Van),
                );
                assert_eq!(
                    out["route"]["distance_meters"],
                    json!(want.distance_meters),
                    "{tool}: {out}"
                );
                assert_stored_as_answered(c, &out).await;
                assert!(
                    !out.to_string().contains(url.trim_start_matches("http://")),
                    "the engine's address leaked: {out}"
                );
                take_back(c, &out["assignment"]).await;
            }
            let _ = a.client.cancel().await;
            server.stop().await;
        }
        holder.abort();
    }
);

//! Geocoding end to end (real server, real rmcp client): a real Nominatim
//! serving the test network's addresses (support/nominatim.rs), routes
//! between two addresses through Nominatim then a real Valhalla, and the
//! clear, bounded refusal when the geocoder is down or silent.

use crate::support::fleet::*;
use crate::support::nominatim::*;
use crate::support::valhalla::*;
use crate::support::*;
use fleetmind::routing::Point;
use fleetmind::routing::estimate::haversine_km;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The servers' engine deadline in the tests of what the real engines
/// answer: longer than the default 3 s, as these run beside the whole suite
/// on a loaded machine (the bounded failure is tested with 500 ms below).
const ENGINE_DEADLINE: Duration = Duration::from_secs(10);

fn address(house: &House) -> String {
    format!("{} {}, {TOWN}", house.number, house.street)
}

/// Metres between the answer's point and `want`.
fn metres_off(out: &Value, want: Point) -> f64 {
    let got = Point::new(
        out["lat"].as_f64().expect("lat"),
        out["lng"].as_f64().expect("lng"),
    );
    haversine_km(got, want) * 1000.0
}

/// The engine's address, as it must never appear in an answer.
fn port_of(url: &str) -> &str {
    url.rsplit(':').next().expect("a port")
}

/// SQLite behind the server: what is tested is the geocoder (saved places
/// on both backends are routing.rs's).
#[tokio::test]
#[cfg_attr(not(fm_nominatim), ignore = "Nominatim: set FLEETMIND_TEST_NOMINATIM")]
async fn nominatim_finds_the_built_addresses_and_saved_places_come_first() {
    let mut engine = Nominatim::start().await;
    let t = sqlite_db().await;
    let server = start_server_with(
        t.db.clone(),
        with_engines(None, Some(&engine.url), ENGINE_DEADLINE),
    )
    .await;
    let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
    let b = tenant(&t, &server.mcp_url(), "bob@example.com").await;
    let c = &a.client;

    for house in &HOUSES {
        for text in [address(house), format!("{} {}", house.number, house.street)] {
            let out = ok(c, "geocode_address", json!({ "address": text })).await;
            assert_eq!(out["source"], "geocoder", "{out}");
            assert_eq!(out["engine"], "nominatim", "{out}");
            assert_eq!(out["estimated"], false, "{out}");
            let off = metres_off(&out, house.at);
            assert!(off < 3.0, "{text}: {off:.1} m from the house: {out}");
            let formatted = out["formatted_address"].as_str().expect("formatted");
            assert!(
                formatted.contains(house.street)
                    && formatted.contains(house.number)
                    && formatted.contains(TOWN),
                "{formatted}"
            );
            assert_eq!(out["confidence"], 0.9, "a house: {out}");
            assert!(!out.to_string().contains(port_of(&engine.url)), "{out}");
        }
    }
    // A house number the street does not have: Nominatim answers the
    // street (not house 12 of it), and the confidence says so; a street
    // alone likewise; the town's name is the town, with less again.
    for (number, street, on) in [
        ("99 ", "Second Street", [NW, NE]),
        ("", "First Street", [SW, NW]),
    ] {
        let text = format!("{number}{street}, {TOWN}");
        let out = ok(c, "geocode_address", json!({ "address": text })).await;
        assert_eq!(out["confidence"], 0.7, "{text}: {out}");
        let formatted = out["formatted_address"].as_str().expect("formatted");
        assert!(
            formatted.starts_with(&format!("{street}, {TOWN}")),
            "{text}: {formatted}"
        );
        // On the street: no farther from its ends than they are apart.
        let span = haversine_km(on[0], on[1]) * 1000.0;
        assert!(
            metres_off(&out, on[0]) <= span && metres_off(&out, on[1]) <= span,
            "{text}: {out}"
        );
    }
    let out = ok(c, "geocode_address", json!({ "address": TOWN })).await;
    assert_eq!(out["confidence"], 0.5, "a town: {out}");

    // An address the network does not have: the clear "not found".
    let refused = err(c, "geocode_address", json!({"address": "99 Nowhere Road"})).await;
    assert!(
        refused.contains("no place found for '99 Nowhere Road'"),
        "{refused}"
    );
    assert!(!refused.contains(port_of(&engine.url)), "{refused}");

    // A saved place of the same name wins over the geocoder, for its tenant
    // only.
    let house = &HOUSES[0];
    ok(
        c,
        "save_place",
        json!({"name": address(house), "lat": 1.5, "lng": 2.5}),
    )
    .await;
    let out = ok(
        c,
        "geocode_address",
        json!({"address": address(house).to_uppercase()}),
    )
    .await;
    assert_eq!(
        (out["lat"].clone(), out["source"].clone()),
        (json!(1.5), json!("saved_place")),
        "{out}"
    );
    let out = ok(
        &b.client,
        "geocode_address",
        json!({"address": address(house)}),
    )
    .await;
    assert_eq!(out["source"], "geocoder", "{out}");

    // A place saved by its address is where the geocoder puts it.
    let house = &HOUSES[1];
    let saved = ok(
        &b.client,
        "save_place",
        json!({"name": "Corner shop", "address": address(house)}),
    )
    .await;
    let off = metres_off(&saved["place"], house.at);
    assert!(off < 3.0, "{off:.1} m: {saved}");

    // The geocoder goes away: an address it was not asked before is refused
    // clearly and soon, without its address; saved places still answer.
    engine.stop();
    let started = Instant::now();
    let refused = err(
        &b.client,
        "geocode_address",
        json!({"address": format!("{} {}, {POSTCODE}", house.number, house.street)}),
    )
    .await;
    assert!(
        started.elapsed() < ENGINE_DEADLINE,
        "{:?}",
        started.elapsed()
    );
    assert!(refused.contains("the geocoder did not answer"), "{refused}");
    assert!(!refused.contains(port_of(&engine.url)), "{refused}");
    let out = ok(
        &b.client,
        "geocode_address",
        json!({"address": "corner shop"}),
    )
    .await;
    assert_eq!(out["source"], "saved_place", "{out}");

    let _ = a.client.cancel().await;
    let _ = b.client.cancel().await;
    server.stop().await;
}

/// Two addresses: Nominatim finds both, Valhalla routes between them along
/// the built streets (from the street in front of one house, round the
/// west corner, to the street in front of the other).
#[tokio::test]
#[cfg_attr(
    not(all(fm_nominatim, fm_valhalla)),
    ignore = "Nominatim and Valhalla: set FLEETMIND_TEST_NOMINATIM and FLEETMIND_TEST_VALHALLA"
)]
async fn a_route_between_two_addresses_goes_through_nominatim_then_valhalla() {
    let geocoder = Nominatim::start().await;
    let road = Valhalla::start(&valhalla_python(), &[]).await;
    let t = sqlite_db().await;
    let server = start_server_with(
        t.db.clone(),
        with_engines(Some(&road.url), Some(&geocoder.url), ENGINE_DEADLINE),
    )
    .await;
    let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
    let (from, to) = (&HOUSES[1], &HOUSES[0]);
    let out = ok(
        &a.client,
        "calculate_route",
        json!({"origin": address(from), "destination": address(to), "include_steps": true}),
    )
    .await;
    assert_eq!(out["engine"], "valhalla", "{out}");
    assert_eq!(out["estimated"], false, "{out}");
    assert_eq!(out["origin"]["source"], "geocoder", "{out}");
    assert_eq!(out["destination"]["source"], "geocoder", "{out}");
    let want = haversine_km(from.on_street, SW) * 1000.0
        + length_of(&["First Street"])
        + haversine_km(NW, to.on_street) * 1000.0;
    let got = out["distance_meters"].as_f64().expect("distance");
    assert!(
        (got - want).abs() <= want * 0.02,
        "{got} m, expected about {want:.0} m: {out}"
    );
    let steps = out["steps"].to_string();
    assert!(
        ["Third Street", "First Street", "Second Street"]
            .iter()
            .all(|street| steps.contains(street)),
        "{steps}"
    );
    for url in [&road.url, &geocoder.url] {
        assert!(!out.to_string().contains(port_of(url)), "{out}");
    }
    let _ = a.client.cancel().await;
    server.stop().await;
}

/// A geocoder that is down (nothing listens) or silent (accepts, reads the
/// request and never answers): every tool that needs it refuses within the
/// timeout, says so plainly, leaks no address, and saves nothing. The
/// silent one also shows what the client asks: Nominatim's URL shape and an
/// identifying User-Agent (its usage policy asks for one).
#[tokio::test]
async fn a_down_or_silent_geocoder_is_a_clear_bounded_refusal() {
    use tokio::io::AsyncReadExt;
    let down = format!("http://127.0.0.1:{}", crate::support::binary::free_port());
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let (heads_tx, mut heads) = tokio::sync::mpsc::unbounded_channel::<String>();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut conn, _)) = silent.accept().await {
            let mut head = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut head))
                .await
                .map_or(0, |r| r.unwrap_or(0));
            let _ = heads_tx.send(String::from_utf8_lossy(&head[..n]).into_owned());
            held.push(conn);
        }
    });
    let t = sqlite_db().await;
    for url in [&down, &silent_url] {
        let server = start_server_with(
            t.db.clone(),
            with_engines(None, Some(url), Duration::from_millis(500)),
        )
        .await;
        let a = tenant(
            &t,
            &server.mcp_url(),
            &format!("ann{}@example.com", port_of(url)),
        )
        .await;
        let c = &a.client;
        for (tool, args, says) in [
            (
                "geocode_address",
                json!({"address": "12 Second Street"}),
                "address: the geocoder did not answer",
            ),
            (
                "calculate_route",
                json!({"origin": "12 Second Street", "destination": "52.5,13.4"}),
                "origin: the geocoder did not answer",
            ),
            (
                "save_place",
                json!({"name": "Depot", "address": "12 Second Street"}),
                "the geocoder did not answer",
            ),
        ] {
            let started = Instant::now();
            let refused = err(c, tool, args).await;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{tool} waited {:?}",
                started.elapsed()
            );
            assert!(refused.contains(says), "{tool}: {refused}");
            assert!(
                !refused.contains(port_of(url)) && !refused.contains("127.0.0.1"),
                "{tool} leaked the geocoder's address: {refused}"
            );
        }
        assert_eq!(ok(c, "list_places", json!({})).await["count"], 0);
        let _ = a.client.cancel().await;
        server.stop().await;
    }
    holder.abort();
    let head = heads.recv().await.expect("the client's first request");
    let head = head.to_lowercase();
    assert!(
        head.starts_with("get /search?q=12+second+street&format=jsonv2&limit=1 http/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!(
            "\r\nuser-agent: fleetmind/{}\r\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{head}"
    );
}

//! A real Valhalla on a road network the test writes itself: a few streets
//! as OSM XML, turned into .osm.pbf by pyosmium, into routing tiles by
//! `valhalla_build_tiles`, and served by `valhalla_service` on 127.0.0.1.
//!
//! The same network, with its houses' addresses, is what the geocoder tests
//! import into a real Nominatim (see `nominatim.rs`): one builder for both
//! engines.
//!
//! Needs the Python environment of tests/support/valhalla_env.sh, named by
//! `FLEETMIND_TEST_VALHALLA` (set by `.ci/run`); without it the engine test
//! is compiled as ignored, except under CI, where it always runs.

use fleetmind::app::ServeOptions;
use fleetmind::routing::estimate::haversine_km;
use fleetmind::routing::{Point, Routing, RoutingOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The corners of the test block, and a bend east of it.
pub const SW: Point = Point {
    lat: 52.5000,
    lng: 13.4000,
};
pub const NW: Point = Point {
    lat: 52.5050,
    lng: 13.4000,
};
pub const NE: Point = Point {
    lat: 52.5050,
    lng: 13.4080,
};
pub const SE: Point = Point {
    lat: 52.5000,
    lng: 13.4080,
};
pub const BEND: Point = Point {
    lat: 52.5025,
    lng: 13.4140,
};

/// The streets: name and the points they run through.
pub const STREETS: [(&str, &[Point]); 4] = [
    ("First Street", &[SW, NW]),
    ("Second Street", &[NW, NE]),
    ("Third Street", &[SW, SE]),
    ("Fourth Street", &[SE, BEND, NE]),
];

/// The town the streets are in (a `place=town` node and every house's
/// `addr:city`).
pub const TOWN: &str = "Testville";
pub const POSTCODE: &str = "10999";

/// A house with an address: its door (`at`, a few metres off the street)
/// and the point of the street in front of it (where a road engine puts it).
pub struct House {
    pub number: &'static str,
    pub street: &'static str,
    pub at: Point,
    pub on_street: Point,
}

/// The houses of the network.
pub const HOUSES: [House; 2] = [
    House {
        number: "12",
        street: "Second Street",
        at: Point {
            lat: 52.5051,
            lng: 13.4040,
        },
        on_street: Point {
            lat: 52.5050,
            lng: 13.4040,
        },
    },
    House {
        number: "3",
        street: "Third Street",
        at: Point {
            lat: 52.4999,
            lng: 13.4020,
        },
        on_street: Point {
            lat: 52.5000,
            lng: 13.4020,
        },
    },
];

/// Metres along the named streets, by the great circle.
pub fn length_of(names: &[&str]) -> f64 {
    names
        .iter()
        .map(|name| {
            let (_, points) = STREETS.iter().find(|(n, _)| n == name).expect("a street");
            points
                .windows(2)
                .map(|w| haversine_km(w[0], w[1]) * 1000.0)
                .sum::<f64>()
        })
        .sum()
}

/// Server options with the road engine at `url`, each call bounded by
/// `timeout`.
pub fn with_engine(url: &str, timeout: Duration) -> ServeOptions {
    with_engines(Some(url), None, timeout)
}

/// Server options with a road engine and a geocoder (either may be absent),
/// each call bounded by `timeout`.
pub fn with_engines(
    routing: Option<&str>,
    geocoder: Option<&str>,
    timeout: Duration,
) -> ServeOptions {
    let routing = Routing::new(&RoutingOptions {
        routing_url: routing.map(str::to_owned),
        geocoder_url: geocoder.map(str::to_owned),
        timeout,
    })
    .expect("routing options");
    ServeOptions {
        routing: Arc::new(routing),
        ..ServeOptions::default()
    }
}

/// The network as OSM XML; `blocked` streets get `access=no`. The houses
/// and the town are nodes with no way: a road engine ignores them.
pub fn network_xml(blocked: &[&str]) -> String {
    let nodes = [SW, NW, NE, SE, BEND];
    let id_of = |p: &Point| nodes.iter().position(|n| n == p).expect("a node") + 1;
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<osm version=\"0.6\" generator=\"fleetmind-test\">\n",
    );
    for (i, n) in nodes.iter().enumerate() {
        xml += &format!(
            "  <node id=\"{}\" version=\"1\" lat=\"{}\" lon=\"{}\"/>\n",
            i + 1,
            n.lat,
            n.lng
        );
    }
    for (i, house) in HOUSES.iter().enumerate() {
        xml += &format!(
            "  <node id=\"{}\" version=\"1\" lat=\"{}\" lon=\"{}\">\
             <tag k=\"addr:housenumber\" v=\"{}\"/><tag k=\"addr:street\" v=\"{}\"/>\
             <tag k=\"addr:city\" v=\"{TOWN}\"/><tag k=\"addr:postcode\" v=\"{POSTCODE}\"/></node>\n",
            11 + i,
            house.at.lat,
            house.at.lng,
            house.number,
            house.street
        );
    }
    xml += &format!(
        "  <node id=\"20\" version=\"1\" lat=\"52.5025\" lon=\"13.404\">\
         <tag k=\"place\" v=\"town\"/><tag k=\"name\" v=\"{TOWN}\"/></node>\n"
    );
    for (w, (name, points)) in STREETS.iter().enumerate() {
        xml += &format!("  <way id=\"{}\" version=\"1\">", 100 + w);
        for p in *points {
            xml += &format!("<nd ref=\"{}\"/>", id_of(p));
        }
        xml += &format!("<tag k=\"highway\" v=\"residential\"/><tag k=\"name\" v=\"{name}\"/>");
        if blocked.contains(name) {
            xml += "<tag k=\"access\" v=\"no\"/>";
        }
        xml += "</way>\n";
    }
    xml + "</osm>\n"
}

/// The Valhalla environment's Python (a test that calls this runs only
/// where `fm_valhalla` is set, see build.rs, and there it must work).
pub fn valhalla_python() -> String {
    let candidate = std::env::var("FLEETMIND_TEST_VALHALLA").unwrap_or_default();
    let ok = Command::new(&candidate)
        .args(["-c", "import valhalla, osmium"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "'{candidate}' has no valhalla and osmium; run tests/support/valhalla_env.sh and set \
         FLEETMIND_TEST_VALHALLA=$(bash tests/support/valhalla_env.sh --print)"
    );
    candidate
}

/// A running valhalla_service; stopped when dropped.
pub struct Valhalla {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Valhalla {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(what: &str, cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Valhalla {
    /// Builds the network (with `blocked` streets closed) and serves it.
    pub async fn start(python: &str, blocked: &[&str]) -> Valhalla {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("net.osm"), network_xml(blocked)).expect("write osm");
        run(
            "osm to pbf",
            Command::new(python).current_dir(d).args([
                "-c",
                "import osmium\nw = osmium.SimpleWriter('net.osm.pbf')\n\
                 for o in osmium.FileProcessor('net.osm'): w.add(o)\nw.close()",
            ]),
        );
        let port = free_port();
        let config = d.join("valhalla.json");
        let out = Command::new(python)
            .current_dir(d)
            .args(["-m", "valhalla.valhalla_build_config"])
            .arg("--mjolnir-tile-dir")
            .arg(d.join("tiles"))
            .args([
                "--mjolnir-tile-extract",
                "",
                "--mjolnir-timezone",
                "",
                "--mjolnir-admin",
                "",
            ])
            .arg("--httpd-service-listen")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--httpd-service-loopback")
            .arg(format!("ipc://{}", d.join("loopback").display()))
            .arg("--httpd-service-interrupt")
            .arg(format!("ipc://{}", d.join("interrupt").display()))
            .stderr(Stdio::null())
            .output()
            .expect("valhalla_build_config");
        assert!(out.status.success(), "valhalla_build_config failed");
        std::fs::write(&config, out.stdout).expect("write config");
        let bin = bin_dir(python);
        run(
            "valhalla_build_tiles",
            Command::new(bin.join("valhalla_build_tiles"))
                .current_dir(d)
                .arg("-c")
                .arg(&config)
                .arg("net.osm.pbf"),
        );
        let child = Command::new(bin.join("valhalla_service"))
            .arg(&config)
            .arg("1")
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("valhalla_service");
        let engine = Valhalla {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        engine.wait_ready().await;
        engine
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = http
                .get(format!("{}/status", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if status.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "valhalla_service did not start in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn bin_dir(python: &str) -> PathBuf {
    let out = Command::new(python)
        .args(["-m", "valhalla", "print_bin_path"])
        .output()
        .expect("valhalla print_bin_path");
    assert!(out.status.success(), "valhalla print_bin_path failed");
    Path::new(String::from_utf8_lossy(&out.stdout).trim()).to_path_buf()
}

//! A real Nominatim on the test network (`valhalla::network_xml`, the same
//! streets the road engine routes on, with their houses' addresses):
//! imported once by `nominatim import` into a Postgres database named after
//! the network's hash (so later runs reuse it), and served by
//! `nominatim serve` on 127.0.0.1 for each test that asks.
//!
//! Needs the environment of tests/support/nominatim_env.sh, its `nominatim`
//! command named by `FLEETMIND_TEST_NOMINATIM` (set by `.ci/run`), and the
//! Postgres of `FLEETMIND_TEST_PG`; without the first, the geocoder tests
//! are compiled as ignored, except under CI, where they always run.

use super::binary::free_port;
use super::db::{admin_connection, build_lock, exists, pg_admin_url, rename_when_built};
use super::valhalla::network_xml;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// The `nominatim` command (a test that calls this runs only where
/// `fm_nominatim` is set, see build.rs, and there it must work).
pub fn nominatim_command() -> String {
    let candidate = std::env::var("FLEETMIND_TEST_NOMINATIM").unwrap_or_default();
    let ok = Command::new(&candidate)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "'{candidate}' is not a working nominatim; run tests/support/nominatim_env.sh and set \
         FLEETMIND_TEST_NOMINATIM=$(bash tests/support/nominatim_env.sh --print)"
    );
    candidate
}

/// A running `nominatim serve`; stopped when dropped.
pub struct Nominatim {
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Nominatim {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Nominatim {
    /// Imports the test network (once per network) and serves it.
    pub async fn start() -> Nominatim {
        let command = nominatim_command();
        let database = imported(&command).await;
        // The project directory holds nothing but settings, which are given
        // as environment variables: an empty one will do.
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new(&command)
            .args(["serve", "--server", &format!("127.0.0.1:{port}")])
            .arg("--project-dir")
            .arg(dir.path())
            .envs(settings(database))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("serve.log")).expect("serve.log"))
            .spawn()
            .expect("nominatim serve");
        let engine = Nominatim {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        engine.wait_ready().await;
        engine
    }

    /// Ends the server (it stays down: for the tests of a geocoder that went
    /// away).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What `nominatim serve` wrote to stderr (uvicorn's log), for a
    /// failure's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = http
                .get(format!("{}/status", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if status.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "nominatim serve did not answer /status in 60 s; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The first search sets up Nominatim's query machinery (/status does
        // not), which on a loaded machine can take longer than a server's
        // engine deadline: done here, so a test's first question is not the
        // one that pays for it.
        let search = http
            .get(format!("{}/search?q=First+Street&format=jsonv2", self.url))
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        assert!(
            search.is_ok_and(|r| r.status().is_success()),
            "nominatim serve did not answer a first search in 30 s; its log:\n{}",
            self.log()
        );
    }
}

/// Nominatim's settings: the database, and the role its API reads as (the
/// test Postgres's own user; Nominatim's default, www-data, does not exist
/// here).
fn settings(database: &str) -> Vec<(&'static str, String)> {
    let admin = url::Url::parse(&pg_admin_url()).expect("FLEETMIND_TEST_PG is a URL");
    let user = if admin.username().is_empty() {
        "postgres"
    } else {
        admin.username()
    };
    let mut dsn = format!(
        "pgsql:dbname={database};host={};port={};user={user}",
        admin.host_str().unwrap_or("127.0.0.1"),
        admin.port().unwrap_or(5432)
    );
    if let Some(password) = admin.password() {
        dsn += &format!(";password={password}");
    }
    vec![
        ("NOMINATIM_DATABASE_DSN", dsn),
        ("NOMINATIM_DATABASE_WEBUSER", user.to_owned()),
    ]
}

/// The name of the database holding the imported network: imported once per
/// process, and shared by every run with the same network.
async fn imported(command: &str) -> &'static str {
    static DATABASE: OnceCell<String> = OnceCell::const_new();
    DATABASE.get_or_init(|| import(command)).await
}

async fn import(command: &str) -> String {
    use sha2::Digest;
    let xml = network_xml(&[]);
    let mut hash = sha2::Sha256::new();
    hash.update(xml.as_bytes());
    // Another Nominatim version may lay the database out differently.
    let version = Command::new(command)
        .arg("--version")
        .output()
        .expect("nominatim --version");
    hash.update(&version.stdout);
    let name = format!("fm_nominatim_{}", &hex::encode(hash.finalize())[..16]);
    let mut conn = admin_connection().await;
    // One process imports while the others wait.
    build_lock(&mut conn, &name, true).await;
    if !exists(&mut conn, &name).await {
        // Imported under another name and renamed when complete, so a run
        // killed half-way never leaves a half-imported database behind.
        let partial = format!("{name}_partial");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {partial} WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .expect("drop a half-imported network");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("net.osm"), xml).expect("write osm");
        let started = Instant::now();
        run_import(command, dir.path(), &partial).await;
        eprintln!(
            "nominatim import of the test network: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        rename_when_built(&mut conn, &partial, &name).await;
    }
    build_lock(&mut conn, &name, false).await;
    name
}

/// `nominatim import` of `dir/net.osm` into `database`, bounded in time.
/// Offline: the data's date is not looked up on openstreetmap.org.
async fn run_import(command: &str, dir: &Path, database: &str) {
    let import = tokio::process::Command::new(command)
        .args([
            "import",
            "--osm-file",
            "net.osm",
            "--offline",
            "--no-updates",
            "--threads",
            "1",
        ])
        .arg("--project-dir")
        .arg(dir)
        .current_dir(dir)
        .envs(settings(database))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), import)
        .await
        .expect("nominatim import finished within 10 minutes")
        .expect("nominatim import");
    assert!(
        out.status.success(),
        "nominatim import failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

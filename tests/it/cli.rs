//! The real `fleetmind` binary, as an operator runs it: migrations, keys,
//! the first start, and what reaches its logs.

use crate::support::keys::DEFAULT_SCOPES;
use crate::support::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_fleetmind");

fn fleetmind(db_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--database-url")
        .arg(db_url)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run fleetmind")
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("fm.db").display())
}

#[test]
fn an_unknown_database_scheme_is_an_error_not_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    for url in ["mysql://root@localhost/fm", "fm.db", "file:fm.db"] {
        let out = Command::new(BIN)
            .current_dir(dir.path())
            .args(["--database-url", url, "migrate"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("unsupported database URL scheme"),
            "{url}: {stderr}"
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// `keys create|list|revoke|rotate` on one backend.
fn key_lifecycle(url: &str) {
    let out = fleetmind(url, &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let created = json_of(&fleetmind(
        url,
        &[
            "keys",
            "create",
            "--email",
            " Grace@Example.com",
            "--name",
            "laptop",
            "--json",
        ],
    ));
    for field in ["api_key", "key_id", "user_id", "email", "scopes"] {
        assert!(created.get(field).is_some(), "missing {field}: {created}");
    }
    assert_eq!(created["email"], "grace@example.com");
    // md5("grace@example.com"), computed with Python's hashlib.
    assert_eq!(created["user_id"], "user_9f528ceb4101");
    assert_eq!(created["scopes"], json!(DEFAULT_SCOPES));
    let key = created["api_key"].as_str().unwrap().to_owned();
    assert!(fleetmind::keys::has_key_shape(&key));

    let admin = json_of(&fleetmind(
        url,
        &[
            "keys",
            "create",
            "--email",
            "grace@example.com",
            "--admin",
            "--expires-in-days",
            "30",
            "--json",
        ],
    ));
    assert_eq!(admin["scopes"], json!(["admin"]));
    assert_eq!(admin["user_id"], created["user_id"]);
    assert!(admin["expires_at"].is_string());

    let read_only = json_of(&fleetmind(
        url,
        &[
            "keys",
            "create",
            "--email",
            "heidi@example.com",
            "--scopes",
            "orders:read,drivers:read",
            "--json",
        ],
    ));
    assert_eq!(read_only["scopes"], json!(["orders:read", "drivers:read"]));

    for (args, expect) in [
        (
            vec![
                "--email",
                "heidi@example.com",
                "--scopes",
                "orders:read,root",
            ],
            "unknown scope",
        ),
        (vec!["--email", "not-an-email"], "email"),
        (
            vec!["--email", "x@example.com", "--expires-in-days", "0"],
            "expires_in_days",
        ),
    ] {
        let mut full = vec!["keys", "create"];
        full.extend(args);
        let out = fleetmind(url, &full);
        assert!(!out.status.success(), "{full:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{full:?}: {stderr}");
    }

    let listed = json_of(&fleetmind(url, &["keys", "list", "--json"]));
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let text = listed.to_string();
    assert!(!text.contains(&key), "list shows a key");
    assert!(
        !text.contains(
            &fleetmind::keys::ApiKey::parse(&key)
                .unwrap()
                .hash()
                .as_hex()
                .to_owned()
        ),
        "list shows a hash"
    );
    assert!(rows.iter().all(|r| r["state"] == "active"));

    let revoked = json_of(&fleetmind(
        url,
        &["keys", "revoke", "--email", "GRACE@example.com", "--json"],
    ));
    assert_eq!(revoked["revoked"].as_array().unwrap().len(), 2);
    let listed = json_of(&fleetmind(
        url,
        &["keys", "list", "--email", "grace@example.com", "--json"],
    ));
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "revoked")
    );

    let rotated = json_of(&fleetmind(
        url,
        &[
            "keys",
            "rotate",
            "--key-id",
            &read_only["key_id"].to_string(),
            "--grace-minutes",
            "5",
            "--json",
        ],
    ));
    assert_eq!(rotated["user_id"], read_only["user_id"]);
    assert_eq!(rotated["scopes"], read_only["scopes"]);
    assert_ne!(rotated["api_key"], read_only["api_key"]);
}

#[test]
fn key_lifecycle_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    key_lifecycle(&sqlite_url(&dir));
}

#[tokio::test]
#[cfg_attr(not(fm_pg), ignore = "Postgres: set FLEETMIND_TEST_PG")]
async fn key_lifecycle_on_postgres() {
    let pg = fresh_pg().await;
    let url = pg.url.clone();
    tokio::task::spawn_blocking(move || key_lifecycle(&url))
        .await
        .unwrap();
}

/// A running `fleetmind serve`, its stdout lines and its stderr file.
struct Served {
    child: Child,
    lines: Vec<String>,
    url: String,
}

fn serve(db_url: &str, stderr: &std::path::Path, log: &str) -> Served {
    serve_with(db_url, stderr, log, &[], &[])
}

/// [`serve`] with more `serve` flags and environment variables.
fn serve_with(
    db_url: &str,
    stderr: &std::path::Path,
    log: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Served {
    let mut child = Command::new(BIN)
        .args(["--database-url", db_url, "serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .envs(envs.iter().copied())
        .env("FLEETMIND_LOG", log)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not print its address: {lines:?}");
        };
        if let Some(url) = line.strip_prefix("FleetMind MCP listening on ") {
            let url = url.trim().to_owned();
            lines.push(line);
            return Served { child, lines, url };
        }
        lines.push(line);
    }
}

fn terminate(mut served: Served) {
    let _ = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status();
    let status = served.child.wait().unwrap();
    assert!(status.success(), "graceful exit, got {status:?}");
}

#[tokio::test]
async fn first_start_prints_one_admin_key_and_logs_keep_secrets_out() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let stderr_path = dir.path().join("stderr.log");
    // Everything this binary can log, at the most talkative level.
    let served = serve(&url, &stderr_path, "trace");
    let printed = served.lines.join("\n");
    let key = printed
        .split_whitespace()
        .find(|w| fleetmind::keys::has_key_shape(w))
        .expect("an admin key is printed on first start")
        .to_owned();
    assert!(printed.contains("claude_desktop_config.json"), "{printed}");
    assert!(printed.contains("mcp-remote"), "{printed}");

    let client = connect(&served.url, &key)
        .await
        .expect("bootstrap key works");
    let (who, _) = call(&client, "whoami", json!({})).await;
    assert_eq!(who["scopes"], json!(["admin"]));
    let _ = client.cancel().await;

    // The key in the query string, a wrong key, and an email on the command line.
    let by_query = connect_url(&format!("{}?api_key={key}&x=1", served.url))
        .await
        .expect("query key");
    let (who, is_error) = call(&by_query, "whoami", json!({})).await;
    assert!(!is_error, "{who}");
    assert_eq!(who["scopes"], json!(["admin"]));
    let _ = by_query.cancel().await;
    let wrong = fleetmind::keys::ApiKey::generate().unwrap();
    assert!(
        connect_url(&format!("{}?api_key={}", served.url, wrong.expose()))
            .await
            .is_err()
    );
    terminate(served);

    let logs = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(!logs.is_empty(), "trace logging produced nothing");
    for secret in [
        key.clone(),
        fleetmind::keys::ApiKey::parse(&key)
            .unwrap()
            .hash()
            .as_hex()
            .to_owned(),
        wrong.expose().to_owned(),
        "admin@localhost".to_owned(),
    ] {
        assert!(!logs.contains(&secret), "a secret reached the logs");
    }
    assert!(!logs.contains("api_key="), "a query key reached the logs");

    // The graceful stop flushed last_used_at; a second start makes no new key.
    let listed = json_of(&fleetmind(&url, &["keys", "list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0]["last_used_at"].is_string(), "{listed}");
    let served = serve(&url, &stderr_path, "info");
    assert!(
        !served.lines.iter().any(|l| l.contains("fm_")),
        "a second start printed a key"
    );
    terminate(served);
}

/// Runs `fleetmind serve` expecting it to exit at once; its stderr.
fn serve_fails(db_url: &str, args: &[&str], envs: &[(&str, &str)]) -> String {
    let mut child = Command::new(BIN)
        .args(["--database-url", db_url, "serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fleetmind serve {args:?} {envs:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{args:?} {envs:?}: exit {status:?}");
    stderr
}

#[test]
fn an_invalid_trusted_proxy_stops_the_start_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    for (args, envs, entry) in [
        (
            vec!["--trusted-proxies", "127.0.0.1,10.0.0.0/33"],
            vec![],
            "10.0.0.0/33",
        ),
        (
            vec![
                "--trusted-proxies",
                "::1",
                "--trusted-proxies",
                "proxy.internal",
            ],
            vec![],
            "proxy.internal",
        ),
        (
            vec![],
            vec![("FLEETMIND_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1:80")],
            "127.0.0.1:80",
        ),
    ] {
        let stderr = serve_fails(&url, &args, &envs);
        assert!(
            stderr.contains(&format!("'{entry}' is not an IP address or CIDR network"))
                && stderr.contains("--trusted-proxies"),
            "{args:?} {envs:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // Refused before the database was opened.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn trusted_proxies_from_the_flag_or_the_environment_reach_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let stderr_path = dir.path().join("stderr.log");
    for (args, envs) in [
        (
            vec!["--trusted-proxies", "127.0.0.1,10.1.0.0/8,::1"],
            vec![],
        ),
        (
            vec![],
            vec![("FLEETMIND_TRUSTED_PROXIES", " 127.0.0.1, 10.1.0.0/8 ,::1")],
        ),
    ] {
        let served = serve_with(&url, &stderr_path, "info", &args, &envs);
        terminate(served);
        let logs = std::fs::read_to_string(&stderr_path).unwrap();
        assert!(
            logs.contains("X-Forwarded-For names the client")
                && logs.contains("127.0.0.1/32,10.0.0.0/8,::1/128"),
            "{args:?} {envs:?}: {logs}"
        );
    }
    // Empty: nobody is trusted, and nothing is said about it.
    let served = serve_with(
        &url,
        &stderr_path,
        "info",
        &[],
        &[("FLEETMIND_TRUSTED_PROXIES", "")],
    );
    terminate(served);
    let logs = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(!logs.contains("X-Forwarded-For"), "{logs}");
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn keys_commands_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["keys", "list"][..],
        &["keys", "create", "--email", "a@example.com"][..],
        &["keys", "revoke", "--key-id", "1"][..],
    ] {
        // The default URL (sqlite://fleetmind.db) in another directory.
        let out = Command::new(BIN)
            .current_dir(dir.path())
            .args(args)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = stderr_of(&out);
        let path = dir.path().join("fleetmind.db");
        assert!(
            stderr.contains(&format!("there is no database at {}", path.display()))
                && stderr.contains("fleetmind migrate")
                && stderr.contains("--database-url"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // `migrate` creates it; then `keys` says which database it used.
    let url = sqlite_url(&dir);
    assert!(fleetmind(&url, &["migrate"]).status.success());
    let out = fleetmind(&url, &["keys", "list"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let file = dir.path().join("fm.db");
    assert!(
        stderr_of(&out).contains(&format!("database: sqlite://{}", file.display())),
        "{}",
        stderr_of(&out)
    );
}

#[tokio::test]
async fn database_errors_name_the_cause_and_mask_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let missing_dir = dir.path().join("no_such_dir").join("x.db");
    let sqlite_missing = format!("sqlite://{}", missing_dir.display());
    let refused = "postgres://fm:s3cret-pw@127.0.0.1:1/fleet".to_owned();
    let mut cases = vec![
        (
            sqlite_missing.clone(),
            vec![
                "unable to open database file".to_owned(),
                format!(
                    "the directory {} does not exist",
                    dir.path().join("no_such_dir").display()
                ),
            ],
        ),
        (
            refused,
            vec![
                "postgres://fm:***@127.0.0.1:1/fleet".to_owned(),
                "127.0.0.1:1".to_owned(),
                "Connection refused".to_owned(),
            ],
        ),
    ];
    // A database that does not exist on a reachable server, and a role
    // that does not exist (what an authentication failure reports too).
    // Cases on a real Postgres server (always under CI, where fm_pg is set).
    if cfg!(fm_pg) {
        let admin = pg_admin_url();
        let base = admin.rsplit_once('/').unwrap().0.to_owned();
        cases.push((
            format!("{base}/fm_test_no_such_db"),
            vec![r#"database "fm_test_no_such_db" does not exist"#.to_owned()],
        ));
        let host = base.rsplit_once('@').unwrap().1.to_owned();
        cases.push((
            format!("postgres://fm_no_such_role:s3cret-pw@{host}/postgres"),
            vec![r#"role "fm_no_such_role" does not exist"#.to_owned()],
        ));
    }
    for (url, expect) in cases {
        for command in ["migrate", "serve"] {
            let url = url.clone();
            let out = tokio::task::spawn_blocking(move || {
                Command::new(BIN)
                    .args(["--database-url", url.as_str(), command])
                    .args(if command == "serve" {
                        &["--bind", "127.0.0.1:0"][..]
                    } else {
                        &[][..]
                    })
                    .env_remove("DATABASE_URL")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap();
            assert!(!out.status.success(), "{command}: started");
            let stderr = stderr_of(&out);
            assert!(stderr.contains("cannot open the database"), "{stderr}");
            for part in &expect {
                assert!(
                    stderr.contains(part.as_str()),
                    "{command}: no {part}: {stderr}"
                );
            }
            assert!(!stderr.contains("s3cret-pw"), "password shown: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
    assert!(!missing_dir.exists());
}

#[test]
fn a_bind_error_names_the_address_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args([
            "--database-url",
            &sqlite_url(&dir),
            "serve",
            "--bind",
            &addr,
        ])
        .env_remove("FLEETMIND_BIND")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}"))
            && stderr.contains("Address already in use")
            && stderr.contains("--bind")
            && stderr.contains("FLEETMIND_BIND"),
        "{stderr}"
    );
}

/// What `keys list|revoke|rotate` say, and their exit codes, on one backend.
fn key_messages(url: &str) {
    let out = fleetmind(url, &["migrate"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let created = json_of(&fleetmind(
        url,
        &[
            "keys",
            "create",
            "--email",
            "ann@example.com",
            "--name",
            "laptop",
            "--json",
        ],
    ));
    let id = created["key_id"].as_i64().unwrap();

    let out = fleetmind(url, &["keys", "list"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "KEY_ID",
            "EMAIL",
            "NAME",
            "PREFIX",
            "STATE",
            "CREATED",
            "LAST_USED",
            "EXPIRES",
            "LIMITS",
            "SCOPES"
        ]
    );
    let row = lines.next().unwrap();
    for cell in [
        id.to_string().as_str(),
        "ann@example.com",
        "laptop",
        created["key_prefix"].as_str().unwrap(),
        "active",
        "orders:read",
    ] {
        assert!(row.contains(cell), "no {cell} in {row}");
    }

    // A key id that matches nothing is an error, not a done revocation.
    let out = fleetmind(url, &["keys", "revoke", "--key-id", "999999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("no active key matched --key-id 999999; nothing was revoked"),
        "{}",
        stderr_of(&out)
    );
    // Without arguments, the usage names both ways to choose keys.
    let out = fleetmind(url, &["keys", "revoke"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("--key-id <KEY_ID>|--email <EMAIL>"),
        "{}",
        stderr_of(&out)
    );

    // Rotation says which key replaced which, and until when the old works.
    let out = fleetmind(
        url,
        &[
            "keys",
            "rotate",
            "--key-id",
            &id.to_string(),
            "--grace-minutes",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let first = said.lines().next().unwrap();
    let new_id = id + 1;
    let prefix =
        format!("rotated key {id} \u{2192} new key {new_id}; key {id} keeps working until ");
    assert!(first.starts_with(&prefix), "{first}");
    let until = first.strip_prefix(&prefix).unwrap();
    let until = chrono::NaiveDateTime::parse_from_str(until, "%Y-%m-%d %H:%M:%S UTC")
        .unwrap_or_else(|e| panic!("{until}: {e}"))
        .and_utc();
    let ahead = until - chrono::Utc::now();
    assert!(
        ahead > chrono::Duration::seconds(30) && ahead <= chrono::Duration::seconds(61),
        "{until}"
    );

    // Revoking by email counts only keys that still work: not a key that
    // a rotation without grace has already retired.
    let second = json_of(&fleetmind(
        url,
        &["keys", "create", "--email", "bo@example.com", "--json"],
    ));
    let out = fleetmind(
        url,
        &[
            "keys",
            "rotate",
            "--key-id",
            &second["key_id"].to_string(),
            "--grace-minutes",
            "0",
            "--json",
        ],
    );
    let successor = json_of(&out);
    let revoked = json_of(&fleetmind(
        url,
        &["keys", "revoke", "--email", "bo@example.com", "--json"],
    ));
    let ids: Vec<i64> = revoked["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [successor["key_id"].as_i64().unwrap()]);
    // Nothing is left to revoke: that is an error too.
    let out = fleetmind(url, &["keys", "revoke", "--email", "bo@example.com"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
}

#[test]
fn key_messages_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    key_messages(&sqlite_url(&dir));
}

#[tokio::test]
#[cfg_attr(not(fm_pg), ignore = "Postgres: set FLEETMIND_TEST_PG")]
async fn key_messages_on_postgres() {
    let pg = fresh_pg().await;
    let url = pg.url.clone();
    tokio::task::spawn_blocking(move || key_messages(&url))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_bootstrap_key_goes_to_a_new_private_file_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let stderr_path = dir.path().join("stderr.log");

    // An existing file is never overwritten, and no key is issued.
    let existing = dir.path().join("existing.key");
    std::fs::write(&existing, "keep me\n").unwrap();
    let stderr = serve_fails(
        &url,
        &["--bootstrap-key-file", existing.to_str().unwrap()],
        &[],
    );
    assert!(
        stderr.contains("--bootstrap-key-file") && stderr.contains("already exists"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me\n");
    let listed = json_of(&fleetmind(&url, &["keys", "list", "--json"]));
    assert_eq!(listed, json!([]));

    // A new file (here from the environment): mode 0600, the key in it,
    // and not on stdout.
    let file = dir.path().join("admin.key");
    let served = serve_with(
        &url,
        &stderr_path,
        "info",
        &[],
        &[("FLEETMIND_BOOTSTRAP_KEY_FILE", file.to_str().unwrap())],
    );
    let printed = served.lines.join("\n");
    let key = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(fleetmind::keys::has_key_shape(&key), "file holds {key:?}");
    assert!(!printed.contains(&key), "the key was printed");
    assert!(
        !served
            .lines
            .iter()
            .any(|l| fleetmind::keys::has_key_shape(l.trim())),
        "a key was printed: {printed}"
    );
    assert!(printed.contains(&file.display().to_string()), "{printed}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let client = connect(&served.url, &key).await.expect("the key works");
    let (who, _) = call(&client, "whoami", json!({})).await;
    assert_eq!(who["scopes"], json!(["admin"]));
    let _ = client.cancel().await;
    // The banner's command works when pasted (from another directory).
    let pasted = printed
        .lines()
        .map(str::trim)
        .find(|l| l.contains(" keys create "))
        .expect("a keys create line")
        .replace("them@example.com", "pasted@example.com");
    terminate(served);
    let out = Command::new("sh")
        .args(["-c", &format!("{pasted} --json")])
        .current_dir(std::env::temp_dir())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{pasted}: {}", stderr_of(&out));

    // A restart with the same setting: the file exists, but no key is
    // needed, so the server starts and leaves the file alone.
    let served = serve_with(
        &url,
        &stderr_path,
        "info",
        &[],
        &[("FLEETMIND_BOOTSTRAP_KEY_FILE", file.to_str().unwrap())],
    );
    terminate(served);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), key);
}

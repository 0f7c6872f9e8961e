//! The console's browser story (issue 12) in headless Chromium, driven
//! through chromedriver (WebDriver), on both backends. Screenshots of each
//! page, 375 px wide and desktop, go to `target/console-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them). The test is compiled as ignored unless `CI` is true or
//! `FLEETMIND_REQUIRE_BROWSER=1` (`build.rs`'s `fm_browser`), so a run
//! without a browser shows it as ignored, never as passed; when it runs, a
//! missing browser fails it.

use crate::support::*;
use fantoccini::{Client, ClientBuilder, Locator};
use fleetmind::scopes::Scopes;
use fleetmind::store::{Db, KeyState};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const CHROMEDRIVER: &str = "chromedriver";
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (375, 800);
const INSTALL: &str = "apt-get install chromium chromium-driver";

fn chromium() -> String {
    std::env::var("FLEETMIND_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// A chromedriver process of this test, killed when dropped.
struct Driver {
    _child: Child,
    url: String,
}

async fn start_driver() -> Driver {
    let chromium = chromium();
    assert!(
        std::path::Path::new(&chromium).exists(),
        "no chromium at {chromium} (FLEETMIND_CHROMIUM): {INSTALL}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("{CHROMEDRIVER} did not start ({err}): {INSTALL}"));
    let url = format!("http://127.0.0.1:{port}");
    let status = format!("{url}/status");
    let up = eventually(Duration::from_secs(20), || {
        let status = status.clone();
        async move {
            reqwest::get(&status)
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    assert!(up, "chromedriver did not start within 20 s");
    Driver { _child: child, url }
}

/// A fresh browser (its own profile) of `size`.
async fn browser(driver: &Driver, size: (u32, u32)) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium(),
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", format!("--window-size={},{}", size.0, size.1)],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session");
    client
        .set_window_size(size.0, size.1)
        .await
        .expect("window size");
    client
}

fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots")
}

/// Saves a screenshot, and checks what every page must do: fit the window
/// without horizontal scrolling, and label every input.
async fn check_page(c: &Client, backend: &str, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let width = c
        .execute("return window.innerWidth", vec![])
        .await
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    std::fs::create_dir_all(screenshot_dir()).unwrap();
    std::fs::write(
        screenshot_dir().join(format!("{backend}-{name}-{width}.png")),
        png,
    )
    .unwrap();
    let scroll: Value = c
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            vec![],
        )
        .await
        .unwrap();
    let (scroll_width, inner) = (scroll[0].as_u64().unwrap(), scroll[1].as_u64().unwrap());
    assert!(
        scroll_width <= inner,
        "{name}: scrolls horizontally at {inner} px ({scroll_width} px wide)"
    );
    let unlabelled: Value = c
        .execute(
            "return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))\
               .filter(function (e) { return !(e.id && document.querySelector('label[for=\"' + e.id + '\"]')) && !e.closest('label'); })\
               .map(function (e) { return e.name || e.id; })",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unlabelled, json!([]), "{name}: inputs without a label");
}

/// Waits until the page's source contains `needle`; the source.
async fn wait_for_text(c: &Client, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let source = c.source().await.unwrap_or_default();
        if source.contains(needle) {
            return source;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "page never showed {needle:?}: {source}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(c: &Client, css: &str, text: &str) {
    let field = c.find(Locator::Css(css)).await.expect(css);
    field.clear().await.ok();
    field.send_keys(text).await.expect(css);
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .expect(css)
        .click()
        .await
        .expect(css);
}

async fn sign_in(c: &Client, base: &str, key: &str) {
    c.goto(&format!("{base}/console")).await.unwrap();
    fill(c, "#api_key", key).await;
    click(c, "form[action='/console/login'] button[type=submit]").await;
    wait_for_text(c, "Create a key").await;
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .expect(css)
        .text()
        .await
        .unwrap()
}

async fn key_count(db: &Db) -> usize {
    db.list_keys(None).await.unwrap().len()
}

/// A page on another origin whose form posts itself to the console.
async fn cross_site_page(target: String) -> String {
    let html = format!(
        "<!doctype html><form method=post action='{target}/console/keys'>\
         <input name=name value=evil><input name=scopes value=orders:read></form>\
         <script>document.forms[0].submit()</script>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

backend_test!(
    #[cfg_attr(
        not(fm_browser),
        ignore = "a browser: set FLEETMIND_REQUIRE_BROWSER=1 (apt-get install chromium chromium-driver)"
    )]
    the_console_in_a_real_browser,
    |t| async move {
        let driver = &start_driver().await;
        let backend = format!("{:?}", t.backend).to_lowercase();
        let backend = backend.as_str();
        let db = t.db.clone();
        let admin = issue_key(&db, "admin@example.com", Some(Scopes::admin())).await;
        let narrow = Scopes::parse_list("orders:read orders:write drivers:read").unwrap();
        let member = issue_key(&db, "member@example.com", Some(narrow)).await;
        let server = start_server(db.clone()).await;
        let base = format!("http://{}", server.addr);
        let http = reqwest::Client::new();

        // The admin signs in, creates an invitation, signs out.
        let a = browser(driver, DESKTOP).await;
        a.goto(&format!("{base}/console")).await.unwrap();
        check_page(&a, backend, "sign-in").await;
        sign_in(&a, &base, admin.api_key.expose()).await;
        check_page(&a, backend, "keys-admin").await;
        fill(&a, "#invite-email", "invitee@example.com").await;
        // Untick all but orders:read and orders:write.
        for scope in [
            "drivers-read",
            "drivers-write",
            "assignments-read",
            "assignments-manage",
        ] {
            click(&a, &format!("#invite-scope-{scope}")).await;
        }
        click(&a, "form[action='/console/invites'] button[type=submit]").await;
        wait_for_text(&a, "Invitation created").await;
        check_page(&a, backend, "invitation").await;
        let link = text_of(&a, "#invite-link").await;
        assert!(
            link.starts_with(&format!("{base}/console/invite/")),
            "{link}"
        );
        click(&a, "form[action='/console/logout'] button[type=submit]").await;
        wait_for_text(&a, "Sign in").await;
        assert!(!a.current_url().await.unwrap().as_str().contains("fm_"));

        // The invitee, in a fresh profile 375 px wide, claims a key.
        let b = browser(driver, PHONE).await;
        b.goto(&link).await.unwrap();
        wait_for_text(&b, "Claim your key").await;
        check_page(&b, backend, "claim").await;
        fill(&b, "#claim-name", "phone").await;
        click(&b, "form button[type=submit]").await;
        let source = wait_for_text(&b, "Claude Desktop").await;
        check_page(&b, backend, "key-shown").await;
        let key = text_of(&b, "#api-key").await;
        assert!(fleetmind::keys::has_key_shape(&key), "no key on the page");
        assert!(source.contains("mcp-remote@0.15.1") && source.contains("?api_key="));
        assert!(!b.current_url().await.unwrap().as_str().contains(&key));
        // The copy button is there once the script ran.
        let hidden = b
            .find(Locator::Css("button[data-copy='api-key']"))
            .await
            .unwrap()
            .attr("hidden")
            .await
            .unwrap();
        assert_eq!(hidden, None, "the copy button stayed hidden");
        // The key works through the real MCP client.
        let client = connect(&server.mcp_url(), &key)
            .await
            .expect("the claimed key connects");
        let (whoami, is_error) = call(&client, "whoami", json!({})).await;
        assert!(!is_error, "{whoami}");
        let _ = client.cancel().await;
        b.goto(&format!("{base}/console/keys")).await.unwrap();
        wait_for_text(&b, "Create a key").await;
        check_page(&b, backend, "keys-invitee").await;
        assert_eq!(
            b.find_all(Locator::Css("#invite-email"))
                .await
                .unwrap()
                .len(),
            0
        );

        // The admin revokes it: /mcp refuses it within 1 s, and the
        // invitee's open session is gone.
        sign_in(&a, &base, admin.api_key.expose()).await;
        a.goto(&format!("{base}/console/keys?email=invitee%40example.com"))
            .await
            .unwrap();
        let claimed = db.list_keys(Some("invitee@example.com")).await.unwrap();
        let claimed = &claimed[0];
        click(
            &a,
            &format!(
                "form[action='/console/keys/{}/revoke'] button",
                claimed.key_id
            ),
        )
        .await;
        let revoked_at = Instant::now();
        let refused = eventually(Duration::from_secs(1), || {
            let (http, url, key) = (http.clone(), server.mcp_url(), key.clone());
            async move { whoami_status(&http, &url, &key).await == 401 }
        })
        .await;
        assert!(
            refused,
            "the revoked key still worked {:?} later",
            revoked_at.elapsed()
        );
        b.goto(&format!("{base}/console/keys")).await.unwrap();
        wait_for_text(&b, "has been revoked").await;
        check_page(&b, backend, "session-ended").await;

        // A cross-site form post is refused and creates nothing.
        let before = key_count(&db).await;
        let evil = cross_site_page(base.clone()).await;
        a.goto(&evil).await.unwrap();
        wait_for_text(&a, "sent from another site").await;
        assert_eq!(key_count(&db).await, before);

        // A non-admin: its own tenant's keys, a narrower key, no invitation,
        // no scope it lacks.
        let c = browser(driver, PHONE).await;
        sign_in(&c, &base, member.api_key.expose()).await;
        check_page(&c, backend, "keys-member").await;
        let source = c.source().await.unwrap();
        assert!(source.contains(&member.record.key_prefix));
        assert!(
            !source.contains(&admin.record.key_prefix) && !source.contains(&claimed.key_prefix)
        );
        assert_eq!(
            c.find_all(Locator::Css("#invite-email"))
                .await
                .unwrap()
                .len(),
            0
        );
        fill(&c, "#key-name", "read only").await;
        click(&c, "#key-scope-orders-write").await;
        click(&c, "#key-scope-drivers-read").await;
        click(&c, "form[action='/console/keys'] button[type=submit]").await;
        wait_for_text(&c, "Key created").await;
        let narrower = text_of(&c, "#api-key").await;
        let record = db
            .key_by_hash(&fleetmind::keys::ApiKey::parse(&narrower).unwrap().hash())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.scopes.to_string(), "orders:read");
        assert_eq!(record.user_id, member.record.user_id);
        let before = key_count(&db).await;
        c.goto(&format!("{base}/console/keys")).await.unwrap();
        wait_for_text(&c, "Create a key").await;
        c.execute(
            "var f = document.querySelector(\"form[action='/console/keys']\");\
         var i = document.createElement('input'); i.type = 'hidden'; i.name = 'scopes';\
         i.value = 'drivers:write'; f.appendChild(i); f.submit();",
            vec![],
        )
        .await
        .unwrap();
        wait_for_text(&c, "cannot grant scopes").await;
        c.goto(&format!("{base}/console/keys")).await.unwrap();
        wait_for_text(&c, "Create a key").await;
        c.execute(
        "var f = document.createElement('form'); f.method = 'post'; f.action = '/console/invites';\
         [['csrf', document.querySelector('input[name=csrf]').value], ['email', 'x@example.com'],\
          ['scopes', 'orders:read']].forEach(function (p) {\
           var i = document.createElement('input'); i.type = 'hidden'; i.name = p[0]; i.value = p[1];\
           f.appendChild(i); });\
         document.body.appendChild(f); f.submit();",
        vec![],
    )
    .await
    .unwrap();
        wait_for_text(&c, "only a key with the admin scope can invite").await;
        assert_eq!(key_count(&db).await, before);
        let member_key = db.key_by_id(member.record.key_id).await.unwrap().unwrap();
        assert_eq!(member_key.state(chrono::Utc::now()), KeyState::Active);

        for client in [a, b, c] {
            let _ = client.close().await;
        }
        server.stop().await;
        drop(t);
    }
);

//! The web console (issue 12) over real HTTP, on both backends: each
//! security point of the issue is one assertion here (the browser story is
//! in `console_browser.rs`; mcp-remote in `tests/e2e/suite.py`).

use crate::support::*;
use fleetmind::app::RunningServer;
use fleetmind::scopes::Scopes;
use fleetmind::store::{Db, KeyState};
use reqwest::header::{CACHE_CONTROL, COOKIE, LOCATION, ORIGIN, SET_COOKIE};

/// A browser-like client on the console: follows no redirects, keeps the
/// session cookie by hand, sends the console's own `Origin` on POSTs.
pub(crate) struct Browser {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) cookie: Option<String>,
}

pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field")
            + 19;
        self.body[at..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// The first `fm_` key shown on the page.
    pub(crate) fn key(&self) -> String {
        let at = self
            .body
            .find("<pre id=\"api-key\">")
            .expect("a key on the page")
            + 18;
        self.body[at..at + 46].to_owned()
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Browser {
    pub(crate) fn new(server: &RunningServer) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap(),
            base: format!("http://{}", server.addr),
            cookie: None,
        }
    }

    pub(crate) async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(cookie) => request.header(COOKIE, cookie.clone()),
            None => request,
        };
        let response = request.send().await.expect("console answers");
        if let Some(set) = response.headers().get(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = Some(pair);
        }
        Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let origin = self.base.clone();
        self.post_from(path, form, Some(&origin)).await
    }

    pub(crate) async fn post_from(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Page {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            );
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        self.send(request).await
    }

    pub(crate) async fn sign_in(&mut self, key: &str) -> Page {
        let page = self.post("/console/login", &[("api_key", key)]).await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.header("location"), "/console/keys");
        self.get("/console/keys").await
    }
}

pub(crate) async fn key_count(db: &Db) -> usize {
    db.list_keys(None).await.unwrap().len()
}

pub(crate) fn assert_page_headers(page: &Page) {
    let csp = page.header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert_eq!(page.header("referrer-policy"), "no-referrer");
}

backend_test!(sign_in_keys_and_the_security_points, |t| async move {
    let db = t.db.clone();
    let admin = issue_key(&db, "admin@example.com", Some(Scopes::admin())).await;
    let narrow = Scopes::parse_list("orders:read orders:write").unwrap();
    let user = issue_key(&db, "user@example.com", Some(narrow)).await;
    let other = issue_key(&db, "other@example.com", None).await;
    let server = start_server(db.clone()).await;
    let mut browser = Browser::new(&server);

    // The sign-in page, with the API's own refusal text.
    let page = browser.get("/console").await;
    assert_eq!(page.status, 200);
    assert_page_headers(&page);
    assert!(page.body.contains("name=\"api_key\"") && page.body.contains("type=\"password\""));
    let page = browser
        .post("/console/login", &[("api_key", "fm_not_a_key")])
        .await;
    assert_eq!(page.status, 401);
    assert!(
        page.body.contains("the API key is malformed"),
        "{}",
        page.body
    );
    assert!(browser.cookie.is_none());

    // A non-admin: its own tenant only, narrower keys only.
    let page = browser.sign_in(user.api_key.expose()).await;
    assert_eq!(page.status, 200);
    assert_page_headers(&page);
    assert!(page.body.contains(&user.record.key_prefix));
    assert!(
        !page.body.contains(&other.record.key_prefix),
        "another tenant's key is listed"
    );
    assert!(!page.body.contains(&admin.record.key_prefix));
    let csrf = page.csrf();
    let before = key_count(&db).await;

    // CSRF token missing → 403, nothing created.
    let page = browser
        .post("/console/keys", &[("name", "x"), ("scopes", "orders:read")])
        .await;
    assert_eq!(page.status, 403);
    // A foreign Origin, token and all → 403, nothing created.
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "x"),
        ("scopes", "orders:read"),
    ];
    let page = browser
        .post_from("/console/keys", &form, Some("http://evil.example"))
        .await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("another site"), "{}", page.body);
    // `Origin: null` (what `Referrer-Policy: no-referrer` makes of a
    // form's origin) passes only as a same-origin fetch.
    let own = browser.base.clone();
    for (origin, site, status) in [
        ("null", None, 403),
        ("null", Some("cross-site"), 403),
        (own.as_str(), Some("same-site"), 403),
    ] {
        let mut request = browser
            .http
            .post(format!("{}/console/keys", browser.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(ORIGIN, origin)
            .body(format!("csrf={csrf}&name=x&scopes=orders%3Aread"));
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        let page = browser.send(request).await;
        assert_eq!(
            page.status, status,
            "Origin {origin}, Sec-Fetch-Site {site:?}"
        );
    }
    // A scope it lacks, another email, an invitation → 403.
    let page = browser
        .post(
            "/console/keys",
            &[("csrf", &csrf), ("scopes", "drivers:write")],
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    let page = browser
        .post(
            "/console/keys",
            &[
                ("csrf", &csrf),
                ("scopes", "orders:read"),
                ("admin", "true"),
            ],
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    let page = browser
        .post(
            "/console/keys",
            &[
                ("csrf", &csrf),
                ("scopes", "orders:read"),
                ("email", "victim@example.com"),
            ],
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    let page = browser
        .post(
            "/console/invites",
            &[
                ("csrf", &csrf),
                ("email", "x@example.com"),
                ("scopes", "orders:read"),
            ],
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    // Another tenant's key id → refused like a missing key, still active.
    let path = format!("/console/keys/{}/revoke", other.record.key_id);
    let page = browser.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 404);
    let path = format!("/console/keys/{}/rotate", other.record.key_id);
    let page = browser
        .post(&path, &[("csrf", &csrf), ("grace_minutes", "0")])
        .await;
    assert_eq!(page.status, 404);
    let still = db.key_by_id(other.record.key_id).await.unwrap().unwrap();
    assert_eq!(still.state(chrono::Utc::now()), KeyState::Active);
    assert_eq!(key_count(&db).await, before, "a refused form created a key");

    // A narrower key: shown once, never cached, with both configurations.
    let page = browser
        .post(
            "/console/keys",
            &[
                ("csrf", &csrf),
                ("name", "reader"),
                ("scopes", "orders:read"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header(CACHE_CONTROL.as_str()), "no-store");
    assert_page_headers(&page);
    let new_key = page.key();
    assert!(page.body.contains("Authorization:${FLEETMIND_AUTH}"));
    assert!(page.body.contains(&format!("/mcp?api_key={new_key}")));
    assert!(page.body.contains("curl -s"));
    assert_eq!(key_count(&db).await, before + 1);
    let created = db.list_keys(Some("user@example.com")).await.unwrap();
    let created = created
        .iter()
        .find(|k| new_key.starts_with(&k.key_prefix))
        .unwrap();
    assert_eq!(created.scopes.to_string(), "orders:read");
    let events = db.key_events(created.key_id).await.unwrap();
    assert_eq!(events[0].event, "created");
    assert_eq!(
        events[0].actor,
        format!("console:key:{}", user.record.key_id)
    );
    assert_eq!(
        whoami_status(&reqwest::Client::new(), &server.mcp_url(), &new_key).await,
        200
    );

    // The cookie never authorises /mcp.
    let answer = reqwest::Client::new()
        .post(server.mcp_url())
        .header(COOKIE, browser.cookie.clone().unwrap())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);

    // Signing out ends the session server-side: the old cookie is dead.
    let cookie = browser.cookie.clone();
    let page = browser.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 303);
    browser.cookie = cookie;
    assert_eq!(browser.get("/console/keys").await.status, 401);

    server.stop().await;
    drop(t);
});

backend_test!(invitations_revocation_and_sessions, |t| async move {
    let db = t.db.clone();
    let admin = issue_key(&db, "admin@example.com", Some(Scopes::admin())).await;
    let server = start_server(db.clone()).await;
    let mut console = Browser::new(&server);
    let page = console.sign_in(admin.api_key.expose()).await;
    let csrf = page.csrf();

    // An invitation: its link shown once, never cached.
    let page = console
        .post(
            "/console/invites",
            &[
                ("csrf", &csrf),
                ("email", "Invitee@Example.com"),
                ("scopes", "orders:read"),
                ("scopes", "drivers:read"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header("cache-control"), "no-store");
    let at = page.body.find("/console/invite/").unwrap();
    let path: String = page.body[at..].split('<').next().unwrap().to_owned();

    // The invitee, in a fresh browser: claims one key, signed in with it.
    let mut invitee = Browser::new(&server);
    let page = invitee.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("invitee@example.com"));
    let page = invitee.post(&path, &[("name", "laptop")]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header("cache-control"), "no-store");
    let key = page.key();
    let http = reqwest::Client::new();
    assert_eq!(whoami_status(&http, &server.mcp_url(), &key).await, 200);
    let record = fleetmind::store::KeyStore::key_by_hash(
        db.as_ref(),
        &fleetmind::keys::ApiKey::parse(&key).unwrap().hash(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(record.scopes.to_string(), "orders:read,drivers:read");
    assert_eq!(record.email, "invitee@example.com");
    let events: Vec<_> = db.key_events(record.key_id).await.unwrap();
    let names: Vec<_> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["created", "invite_claimed"]);
    let invited = db.key_events(admin.record.key_id).await.unwrap();
    assert!(invited.iter().any(|e| e.event == "invited"));
    for event in invited.iter().chain(&events) {
        let detail = event.detail.clone().unwrap_or_default();
        assert!(!detail.contains("invitee@"), "{detail}");
    }
    assert_eq!(invitee.get("/console/keys").await.status, 200);

    // Used → 410, on GET and POST; nothing more issued.
    let before = key_count(&db).await;
    let page = invitee.get(&path).await;
    assert_eq!(page.status, 410);
    assert!(page.body.contains("already been used"));
    assert_eq!(
        Browser::new(&server)
            .post(&path, &[("name", "again")])
            .await
            .status,
        410
    );
    assert_eq!(key_count(&db).await, before);

    // Expired → 410.
    let token = "expired-token-for-the-test";
    let now = chrono::Utc::now().timestamp();
    db.insert_invite(
        &fleetmind::store::console::NewInvite {
            token_hash: hex_sha256(token),
            email: "late@example.com".into(),
            scopes: Scopes::parse_list("orders:read").unwrap(),
            invited_by_key_id: admin.record.key_id,
            invited_by_user: fleetmind::tenant::UserId::new(admin.record.user_id.as_str()),
            created_at: now - 7200,
            expires_at: now - 1,
        },
        "test",
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let page = invitee.get(&format!("/console/invite/{token}")).await;
    assert_eq!(page.status, 410);
    assert!(page.body.contains("expired"));

    // The admin revokes the invitee's key: /mcp refuses it within 1 s,
    // and the invitee's console session is gone.
    let path = format!("/console/keys/{}/revoke", record.key_id);
    let page = console.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let refused = eventually(std::time::Duration::from_secs(1), || {
        let http = http.clone();
        let url = server.mcp_url();
        let key = key.clone();
        async move { whoami_status(&http, &url, &key).await == 401 }
    })
    .await;
    assert!(refused, "the revoked key still works after 1 s");
    let page = invitee.get("/console/keys").await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("revoked"), "{}", page.body);
    let events = db.key_events(record.key_id).await.unwrap();
    let revoked = events.iter().find(|e| e.event == "revoked").unwrap();
    assert_eq!(
        revoked.actor,
        format!("console:key:{}", admin.record.key_id)
    );

    server.stop().await;
    drop(t);
});

#[tokio::test]
async fn the_console_can_be_turned_off() {
    let t = sqlite_db().await;
    let options = fleetmind::app::ServeOptions {
        console: false,
        ..Default::default()
    };
    let server = start_server_with(t.db.clone(), options).await;
    let answer = reqwest::get(format!("http://{}/console", server.addr))
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    assert!(answer.headers().get(LOCATION).is_none());
    server.stop().await;
    drop(t);
}

pub(crate) fn hex_sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

// The `Set-Cookie` of a sign-in: the attributes issue 12 names, `Secure`
// exactly when the public URL is https, and a sign-out that clears it.
backend_test!(
    the_session_cookie_has_the_promised_attributes,
    |t| async move {
        let admin = issue_key(&t.db, "admin@example.com", Some(Scopes::admin())).await;
        for (public_url, secure) in [(None, false), (Some("https://fleet.example.com/mcp"), true)] {
            let options = fleetmind::app::ServeOptions {
                public_url: public_url.map(String::from),
                ..Default::default()
            };
            let server = start_server_with(t.db.clone(), options).await;
            let mut browser = Browser::new(&server);
            let origin = match public_url {
                Some(_) => "https://fleet.example.com".to_owned(),
                None => browser.base.clone(),
            };
            let page = browser
                .post_from(
                    "/console/login",
                    &[("api_key", admin.api_key.expose())],
                    Some(&origin),
                )
                .await;
            assert_eq!(page.status, 303, "{public_url:?}: {}", page.body);
            let cookie = page.header("set-cookie").to_owned();
            let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
            for wanted in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
                assert!(attributes.contains(&wanted), "{public_url:?}: {cookie}");
            }
            assert_eq!(
                attributes.contains(&"Secure"),
                secure,
                "{public_url:?}: {cookie}"
            );
            // The session token is random and long; never the key.
            let value = attributes[0].split_once('=').map(|(_, v)| v).unwrap_or("");
            assert!(value.len() >= 32, "{cookie}");
            assert!(!cookie.contains(admin.api_key.expose()));
            // Signing out sends the cookie back empty and already expired.
            let keys = browser.get("/console/keys").await;
            assert_eq!(keys.status, 200, "{public_url:?}");
            let page = browser
                .post_from("/console/logout", &[("csrf", &keys.csrf())], Some(&origin))
                .await;
            assert_eq!(page.status, 303, "{public_url:?}: {}", page.body);
            let cleared = page.header("set-cookie");
            assert!(
                cleared.contains("Max-Age=0") && cleared.contains("Path=/console"),
                "{cleared}"
            );
            server.stop().await;
        }
    }
);

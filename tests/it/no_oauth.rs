//! What OAuth-minded clients (mcp-remote, the Inspector) meet after a refused
//! key: a `/register` answer that says what is wrong with the key, metadata
//! paths that point to API keys, and, with a good key, no 401 anywhere they
//! probe, so they never start an OAuth sign-in. Both backends, real HTTP.

use crate::support::*;
use fleetmind::store::RevokeTarget;

struct Answer {
    status: u16,
    challenge: Option<String>,
    body: String,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.expect("http");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    Answer {
        status: resp.status().as_u16(),
        challenge,
        body: resp.text().await.unwrap_or_default(),
    }
}

/// The body mcp-remote sends when it tries dynamic client registration.
const REGISTRATION: &str = r#"{"redirect_uris":["http://localhost:3486/oauth/callback"],"token_endpoint_auth_method":"none","client_name":"MCP CLI Proxy"}"#;

async fn register(base: &str, auth: Option<&str>) -> Answer {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/register"))
        .header("content-type", "application/json")
        .body(REGISTRATION);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    send(req).await
}

backend_test!(registration_names_the_key_problem, |t| async move {
    let server = start_server(t.db.clone()).await;
    let base = format!("http://{}", server.addr);

    let missing = register(&base, None).await;
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert_eq!(
        missing.challenge.as_deref(),
        Some(r#"Bearer realm="fleetmind""#)
    );
    assert!(
        missing
            .body
            .contains("refused its API key, which is missing, wrong, revoked or expired")
            && missing.body.contains("Authorization: Bearer fm_")
            && missing.body.contains("fleetmind keys create"),
        "{}",
        missing.body
    );

    let unknown = register(&base, Some("Bearer fm_nope")).await;
    assert_eq!(unknown.status, 401, "{}", unknown.body);
    assert!(
        unknown
            .body
            .contains("API key refused: the API key is malformed"),
        "{}",
        unknown.body
    );

    let revoked = issue_key(&t.db, "erin@example.com", None).await;
    t.db.revoke_keys(
        &RevokeTarget::KeyId(revoked.record.key_id),
        "cli",
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let auth = format!("Bearer {}", revoked.api_key.expose());
    // Revocation shows within the verifier cache's bound.
    eventually(std::time::Duration::from_secs(3), || async {
        register(&base, Some(&auth)).await.body.contains("revoked")
    })
    .await;
    let answer = register(&base, Some(&auth)).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(
        answer
            .body
            .contains("API key refused: the API key has been revoked"),
        "{}",
        answer.body
    );

    let good = issue_key(&t.db, "erin@example.com", None).await;
    let answer = register(&base, Some(&format!("Bearer {}", good.api_key.expose()))).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(answer.body.contains("valid"), "{}", answer.body);
    for text in [&missing.body, &unknown.body, &answer.body] {
        // mcp-remote retries another transport on these substrings.
        for trigger in ["404", "405", "Not Found", "Unauthorized"] {
            assert!(!text.contains(trigger), "{text}");
        }
    }
    server.stop().await;
});

backend_test!(
    a_good_key_meets_no_401_where_clients_probe,
    |t| async move {
        let server = start_server(t.db.clone()).await;
        let base = format!("http://{}", server.addr);
        let issued = issue_key(&t.db, "frank@example.com", None).await;
        let key = issued.api_key.expose();
        let http = reqwest::Client::new();

        // mcp-remote's start-up probe: a session-less GET with its headers.
        // A 401 here would start its OAuth machinery although the key is good.
        for url in [format!("{base}/mcp?api_key={key}"), format!("{base}/mcp")] {
            let answer = send(
                http.get(&url)
                    .header("authorization", format!("Bearer {key}"))
                    .header("accept", "application/json, text/event-stream"),
            )
            .await;
            assert_eq!(answer.status, 405, "{}", answer.body);
        }
        let answer = send(http.get(format!("{base}/mcp?api_key={key}"))).await;
        assert_eq!(answer.status, 405, "query key: {}", answer.body);

        // Without a key the same probe is refused with the challenge.
        let answer = send(http.get(format!("{base}/mcp"))).await;
        assert_eq!(answer.status, 401);

        for path in [
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ] {
            let answer = send(http.get(format!("{base}{path}"))).await;
            assert_eq!(answer.status, 404, "{path}");
            assert!(answer.body.contains("API key"), "{path}: {}", answer.body);
        }
        server.stop().await;
    }
);

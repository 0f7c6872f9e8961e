//! The whole auth matrix over real HTTP on 127.0.0.1, on both backends:
//! header, query, missing, malformed, unknown, revoked, expired, and the key
//! store down (503, never 401).

use crate::support::keys::DEFAULT_SCOPES;
use crate::support::*;
use chrono::{Duration, Utc};
use fleetmind::keys::ApiKey;
use fleetmind::scopes::Scopes;
use fleetmind::store::{NewKey, RevokeTarget};
use serde_json::json;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"auth-matrix","version":"1"}}}"#;

struct Answer {
    status: u16,
    challenge: Option<String>,
    retry_after: Option<String>,
    body: String,
}

/// A raw MCP `initialize` POST, with the key where `how` says.
async fn post(url: &str, auth_header: Option<&str>) -> Answer {
    let client = reqwest::Client::new();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE);
    if let Some(value) = auth_header {
        req = req.header("authorization", value);
    }
    let resp = req.send().await.expect("http");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    };
    let challenge = header("www-authenticate");
    let retry_after = header("retry-after");
    let status = resp.status().as_u16();
    Answer {
        status,
        challenge,
        retry_after,
        body: resp.text().await.unwrap_or_default(),
    }
}

fn assert_invalid_token(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 401, "{what}: {}", answer.body);
    let challenge = answer.challenge.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with(r#"Bearer realm="fleetmind", error="invalid_token""#),
        "{what}: challenge {challenge:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON body");
    assert_eq!(
        body["jsonrpc"], "2.0",
        "{what}: a JSON-RPC error every SDK surfaces"
    );
    assert!(body["id"].is_null(), "{what}");
    assert_eq!(body["error"]["data"]["error"], "invalid_api_key", "{what}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("API key refused"), "{what}: {message}");
}

backend_test!(
    header_and_query_keys_are_accepted_by_the_real_client,
    |t| async move {
        let issued = issue_key(&t.db, "carol@example.com", None).await;
        let server = start_server(t.db.clone()).await;
        let key = issued.api_key.expose();

        let by_header = connect(&server.mcp_url(), key).await.expect("header key");
        let (who, _) = call(&by_header, "whoami", json!({})).await;
        assert_eq!(who["user_id"], issued.record.user_id.as_str());
        assert_eq!(who["scopes"], json!(DEFAULT_SCOPES));

        let by_query = connect_url(&format!("{}?api_key={key}", server.mcp_url()))
            .await
            .expect("query key");
        let (who, _) = call(&by_query, "whoami", json!({})).await;
        assert_eq!(who["user_id"], issued.record.user_id.as_str());

        // The scheme is case-insensitive.
        let lower = post(&server.mcp_url(), Some(&format!("bearer {key}"))).await;
        assert_eq!(lower.status, 200, "{}", lower.body);

        let _ = by_header.cancel().await;
        let _ = by_query.cancel().await;
        server.stop().await;
    }
);

backend_test!(
    missing_key_gets_401_with_a_plain_challenge_and_instructions,
    |t| async move {
        let server = start_server(t.db.clone()).await;
        let answer = post(&server.mcp_url(), None).await;
        assert_eq!(answer.status, 401);
        assert_eq!(
            answer.challenge.as_deref(),
            Some(r#"Bearer realm="fleetmind""#)
        );
        let body: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON body");
        assert_eq!(body["error"]["data"]["error"], "missing_api_key");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("Authorization: Bearer"), "{message}");
        assert!(message.contains("api_key="), "{message}");

        // The real client, sent without a key, is refused.
        assert!(connect_url(&server.mcp_url()).await.is_err());
        server.stop().await;
    }
);

backend_test!(
    malformed_unknown_revoked_and_expired_keys_get_invalid_token,
    |t| async move {
        let server = start_server(t.db.clone()).await;
        let url = server.mcp_url();

        // The right length with one character outside base64url.
        let bad_character = format!("Bearer fm_{}+", "A".repeat(42));
        for malformed in [
            "Bearer nope",
            "Bearer fm_short",
            bad_character.as_str(),
            "Basic Zm06Zm0=",
            "Bearer ' OR 1=1 --",
        ] {
            assert_invalid_token(&post(&url, Some(malformed)).await, malformed);
        }

        let unknown = ApiKey::generate().unwrap();
        assert_invalid_token(
            &post(&url, Some(&format!("Bearer {}", unknown.expose()))).await,
            "unknown",
        );

        let revoked = issue_key(&t.db, "dave@example.com", None).await;
        let ok = post(&url, Some(&format!("Bearer {}", revoked.api_key.expose()))).await;
        assert_eq!(ok.status, 200, "before revocation: {}", ok.body);
        t.db.revoke_keys(
            &RevokeTarget::KeyId(revoked.record.key_id),
            "cli",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        // Revocation must show within the cache's bound (1 s; see BENCHMARKS.md).
        let auth = format!("Bearer {}", revoked.api_key.expose());
        let refused = eventually(std::time::Duration::from_secs(3), || async {
            post(&url, Some(&auth)).await.status == 401
        })
        .await;
        assert!(refused, "revoked key still accepted");
        assert_invalid_token(&post(&url, Some(&auth)).await, "revoked");

        let expired = ApiKey::generate().unwrap();
        t.db.insert_key(&NewKey {
            user_id: "user_expired00000".into(),
            email: "expired@example.com".into(),
            name: None,
            hash: expired.hash(),
            prefix: expired.display_prefix(),
            scopes: Scopes::PREDECESSOR_DEFAULT,
            expires_at: Some(Utc::now() - Duration::seconds(1)),
            created_by: "cli".into(),
            limits: Default::default(),
            created_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
        let answer = post(&url, Some(&format!("Bearer {}", expired.expose()))).await;
        assert_invalid_token(&answer, "expired");
        assert!(answer.challenge.unwrap().contains("expired"));

        // Header and query naming two different keys: refused, not guessed.
        let good = issue_key(&t.db, "erin@example.com", None).await;
        let other = ApiKey::generate().unwrap();
        let both = post(
            &format!("{url}?api_key={}", other.expose()),
            Some(&format!("Bearer {}", good.api_key.expose())),
        )
        .await;
        assert_invalid_token(&both, "conflicting");

        server.stop().await;
    }
);

/// Production is Postgres: when it goes away, a good key gets 503 (so clients
/// keep it), never 401 and never internal text; a malformed key is still 401,
/// which shows the shape check runs before any database work.
#[tokio::test]
#[cfg_attr(not(fm_pg), ignore = "Postgres: set FLEETMIND_TEST_PG")]
async fn key_store_down_gives_503_and_malformed_keys_need_no_query() {
    let t = pg_db().await;
    let issued = issue_key(&t.db, "frank@example.com", None).await;
    let fresh = ApiKey::generate().unwrap();
    let server = start_server(t.db.clone()).await;
    let url = server.mcp_url();

    let name = t.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&pg_admin_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();

    // A key the server has never seen must be looked up, and cannot be.
    let answer = post(&url, Some(&format!("Bearer {}", fresh.expose()))).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.retry_after.as_deref(), Some("5"));
    assert!(answer.challenge.is_none(), "503 must not challenge");
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["error"]["data"]["error"], "unavailable");
    for internal in ["sqlx", "database \"", "SQLSTATE", "fm_test_", "pool"] {
        assert!(
            !answer.body.contains(internal),
            "leaks {internal}: {}",
            answer.body
        );
    }

    // A key that exists but is not cached: also a lookup, also 503, so the
    // client keeps its key instead of discarding it as refused.
    let answer = post(&url, Some(&format!("Bearer {}", issued.api_key.expose()))).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.retry_after.as_deref(), Some("5"));

    let malformed = post(&url, Some("Bearer fm_not-a-key")).await;
    assert_eq!(malformed.status, 401, "{}", malformed.body);

    let health = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 503);
    server.stop().await;
}

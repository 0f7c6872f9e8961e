//! A key retired by rotation is refused with a message that names the key
//! that replaced it and when it stopped working, everywhere a refusal shows:
//! the 401 body, its challenge and the refusal log line. An ordinary
//! expired key still says expired, a revoked one revoked. The real binary
//! (another process, as in production), on both backends.

use crate::support::binary::BinaryServer;
use crate::support::keys::{assert_accepted, raw_initialize};
use crate::support::*;
use chrono::{Duration as TimeDelta, Utc};
use fleetmind::key_admin::{self, IssuedKey};
use fleetmind::keys::ApiKey;
use fleetmind::scopes::Scopes;
use fleetmind::store::{NewKey, RevokeTarget};
use serde_json::Value;
use std::time::Duration;

/// A key that expired an hour ago, never rotated.
async fn expired_key(t: &TestDb) -> ApiKey {
    let api_key = ApiKey::generate().expect("key");
    t.db.insert_key(&NewKey {
        user_id: "user_expired0000".into(),
        email: "late@example.com".into(),
        name: None,
        hash: api_key.hash(),
        prefix: api_key.display_prefix(),
        scopes: Scopes::PREDECESSOR_DEFAULT,
        expires_at: Some(Utc::now() - TimeDelta::hours(1)),
        created_by: "cli".into(),
        limits: Default::default(),
        created_at: chrono::Utc::now(),
    })
    .await
    .expect("insert an expired key");
    api_key
}

/// The 401 of `key`: its JSON-RPC message, its `error_description`, and
/// its challenge.
async fn refusal_of(url: &str, key: &str) -> (String, String, String) {
    let response = raw_initialize(url, key).await;
    assert_eq!(response.status(), 401);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = response.json().await.expect("a JSON body");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    let description = body["error"]["data"]["error_description"]
        .as_str()
        .unwrap_or_default();
    (message.to_owned(), description.to_owned(), challenge)
}

backend_test!(
    a_key_retired_by_rotation_is_refused_as_replaced_and_others_as_before,
    |t| async move {
        let old = issue_key(&t.db, "dispatch@example.com", None).await;
        let gone = issue_key(&t.db, "gone@example.com", None).await;
        let late = expired_key(&t).await;
        let server = BinaryServer::start_with(&t.url, "info", &["--log-format", "json"], &[]).await;
        let url = server.mcp_url();
        // Cached as active before the rotation: the cache must not keep it.
        assert_accepted(&url, old.api_key.expose(), "the key before rotation").await;

        let new: IssuedKey = key_admin::rotate_key(
            t.db.as_ref(),
            old.record.key_id,
            0,
            "cli".into(),
            None,
            chrono::Utc::now(),
        )
        .await
        .expect("rotate with no grace");
        key_admin::revoke(
            t.db.as_ref(),
            RevokeTarget::KeyId(gone.record.key_id),
            "cli",
            chrono::Utc::now(),
        )
        .await
        .expect("revoke");
        let stopped =
            t.db.key_by_id(old.record.key_id)
                .await
                .expect("read the old key")
                .and_then(|k| k.expires_at)
                .expect("the rotated key has an expiry");
        let http = reqwest::Client::new();
        for key in [old.api_key.expose(), gone.api_key.expose()] {
            let refused = eventually(Duration::from_secs(10), || async {
                whoami_status(&http, &url, key).await == 401
            })
            .await;
            assert!(refused, "{:?}: a retired key was still accepted", t.backend);
        }
        assert_accepted(&url, new.api_key.expose(), "the successor").await;

        let replaced = format!(
            "the API key was replaced by rotation (key {}) and stopped working at {} UTC; \
             use the new key",
            new.record.key_id,
            stopped.format("%Y-%m-%d %H:%M")
        );
        let (message, description, challenge) = refusal_of(&url, old.api_key.expose()).await;
        assert!(message.contains(&replaced), "{:?}: {message}", t.backend);
        assert_eq!(description, replaced);
        assert!(challenge.contains(&replaced), "{challenge}");
        assert!(!message.contains("expired"), "{message}");
        // The rmcp client reports a 401 as "Auth required" without the body;
        // clients that show the body (the TypeScript SDK, mcp-remote) show
        // the message above.
        assert!(connect(&url, old.api_key.expose()).await.is_err());

        let (message, description, _) = refusal_of(&url, late.expose()).await;
        assert_eq!(description, "the API key has expired", "{message}");
        assert!(!message.contains("rotation"), "{message}");
        let (message, description, _) = refusal_of(&url, gone.api_key.expose()).await;
        assert_eq!(description, "the API key has been revoked", "{message}");
        assert!(!message.contains("rotation"), "{message}");

        // The refusal log line's reason is the same text, with the old key's prefix.
        let log = server.stop().await.stderr;
        let reasons: Vec<Value> = log
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|line| line["fields"].clone())
            .filter(|fields| fields["reason"].is_string())
            .collect();
        let line = reasons
            .iter()
            .find(|f| f["reason"] == replaced.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "{:?}: no refusal line naming the rotation\n{log}",
                    t.backend
                )
            });
        assert_eq!(line["key.prefix"], old.record.key_prefix.as_str(), "{line}");
        assert!(
            reasons
                .iter()
                .any(|f| f["reason"] == "the API key has expired"
                    && f["key.prefix"] == late.display_prefix().as_str()),
            "{:?}: no refusal line for the expired key\n{log}",
            t.backend
        );
    }
);

//! The real server on 127.0.0.1:0, keys issued the way the CLI does, and
//! a verifier with its change watch (one replica's view of the keys).

use crate::support::eventually;
use fleetmind::app::{self, RunningServer, ServeOptions};
use fleetmind::auth::{UsageRecorder, Verifier};
use fleetmind::clock::Clock;
use fleetmind::key_admin::{self, CreateKey, IssuedKey};
use fleetmind::keys::ApiKey;
use fleetmind::scopes::Scopes;
use fleetmind::store::{Db, KeyRecord, NewKey};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Issues a key through the same path as the CLI.
pub async fn issue_key(db: &Db, email: &str, scopes: Option<Scopes>) -> IssuedKey {
    key_admin::create_key(
        db.as_ref(),
        CreateKey {
            email: email.into(),
            name: None,
            scopes,
            expires_in_days: None,
            created_by: "cli".into(),
            issuer_scopes: None,
            limits: Default::default(),
        },
        chrono::Utc::now(),
    )
    .await
    .expect("issue key")
}

/// The row of a successor to `old` (same tenant, email and scopes, no
/// name, expiry or limits) with the key `successor`, issued `at`: what a
/// test hands to `rotate_key` directly.
pub fn successor_of(
    old: &KeyRecord,
    successor: &ApiKey,
    at: chrono::DateTime<chrono::Utc>,
) -> NewKey {
    NewKey {
        user_id: old.user_id.to_string(),
        email: old.email.clone(),
        name: None,
        hash: successor.hash(),
        prefix: successor.display_prefix(),
        scopes: old.scopes,
        expires_at: None,
        created_by: "cli".into(),
        limits: Default::default(),
        created_at: at,
    }
}

/// The real server on 127.0.0.1:0.
pub async fn start_server(db: Db) -> RunningServer {
    start_server_with(db, ServeOptions::default()).await
}

pub async fn start_server_with(db: Db, options: ServeOptions) -> RunningServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    app::start(listener, db, &options, CancellationToken::new()).expect("start server")
}

/// A verifier with its change watch running and reporting.
pub async fn watched_verifier(db: &Db, shutdown: &CancellationToken) -> Verifier {
    watched_verifier_on(db, shutdown, Clock::system()).await
}

/// [`watched_verifier`] reading `clock`: a test's manual clock ages its
/// cache entries when moved, instead of the test sleeping.
pub async fn watched_verifier_on(db: &Db, shutdown: &CancellationToken, clock: Clock) -> Verifier {
    let verifier = Verifier::new(db.clone(), UsageRecorder::new()).with_clock(clock);
    let _watch = verifier.spawn_watch(shutdown.clone());
    assert!(
        eventually(Duration::from_secs(10), || async {
            verifier.cache().is_watching()
        })
        .await,
        "the change watch never reported in"
    );
    verifier
}

//! The real server on 127.0.0.1:0, and keys issued the way the CLI does.

use fleetmind::app::{self, RunningServer, ServeOptions};
use fleetmind::key_admin::{self, CreateKey, IssuedKey};
use fleetmind::scopes::Scopes;
use fleetmind::store::Db;
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
    )
    .await
    .expect("issue key")
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

//! The web console (issue 12): sign in with a key, list, issue, rotate and
//! revoke keys, invite someone with a one-time link. Server-rendered HTML
//! on the same port as `/mcp`; every page works without JavaScript.
//!
//! Keys are issued, rotated and revoked through [`crate::key_admin`] (the
//! same rules and audit events as the CLI and the admin tools), and checked
//! through the same [`Verifier`](crate::auth::Verifier) and failed-attempt
//! limit as `/mcp`. The session cookie authorises `/console` only.

mod answer;
mod assets;
mod form;
mod invites;
mod keys;
mod limits;
mod login;
mod pages;
mod session;

use crate::auth::AuthLayer;
use crate::clock::Clock;
use crate::edge::host::{HostLayer, HostRules};
use crate::store::Db;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

pub use answer::ConsoleError;

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console(Arc<Inner>);

struct Inner {
    db: Db,
    auth: AuthLayer,
    /// `scheme://host[:port]` of the public URL, when one is configured:
    /// the only `Origin` accepted on a POST, and the base of the links and
    /// configurations shown. Without it, the request's own `Host`.
    public_origin: Option<String>,
    /// The MCP endpoint as configured (`--public-url`), if any.
    public_mcp_url: Option<String>,
    /// Cookies get `Secure` when the public URL is https.
    secure_cookie: bool,
    /// What session age, idleness and invitation expiry are judged by (a
    /// test's manual clock, or the system's).
    clock: Clock,
}

impl Console {
    /// `public_mcp_url` is `serve --public-url` (the MCP endpoint clients use).
    pub fn new(db: Db, auth: AuthLayer, public_mcp_url: Option<String>, clock: Clock) -> Self {
        let public_origin = public_mcp_url.as_deref().and_then(origin_of);
        let secure_cookie = public_origin
            .as_deref()
            .is_some_and(|o| o.starts_with("https://"));
        Self(Arc::new(Inner {
            db,
            auth,
            public_origin,
            public_mcp_url,
            secure_cookie,
            clock,
        }))
    }

    /// Now, in Unix seconds (what the console's tables store).
    fn now(&self) -> i64 {
        self.0.clock.now().timestamp()
    }
}

/// `scheme://authority` of a URL, lower-cased, without a default port.
fn origin_of(url: &str) -> Option<String> {
    let uri: http::Uri = url.trim().parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let host = authority.host().to_ascii_lowercase();
    let default = matches!(
        (scheme.as_str(), authority.port_u16()),
        ("http", Some(80)) | ("https", Some(443))
    );
    Some(match authority.port_u16() {
        Some(port) if !default => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// The console's routes, behind the same `Host` check as `/mcp`.
pub fn router(console: Console, hosts: &[String]) -> Router {
    Router::new()
        .route("/console", get(login::page))
        .route("/console/login", post(login::login))
        .route("/console/logout", post(login::logout))
        .route("/console/keys", get(keys::list).post(keys::create))
        .route("/console/keys/{key_id}/revoke", post(keys::revoke))
        .route("/console/keys/{key_id}/rotate", post(keys::rotate))
        .route("/console/keys/{key_id}/limits", post(keys::set_limits))
        .route("/console/invites", post(invites::create))
        .route(
            "/console/invite/{token}",
            get(invites::claim_page).post(invites::claim),
        )
        .route("/console/console.css", get(assets::css))
        .route("/console/copy.js", get(assets::script))
        // A route layer, so the matched route (not the raw path, which may
        // hold an invitation token) is known when the line is written.
        .route_layer(axum::middleware::from_fn_with_state(
            console.clone(),
            access_line,
        ))
        .with_state(console)
        .layer(axum::middleware::map_response(answer::page_headers))
        // Origins are the console's own business (only its own is accepted,
        // see `session::check_origin`); the Host check is the edge's.
        .layer(HostLayer::new(HostRules::new(hosts, &[])))
}

/// Writes the access line of a console request once it is answered.
async fn access_line(
    axum::extract::State(console): axum::extract::State<Console>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|matched| matched.as_str().to_owned())
        .unwrap_or_default();
    let client = console
        .0
        .auth
        .client(request.extensions(), request.headers());
    let response = next.run(request).await;
    crate::logging::access::console_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
        client,
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_of_the_public_url() {
        assert_eq!(
            origin_of("https://Fleet.Example.com/mcp").as_deref(),
            Some("https://fleet.example.com")
        );
        assert_eq!(
            origin_of("https://fleet.example.com:443/mcp").as_deref(),
            Some("https://fleet.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8787/mcp").as_deref(),
            Some("http://127.0.0.1:8787")
        );
        assert_eq!(origin_of("not a url"), None);
    }
}

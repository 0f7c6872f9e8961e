//! Answers for clients that fall back to OAuth after a refused key.
//!
//! mcp-remote (Claude Desktop's bridge) and the Inspector treat every 401 as
//! "sign in with OAuth": they look for metadata under `/.well-known/`, find
//! none, and try dynamic client registration at `POST /register`, whose
//! answer is the only text the user then sees. So `/register` says what is
//! really wrong with the key, and the metadata paths say that FleetMind takes
//! API keys, not OAuth.

use super::AuthLayer;
use super::layer::{HOW_TO_SEND_A_KEY, bearer_token, refuse};
use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};

/// `POST /register`: the key the client still sends in its header decides
/// the message. mcp-remote resends its headers here, the Inspector does not,
/// and a key from the URL's query never arrives: then all that is known is
/// that the key was refused.
pub async fn registration(State(auth): State<AuthLayer>, req: Request) -> Response {
    let key = req.headers().get(AUTHORIZATION).map(bearer_token);
    // The same per-address limit as /mcp, with the same client address: this
    // path must not become a way around it for someone guessing keys.
    match key {
        Some(Some(key)) => match auth.verify(&key, req.extensions(), req.headers()).await {
            Err(failure) => refuse(failure).await,
            Ok(_) => (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({
                    "error": "registration_not_supported",
                    "error_description": "FleetMind does not use OAuth sign-in. This API key is \
                        valid and is all a client needs: remove the client's OAuth settings and \
                        send the key as 'Authorization: Bearer fm_...' on every request.",
                })),
            )
                .into_response(),
        },
        Some(None) => refuse(super::AuthFailure::Malformed).await,
        None => (
            StatusCode::UNAUTHORIZED,
            [(WWW_AUTHENTICATE, r#"Bearer realm="fleetmind""#)],
            Json(serde_json::json!({
                "error": "api_key_missing_or_wrong",
                "error_description": format!(
                    "FleetMind does not use OAuth sign-in: your MCP client tried it because \
                     FleetMind refused its API key, which is missing, wrong, revoked or expired. \
                     Send a valid key as {HOW_TO_SEND_A_KEY}; an administrator creates keys with \
                     'fleetmind keys create --email you@example.com'."
                ),
            })),
        )
            .into_response(),
    }
}

/// `/.well-known/*`: no OAuth metadata exists; say what to use instead.
pub async fn no_metadata() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "error": "not_found",
            "message": "FleetMind does not use OAuth and publishes no OAuth metadata. \
                Authenticate with an API key: 'Authorization: Bearer fm_...' or '?api_key=fm_...'.",
        })),
    )
        .into_response()
}

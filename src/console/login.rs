//! Signing in and out.

use super::form::Fields;
use super::{Console, ConsoleError, pages};
use crate::auth::AuthFailure;
use crate::keys::ApiKey;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// `GET /console`: the sign-in page.
pub async fn page() -> impl IntoResponse {
    pages::sign_in(None)
}

/// `POST /console/login` (field `api_key`): the key is verified like one
/// sent to `/mcp` (same verifier, same failed-attempt limit per client).
pub async fn login(
    State(console): State<Console>,
    request: Request,
) -> Result<Response, ConsoleError> {
    let (parts, body) = request.into_parts();
    console.check_origin(&parts.headers)?;
    let fields = Fields::read(body).await?;
    let presented = fields.one("api_key").unwrap_or_default();
    if presented.is_empty() {
        return Err(ConsoleError::Refused(AuthFailure::Missing));
    }
    let caller = console
        .0
        .auth
        .verify(presented, &parts.extensions, &parts.headers)
        .await;
    let caller = match caller {
        Ok(caller) => caller,
        Err(failure) => {
            // Answered slowly, as on /mcp: a flood answered at once comes
            // straight back.
            if matches!(failure, AuthFailure::Throttled { .. }) {
                tokio::time::sleep(crate::auth::THROTTLED_ANSWER_DELAY).await;
            }
            return Err(ConsoleError::Refused(failure));
        }
    };
    let hash = ApiKey::parse(presented)
        .map_err(|_| ConsoleError::Refused(AuthFailure::Malformed))?
        .hash();
    let cookie = console.open_session(&caller, hash).await?;
    tracing::info!(user.id = %caller.user_id, key.prefix = %caller.key_prefix, "console: signed in");
    Ok((
        StatusCode::SEE_OTHER,
        [(LOCATION, "/console/keys".to_owned()), (SET_COOKIE, cookie)],
    )
        .into_response())
}

/// `POST /console/logout`: ends the session and clears the cookie.
pub async fn logout(
    State(console): State<Console>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConsoleError> {
    console.check_origin(&headers)?;
    let fields = Fields::read(body).await?;
    if let Ok(signed) = console.signed_in(&headers).await {
        signed.check_csrf(fields.one("csrf"))?;
        console.0.db.delete_session(&signed.token_hash).await?;
    }
    Ok((
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/console".to_owned()),
            (SET_COOKIE, console.cleared_cookie()),
        ],
    )
        .into_response())
}

//! The console's one error type, how each is answered, and the headers
//! every console answer carries.

use super::pages;
use crate::auth::AuthFailure;
use crate::key_admin::KeyAdminError;
use crate::store::StoreError;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// No inline script or style, nothing from elsewhere, no framing, forms
/// only to this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Why a console request was not served.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session, or it ended: the sign-in page (401) with the reason.
    #[error("{0}")]
    SignIn(String),
    /// The key was refused at sign-in or when the session was checked; the
    /// text is the API's own.
    #[error("{}", .0.description())]
    Refused(AuthFailure),
    /// A POST without its CSRF token, from another origin, or a caller
    /// without the right (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The form is wrong; the message names the field (400).
    #[error("{0}")]
    Invalid(String),
    /// A used or expired invitation (410).
    #[error("{0}")]
    Gone(String),
    /// The database is unavailable (503).
    #[error("the key store is unavailable; try again shortly")]
    Unavailable,
    /// Anything else; logged, never shown (500).
    #[error("the console could not do that")]
    Internal,
}

impl From<StoreError> for ConsoleError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => ConsoleError::NotFound(format!("{what} not found")),
            StoreError::Conflict(message) => ConsoleError::Invalid(message),
            err if err.is_outage() => {
                tracing::warn!(error = %err, "console: database unavailable");
                ConsoleError::Unavailable
            }
            err => {
                tracing::error!(error = %err, "console: store error");
                ConsoleError::Internal
            }
        }
    }
}

impl From<KeyAdminError> for ConsoleError {
    fn from(err: KeyAdminError) -> Self {
        match err {
            KeyAdminError::Invalid(message) => ConsoleError::Invalid(message),
            KeyAdminError::Escalation(_) => ConsoleError::Forbidden(err.to_string()),
            KeyAdminError::Store(err) => err.into(),
            KeyAdminError::KeyGen(err) => {
                tracing::error!(error = %err, "console: no randomness for a key");
                ConsoleError::Internal
            }
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, page) = match self {
            ConsoleError::SignIn(_) => (StatusCode::UNAUTHORIZED, pages::sign_in(Some(&message))),
            ConsoleError::Refused(failure) => {
                let status = match failure {
                    AuthFailure::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                    AuthFailure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::UNAUTHORIZED,
                };
                (status, pages::sign_in(Some(&message)))
            }
            ConsoleError::Forbidden(_) => {
                (StatusCode::FORBIDDEN, pages::problem("Refused", &message))
            }
            ConsoleError::NotFound(_) => {
                (StatusCode::NOT_FOUND, pages::problem("Not found", &message))
            }
            ConsoleError::Invalid(_) => (
                StatusCode::BAD_REQUEST,
                pages::problem("Not done", &message),
            ),
            ConsoleError::Gone(_) => (
                StatusCode::GONE,
                pages::problem("Invitation not usable", &message),
            ),
            ConsoleError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                pages::problem("Unavailable", &message),
            ),
            ConsoleError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                pages::problem("Error", &message),
            ),
        };
        (status, page).into_response()
    }
}

/// The headers of every console answer. Nothing the console serves is
/// cached, except its stylesheet and script (which set their own).
pub async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

//! The body of a request refused before it was read (a refused key, Host or
//! Origin), read and dropped before the answer goes out.
//!
//! hyper keeps a keep-alive connection only when the request's body was read
//! to its end; otherwise it closes the connection after the answer, without
//! saying so, and the client's next request on it races the close (a broken
//! pipe). So a small body is read first; one that is too large, of unknown
//! length, or too slow gets `Connection: close`, which well-behaved clients
//! honour instead of reusing the connection.

use axum::body::Body;
use http::header::CONNECTION;
use http::{HeaderValue, Response};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use std::time::Duration;

/// The largest body read for a refusal.
pub const MAX_DRAINED_BYTES: u64 = 64 * 1024;
/// How long a refusal waits for the body.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(1);

/// `answer`, once `body` has been read and dropped; with `Connection: close`
/// when it could not be.
pub async fn after_body<B: HttpBody>(body: B, mut answer: Response<Body>) -> Response<Body> {
    if !drained(body).await {
        answer
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    answer
}

/// True when the whole body was read.
async fn drained<B: HttpBody>(body: B) -> bool {
    if body.is_end_stream() {
        return true;
    }
    // Only a body of known, small length (a chunked one is unbounded).
    match body.size_hint().exact() {
        Some(len) if len <= MAX_DRAINED_BYTES => {}
        _ => return false,
    }
    let mut body = std::pin::pin!(body);
    let read = async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_DEADLINE, read)
        .await
        .unwrap_or(false)
}

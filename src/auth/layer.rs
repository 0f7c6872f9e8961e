//! The tower layer in front of the MCP service.
//!
//! It reads the key from `Authorization: Bearer …` or `?api_key=…`, verifies
//! it, removes it from the request (rmcp and every log after this point never
//! see it), and stores the [`Caller`] in the request extensions. Then the
//! key's limits (issue 13): a request from an address the key does not
//! allow is refused here, before its body is read; for a key whose calls are
//! metered, a [`CallGate`](crate::edge::envelope::CallGate) goes into the
//! extensions, and the envelope check, which parses the body anyway, asks
//! it about each `tools/call` (see `crate::limits::gate`).

use super::client_addr::{ClientAddr, TrustedProxies, request_client};
use super::limiter::THROTTLED_ANSWER_DELAY;
use super::refusal_log::RefusalLog;
use super::{AuthFailure, Caller, Refusal, Verifier};
use crate::edge::answer::{REFUSED, json_rpc_error};
use crate::edge::drain;
use crate::limits::gate::Limits;
use axum::body::Body;
use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Extensions, HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The query parameter the predecessor's clients use.
const QUERY_PARAM: &str = "api_key";

/// How to send a key, mcp-remote's recipe included: for every answer that
/// says no (valid) key arrived.
pub(super) const HOW_TO_SEND_A_KEY: &str = "'Authorization: Bearer fm_...' (mcp-remote: --header \"Authorization:${FLEETMIND_AUTH}\" \
     with FLEETMIND_AUTH=\"Bearer fm_...\") or append '?api_key=fm_...' to the URL";

/// Adds authentication to a service. `/register` uses it too (the same
/// verifier, the same idea of who the client is).
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
    /// Whose `X-Forwarded-For` names the client for the failed-lookup limit.
    proxies: Arc<TrustedProxies>,
    /// The log lines of refused requests (see `refusal_log.rs`).
    refusals: Arc<RefusalLog>,
    /// The keys' rate limits, quotas and address lists.
    limits: Arc<Limits>,
}

impl AuthLayer {
    pub fn new(verifier: Arc<Verifier>, proxies: Arc<TrustedProxies>) -> Self {
        Self {
            verifier,
            proxies,
            refusals: Arc::new(RefusalLog::new()),
            limits: Arc::new(Limits::new(
                crate::clock::Clock::system(),
                None,
                crate::usage::ToolUsage::new(),
            )),
        }
    }

    /// The same layer enforcing `limits` (the server's: its clock, default
    /// rate and usage recorder).
    pub fn with_limits(mut self, limits: Arc<Limits>) -> Self {
        self.limits = limits;
        self
    }

    /// Verifies `key` sent with a request's `extensions` and `headers`,
    /// counted against the request's client address, which is worked out
    /// only on a cache miss (the limiter's case).
    pub(crate) async fn verify(
        &self,
        key: &str,
        extensions: &Extensions,
        headers: &HeaderMap,
    ) -> Result<Caller, AuthFailure> {
        // Refusals here (the console's sign-in, `/register`) are logged and
        // counted like those of `/mcp`.
        self.check(key, extensions, headers)
            .await
            .map_err(|refusal| {
                self.refusals
                    .refused(&refusal, || self.client(extensions, headers));
                refusal.failure
            })
    }

    /// [`AuthLayer::verify`], with the refused key's prefix when known.
    async fn check(
        &self,
        key: &str,
        extensions: &Extensions,
        headers: &HeaderMap,
    ) -> Result<Caller, Refusal> {
        let client = || request_client(&self.proxies, extensions, headers);
        self.verifier.check_from(key, client).await
    }

    /// The request's client address, as worked out with the trusted proxies.
    pub(crate) fn client(&self, extensions: &Extensions, headers: &HeaderMap) -> ClientAddr {
        ClientAddr(request_client(&self.proxies, extensions, headers))
    }
}

impl AuthLayer {
    /// The verifier behind the layer (the console checks sessions' keys
    /// with it).
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: Arc::new(self.clone()),
        }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<AuthLayer>,
}

impl<S, B, ResBody> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was polled ready is the one that serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let outcome = match take_key(&mut req) {
                Ok(key) => auth.check(&key, req.extensions(), req.headers()).await,
                Err(failure) => Err(failure.into()),
            };
            match outcome {
                Ok(caller) => {
                    tracing::debug!(user.id = %caller.user_id, key.prefix = %caller.key_prefix, "authenticated");
                    // For the access line of a tool call.
                    let client = auth.client(req.extensions(), req.headers());
                    if let Some(answer) = auth.limits.refuse_address(&caller, &client) {
                        return Ok(drain::after_body(req.into_body(), *answer).await);
                    }
                    if let Some(gate) = auth.limits.gate(&caller) {
                        req.extensions_mut().insert(gate);
                    }
                    req.extensions_mut().insert(client);
                    req.extensions_mut().insert(caller);
                    let response = inner.call(req).await?;
                    Ok(response.map(Body::new))
                }
                Err(refusal) => {
                    // Counted, and written at most once a second per reason:
                    // anyone can send refused requests as fast as they like.
                    // The address is worked out only for a line written.
                    auth.refusals
                        .refused(&refusal, || auth.client(req.extensions(), req.headers()));
                    let answer = refuse(refusal.failure).await;
                    // Read the unread body first, or hyper drops the
                    // keep-alive connection under the client's next request.
                    Ok(drain::after_body(req.into_body(), answer).await)
                }
            }
        })
    }
}

/// Takes the key out of the request, wherever it was. Both places are
/// cleared even when the key is refused.
fn take_key<B>(req: &mut Request<B>) -> Result<String, AuthFailure> {
    let header = req.headers_mut().remove(AUTHORIZATION);
    let query = take_query_key(req);
    let header = match header {
        None => None,
        Some(value) => Some(bearer_token(&value).ok_or(AuthFailure::Malformed)?),
    };
    match (header, query) {
        (None, None) => Err(AuthFailure::Missing),
        (Some(h), Some(q)) if h != q => Err(AuthFailure::Conflicting),
        (Some(key), _) | (None, Some(key)) => Ok(key),
    }
}

/// `Bearer <token>`, the scheme compared case-insensitively.
pub(super) fn bearer_token(value: &HeaderValue) -> Option<String> {
    let value = value.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// Removes `api_key` from the query string and returns its value.
fn take_query_key<B>(req: &mut Request<B>) -> Option<String> {
    let query = req.uri().query()?;
    if !query
        .split('&')
        .any(|pair| pair.split('=').next() == Some(QUERY_PARAM))
    {
        return None;
    }
    let mut key = None;
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == QUERY_PARAM {
            key.get_or_insert_with(|| value.into_owned());
        } else {
            kept.append_pair(&name, &value);
        }
    }
    let kept = kept.finish();
    let mut parts = req.uri().clone().into_parts();
    let path = req.uri().path();
    let path_and_query = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{kept}")
    };
    parts.path_and_query = path_and_query.parse().ok();
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    key
}

/// Answers a refused request. A throttled one is answered slowly: a flood
/// answered at once comes straight back, while a slow 429 caps each flooding
/// connection at a few requests per second, so valid callers keep the CPU.
pub(crate) async fn refuse(failure: AuthFailure) -> Response<Body> {
    if matches!(failure, AuthFailure::Throttled { .. }) {
        tokio::time::sleep(THROTTLED_ANSWER_DELAY).await;
    }
    refusal(failure)
}

/// The answer to a request that cannot be authenticated.
///
/// The body is a JSON-RPC error with a null id because that is the one shape
/// every MCP client surfaces: the Python SDK replaces any other non-2xx body
/// with "Server returned an error response", the TypeScript SDK prints the body
/// as it is. The OAuth-style code and description ride in `error.data`; the
/// `WWW-Authenticate` challenge carries them for HTTP-level tooling. The
/// message must not contain "404", "405", "Not Found" or "Unauthorized":
/// mcp-remote matches those substrings to pick a different, slower path.
pub(crate) fn refusal(failure: AuthFailure) -> Response<Body> {
    let (status, challenge, code, message) = match failure {
        AuthFailure::Missing => (
            StatusCode::UNAUTHORIZED,
            r#"Bearer realm="fleetmind""#.to_owned(),
            "missing_api_key",
            format!(
                "FleetMind API key missing: no API key was sent. Send it as the header \
                 {HOW_TO_SEND_A_KEY}. An administrator creates keys with \
                 'fleetmind keys create --email you@example.com'."
            ),
        ),
        AuthFailure::Throttled { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            String::new(),
            "too_many_attempts",
            format!(
                "FleetMind: too many requests with unknown API keys came from your address; \
                 no key was checked. Try again in {} with a valid key.",
                crate::plural::count(retry_after_secs, "second")
            ),
        ),
        AuthFailure::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            String::new(),
            "unavailable",
            "FleetMind cannot check API keys right now (its key store is unavailable); \
             your key was not checked. Try again shortly."
                .to_owned(),
        ),
        AuthFailure::Retired { .. } => (
            StatusCode::UNAUTHORIZED,
            format!(
                r#"Bearer realm="fleetmind", error="invalid_token", error_description="{}""#,
                failure.description()
            ),
            "invalid_api_key",
            format!(
                "FleetMind API key refused: {}. If you do not have the new key, ask the \
                 administrator who rotated it.",
                failure.description()
            ),
        ),
        other => (
            StatusCode::UNAUTHORIZED,
            format!(
                r#"Bearer realm="fleetmind", error="invalid_token", error_description="{}""#,
                other.description()
            ),
            "invalid_api_key",
            format!(
                "FleetMind API key refused: {}. Check that the key is copied whole \
                 ('fm_' and 43 more characters, after 'Bearer '); if it was revoked or \
                 expired, ask an administrator for a new one ('fleetmind keys create' or \
                 'fleetmind keys rotate').",
                other.description()
            ),
        ),
    };
    let mut response = json_rpc_error(
        status,
        serde_json::Value::Null,
        REFUSED,
        &message,
        serde_json::json!({
            "error": code,
            "error_description": failure.description(),
        }),
    );
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&challenge)
        && !challenge.is_empty()
    {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    match failure {
        AuthFailure::Unavailable => {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        AuthFailure::Throttled { retry_after_secs } => {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, auth: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        if let Some(auth) = auth {
            builder = builder.header(AUTHORIZATION, auth);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn header_key_any_case_and_removed() {
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let mut req = request("/mcp", Some(&format!("{scheme} fm_abc")));
            assert_eq!(take_key(&mut req).unwrap(), "fm_abc");
            assert!(req.headers().get(AUTHORIZATION).is_none());
        }
    }

    #[test]
    fn query_key_removed_other_params_kept() {
        let mut req = request("/mcp?x=1&api_key=fm_abc&y=a%20b", None);
        assert_eq!(take_key(&mut req).unwrap(), "fm_abc");
        assert_eq!(req.uri().to_string(), "/mcp?x=1&y=a+b");
        let mut req = request("/mcp?api_key=fm_abc", None);
        assert_eq!(take_key(&mut req).unwrap(), "fm_abc");
        assert_eq!(req.uri().to_string(), "/mcp");
    }

    #[test]
    fn missing_conflicting_and_other_schemes() {
        assert_eq!(
            take_key(&mut request("/mcp", None)),
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            take_key(&mut request("/mcp?api_key=fm_a", Some("Bearer fm_b"))),
            Err(AuthFailure::Conflicting)
        );
        assert_eq!(
            take_key(&mut request("/mcp", Some("Basic Zm06eA=="))),
            Err(AuthFailure::Malformed)
        );
        assert_eq!(
            take_key(&mut request("/mcp", Some("Bearer "))),
            Err(AuthFailure::Malformed)
        );
    }

    #[test]
    fn refusals_are_json_rpc_errors_that_name_the_key_and_avoid_client_triggers() {
        for failure in [
            AuthFailure::Missing,
            AuthFailure::Malformed,
            AuthFailure::Unknown,
            AuthFailure::Revoked,
            AuthFailure::Expired,
            AuthFailure::Retired {
                successor_key_id: 8,
                at: chrono::DateTime::UNIX_EPOCH,
            },
            // Successor ids whose digits mcp-remote would take for a 404 or 405.
            AuthFailure::Retired {
                successor_key_id: 14_045,
                at: chrono::DateTime::UNIX_EPOCH,
            },
            AuthFailure::Retired {
                successor_key_id: 404,
                at: chrono::DateTime::UNIX_EPOCH,
            },
            AuthFailure::Conflicting,
            AuthFailure::Unavailable,
        ] {
            let response = refusal(failure);
            let body = json_body(response);
            assert_eq!(body["jsonrpc"], "2.0");
            assert!(body["id"].is_null());
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("API key"), "{failure:?}: {message}");
            // mcp-remote retries on another transport (or re-enters OAuth) when
            // an error message contains these.
            for trigger in [
                "404",
                "405",
                "Not Found",
                "Method Not Allowed",
                "Unauthorized",
            ] {
                assert!(!message.contains(trigger), "{failure:?}: {message}");
            }
        }
    }

    fn json_body(response: Response<Body>) -> serde_json::Value {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = runtime
            .block_on(axum::body::to_bytes(response.into_body(), 64 * 1024))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }
}

//! DNS-rebinding protection: the `Host` (and, when configured, the `Origin`)
//! of every request to `/mcp`, checked before the key so that a foreign page
//! learns nothing about keys, and refused in the same JSON-RPC shape as a
//! refused key. An absolute-form request line (`POST http://other/mcp`)
//! names the host too, and is checked the same way.
//!
//! The rules are rmcp's (a host entry without a port matches any port; an
//! origin entry may end in `:*`), so rmcp's own copy of the check is turned
//! off in `app` and this is the only one.

use super::answer::{REFUSED, json_rpc_error};
use super::drain;
use axum::body::Body;
use axum::extract::Request;
use http::header::{HOST, ORIGIN};
use http::uri::Authority;
use http::{Response, StatusCode, Uri};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Who may call `/mcp`.
#[derive(Debug)]
pub struct HostRules {
    hosts: Vec<Allowed>,
    /// Empty: `Origin` is not checked.
    origins: Vec<AllowedOrigin>,
}

#[derive(Debug, PartialEq)]
struct Allowed {
    host: String,
    port: Option<u16>,
}

#[derive(Debug, PartialEq)]
enum AllowedOrigin {
    Null,
    Tuple {
        scheme: String,
        host: String,
        /// `None`: any port (an entry without a port, or `:*`).
        port: Option<u16>,
    },
}

impl HostRules {
    /// Entries that cannot be parsed are skipped (they could never match).
    pub fn new(hosts: &[String], origins: &[String]) -> Self {
        Self {
            hosts: hosts.iter().filter_map(|h| parse_allowed_host(h)).collect(),
            origins: origins
                .iter()
                .filter_map(|o| parse_allowed_origin(o))
                .collect(),
        }
    }

    /// `Err(answer)` when the request must be refused.
    pub fn check<B>(&self, req: &http::Request<B>) -> Result<(), Box<Response<Body>>> {
        match req.headers().get(HOST) {
            Some(value) => {
                let host = value.to_str().unwrap_or("(not readable)");
                if !self.host_allowed(host) {
                    return Err(refuse_host(host));
                }
            }
            None if req.uri().authority().is_none() => return Err(refuse_host("(none)")),
            None => {}
        }
        // The absolute form names the host the client means; the Host header
        // must not vouch for a different one.
        if let Some(authority) = req.uri().authority()
            && !self.host_allowed(authority.as_str())
        {
            return Err(refuse_host(authority.as_str()));
        }
        if !self.origins.is_empty()
            && let Some(origin) = req.headers().get(ORIGIN)
        {
            let origin = origin.to_str().unwrap_or("(not readable)");
            if !self.origin_allowed(origin) {
                return Err(refuse_origin(origin));
            }
        }
        Ok(())
    }

    fn host_allowed(&self, value: &str) -> bool {
        // Every request passes here: the usual `host[:port]` is compared
        // without allocating; anything else gets the full parse below.
        if let Some((host, port)) = split_plain(value) {
            return self.matches(host, port);
        }
        self.host_allowed_parsed(value)
    }

    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.hosts
            .iter()
            .any(|a| a.host.eq_ignore_ascii_case(host) && a.port.is_none_or(|p| Some(p) == port))
    }

    fn host_allowed_parsed(&self, value: &str) -> bool {
        let Ok(authority) = Authority::try_from(value) else {
            return false;
        };
        let host = normalize_host(authority.host());
        let port = authority.port_u16();
        self.hosts
            .iter()
            .any(|a| a.host == host && a.port.is_none_or(|p| Some(p) == port))
    }

    fn origin_allowed(&self, value: &str) -> bool {
        let value = value.trim();
        if value.eq_ignore_ascii_case("null") {
            return self.origins.contains(&AllowedOrigin::Null);
        }
        let Some((scheme, host, port)) = parse_origin(value) else {
            return false;
        };
        let port = port.or_else(|| default_port(&scheme));
        self.origins.iter().any(|allowed| match allowed {
            AllowedOrigin::Null => false,
            AllowedOrigin::Tuple {
                scheme: s,
                host: h,
                port: p,
            } => *s == scheme && *h == host && p.is_none_or(|p| Some(p) == port),
        })
    }
}

/// The check in front of `/mcp`, as a tower layer (hand-written: cheaper
/// per request than `axum::middleware::from_fn`).
#[derive(Clone)]
pub struct HostLayer(Arc<HostRules>);

impl HostLayer {
    pub fn new(rules: HostRules) -> Self {
        Self(Arc::new(rules))
    }
}

impl<S> Layer<S> for HostLayer {
    type Service = HostCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HostCheck {
            rules: self.0.clone(),
            inner,
        }
    }
}

/// The service [`HostLayer`] produces.
#[derive(Clone)]
pub struct HostCheck<S> {
    rules: Arc<HostRules>,
    inner: S,
}

impl<S> Service<Request> for HostCheck<S>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Checked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match self.rules.check(&req) {
            Ok(()) => Checked::Passed(self.inner.call(req)),
            // Read the unread body first, or hyper drops the connection.
            Err(answer) => Checked::Refused(Box::pin(drain::after_body(req.into_body(), *answer))),
        }
    }
}

/// The inner service's answer, or a refusal (boxed: the rare path).
pub enum Checked<F> {
    Passed(F),
    Refused(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

impl<F> Future for Checked<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>> + Unpin,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Checked::Passed(inner) => Pin::new(inner).poll(cx),
            Checked::Refused(answer) => answer.as_mut().poll(cx).map(Ok),
        }
    }
}

/// `name[:port]` (letters, digits, `.`, `-`) or `[ipv6][:port]`, split
/// without allocating; `None` for anything else. For these the full parse
/// gives the same host (brackets off) and port.
fn split_plain(value: &str) -> Option<(&str, Option<u16>)> {
    let (host, rest, plain) = match value.strip_prefix('[') {
        Some(inner) => {
            let (v6, rest) = inner.split_once(']')?;
            let v6_char = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
            (v6, rest, v6.bytes().all(v6_char))
        }
        None => {
            let (name, rest) = value.split_at(value.find(':').unwrap_or(value.len()));
            let name_char = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
            (name, rest, name.bytes().all(name_char))
        }
    };
    if host.is_empty() || !plain {
        return None;
    }
    if rest.is_empty() {
        return Some((host, None));
    }
    let digits = rest.strip_prefix(':')?;
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((host, Some(digits.parse().ok()?)))
}

fn normalize_host(host: &str) -> String {
    host.trim_matches(['[', ']']).to_ascii_lowercase()
}

fn parse_allowed_host(entry: &str) -> Option<Allowed> {
    let entry = entry.trim();
    if entry.is_empty() {
        return None;
    }
    Some(match Authority::try_from(entry) {
        Ok(a) => Allowed {
            host: normalize_host(a.host()),
            port: a.port_u16(),
        },
        // A bare IPv6 address such as `::1` is not an authority.
        Err(_) => Allowed {
            host: normalize_host(entry),
            port: None,
        },
    })
}

fn parse_origin(value: &str) -> Option<(String, String, Option<u16>)> {
    let uri = Uri::try_from(value).ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    Some((
        scheme,
        normalize_host(authority.host()),
        authority.port_u16(),
    ))
}

fn parse_allowed_origin(entry: &str) -> Option<AllowedOrigin> {
    let entry = entry.trim();
    if entry.eq_ignore_ascii_case("null") {
        return Some(AllowedOrigin::Null);
    }
    if let Some(base) = entry.strip_suffix(":*") {
        let (scheme, host, None) = parse_origin(base)? else {
            return None;
        };
        return Some(AllowedOrigin::Tuple {
            scheme,
            host,
            port: None,
        });
    }
    let (scheme, host, port) = parse_origin(entry)?;
    Some(AllowedOrigin::Tuple { scheme, host, port })
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// At most this much of a refused value is echoed back.
const ECHO_MAX: usize = 100;

fn shorten(value: &str) -> String {
    value.chars().take(ECHO_MAX).collect()
}

fn refuse_host(host: &str) -> Box<Response<Body>> {
    let host = shorten(host);
    tracing::debug!(host = %host, "request refused: Host not allowed");
    Box::new(json_rpc_error(
        StatusCode::FORBIDDEN,
        serde_json::Value::Null,
        REFUSED,
        &format!(
            "FleetMind refused the host '{host}': this server answers only for the hosts \
             set with --allowed-hosts (FLEETMIND_ALLOWED_HOSTS; default localhost, \
             127.0.0.1, ::1). Connect through one of them, or add this host there."
        ),
        serde_json::json!({ "error": "host_not_allowed", "host": host }),
    ))
}

fn refuse_origin(origin: &str) -> Box<Response<Body>> {
    let origin = shorten(origin);
    tracing::debug!(origin = %origin, "request refused: Origin not allowed");
    Box::new(json_rpc_error(
        StatusCode::FORBIDDEN,
        serde_json::Value::Null,
        REFUSED,
        &format!(
            "FleetMind refused the origin '{origin}': browsers may call this server only \
             from the origins set with --allowed-origins (FLEETMIND_ALLOWED_ORIGINS). \
             Add this origin there if it is yours."
        ),
        serde_json::json!({ "error": "origin_not_allowed", "origin": origin }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(hosts: &[&str], origins: &[&str]) -> HostRules {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        HostRules::new(&own(hosts), &own(origins))
    }

    fn request(uri: &str, host: Option<&str>, origin: Option<&str>) -> http::Request<()> {
        let mut b = http::Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        if let Some(o) = origin {
            b = b.header(ORIGIN, o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn the_allocation_free_host_check_agrees_with_the_full_parse() {
        let r = rules(&["localhost", "127.0.0.1:8080", "::1", "Example.COM"], &[]);
        for value in [
            "localhost",
            "LOCALHOST:1",
            "localhost:",
            "localhost:99999",
            "localhost.",
            "127.0.0.1:8080",
            "127.0.0.1:8081",
            "127.0.0.1",
            "[::1]",
            "[::1]:3000",
            "[::2]:3000",
            "[::1",
            "example.com:443",
            "user@localhost",
            "evil.example",
            "local host",
            "",
            ":80",
        ] {
            assert_eq!(
                r.host_allowed(value),
                r.host_allowed_parsed(value),
                "{value:?}"
            );
        }
        assert!(r.host_allowed("LOCALHOST:1"));
        assert!(r.host_allowed("[::1]:3000"));
        assert!(!r.host_allowed("127.0.0.1:8081"));
        assert!(!r.host_allowed("evil.example"));
    }

    #[test]
    fn hosts_match_by_name_and_port_when_the_entry_has_one() {
        let r = rules(
            &["localhost", "127.0.0.1", "::1", "fleet.example.com:8443"],
            &[],
        );
        for ok in [
            "localhost",
            "LOCALHOST:8787",
            "127.0.0.1:1",
            "[::1]:8787",
            "fleet.example.com:8443",
        ] {
            assert!(r.check(&request("/mcp", Some(ok), None)).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "fleet.example.com",
            "fleet.example.com:8444",
            "localhost.evil",
            "",
            "a b",
        ] {
            assert!(
                r.check(&request("/mcp", Some(bad), None)).is_err(),
                "{bad:?}"
            );
        }
        assert!(
            r.check(&request("/mcp", None, None)).is_err(),
            "no Host at all"
        );
    }

    #[test]
    fn an_absolute_uri_naming_another_host_is_refused() {
        let r = rules(&["localhost"], &[]);
        assert!(
            r.check(&request(
                "http://evil.example.com/mcp",
                Some("localhost"),
                None
            ))
            .is_err()
        );
        assert!(
            r.check(&request(
                "http://localhost:8787/mcp",
                Some("localhost"),
                None
            ))
            .is_ok()
        );
        assert!(
            r.check(&request("http://localhost/mcp", None, None))
                .is_ok()
        );
    }

    #[test]
    fn origins_follow_rmcps_rules() {
        let r = rules(
            &["localhost"],
            &["https://app.example.com:443", "http://localhost:*", "null"],
        );
        for ok in [
            "https://app.example.com",
            "https://app.example.com:443",
            "http://localhost:3000",
            "null",
        ] {
            assert!(
                r.check(&request("/mcp", Some("localhost"), Some(ok)))
                    .is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "https://evil.example.com",
            "http://app.example.com",
            "https://app.example.com:8443",
            "garbage",
        ] {
            assert!(
                r.check(&request("/mcp", Some("localhost"), Some(bad)))
                    .is_err(),
                "{bad}"
            );
        }
        // Without configured origins, Origin is not checked.
        let open = rules(&["localhost"], &[]);
        assert!(
            open.check(&request(
                "/mcp",
                Some("localhost"),
                Some("https://evil.example.com")
            ))
            .is_ok()
        );
    }
}

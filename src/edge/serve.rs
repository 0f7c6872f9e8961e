//! The accept loop: hyper's HTTP/1.1 on each connection, with the deadlines
//! of [`super::watch`], a request timeout, and a cap on open connections.
//! It replaces `axum::serve`, which has none of these.

use super::EdgeOptions;
use super::answer::{TIMED_OUT, json_rpc_error};
use super::watch::{Activity, Deadlines, Watched};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::header::RETRY_AFTER;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// What the loop counted, for logs and tests.
#[derive(Debug, Default)]
pub struct EdgeStats {
    /// Connections closed at once because `max_connections` were open.
    pub refused_connections: AtomicU64,
    /// Failed `accept` calls.
    pub accept_errors: AtomicU64,
    /// Connections open now.
    pub open_connections: AtomicU64,
}

/// Counts a connection as open while it lives.
struct Open(Arc<EdgeStats>);

impl Open {
    fn new(stats: &Arc<EdgeStats>) -> Self {
        stats.open_connections.fetch_add(1, Ordering::Relaxed);
        Self(stats.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How often a repeated warning (refused connections, accept errors) is
/// written at most.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// The back-off after a failed accept (too many open files, out of
/// memory…): doubling from the first to the last, so a persistent error
/// never spins.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));
/// How long in-flight requests get to finish once the server stops, beyond
/// the request timeout.
const DRAIN_MARGIN: Duration = Duration::from_secs(2);

/// Serves `router` on `listener` until `shutdown`; then stops accepting,
/// lets in-flight requests finish (bounded by the request timeout) and
/// closes idle connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: EdgeOptions,
    max_connections: usize,
    stats: Arc<EdgeStats>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut refused = Throttle::new("connections refused: --max-connections are open");
    let mut failed = Throttle::new("accepting a connection failed");
    let mut backoff = ACCEPT_BACKOFF.0;
    // Writes what the throttles held back, so a burst's full count is logged.
    let mut summary = tokio::time::interval(WARN_EVERY);
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
            _ = summary.tick() => {
                if let Some(count) = refused.held_back() {
                    tracing::warn!(count, max_connections, "{}", refused.what);
                }
                if let Some(count) = failed.held_back() {
                    tracing::warn!(count, "{}", failed.what);
                }
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = ACCEPT_BACKOFF.0;
                pair
            }
            Err(err) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if let Some(count) = failed.note() {
                    tracing::warn!(error = %err, count, retry_in_ms = backoff.as_millis() as u64, "{}", failed.what);
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closed at once: a flood of connections costs a descriptor for
            // a moment, never one that stays.
            drop(stream);
            stats.refused_connections.fetch_add(1, Ordering::Relaxed);
            if let Some(count) = refused.note() {
                tracing::warn!(count, max_connections, "{}", refused.what);
            }
            continue;
        };
        // Without TCP_NODELAY, small answers wait ~40 ms for Nagle and
        // delayed ACKs.
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            options,
            shutdown.clone(),
            (slot, Open::new(&stats)),
        ));
    }
    drop(listener);
    // Every connection holds a slot until it ends: all slots back means all
    // connections are closed.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let drained = options.request_timeout + DRAIN_MARGIN;
    if tokio::time::timeout(drained, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("stopped with connections still open after the drain deadline");
    }
    Ok(())
}

/// One connection, from accept to close.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    options: EdgeOptions,
    shutdown: CancellationToken,
    _open: (OwnedSemaphorePermit, Open),
) {
    // Until its first byte, a connection costs only its socket and this
    // task: hyper would give it its buffers (some 16 KiB) at once.
    let first_head_by = tokio::time::Instant::now() + options.header_timeout;
    tokio::select! {
        () = shutdown.cancelled() => return,
        ready = tokio::time::timeout_at(first_head_by, stream.readable()) => {
            if !matches!(ready, Ok(Ok(()))) {
                tracing::debug!("connection closed: nothing sent within the header timeout");
                return;
            }
        }
    }
    let activity = Arc::new(Activity::default());
    let deadlines = Deadlines {
        header: options.header_timeout,
        idle: options.idle_timeout,
    };
    let io = TokioIo::new(Watched::new(
        stream,
        activity.clone(),
        deadlines,
        first_head_by,
    ));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let in_service = activity.enter();
        let mut req = req.map(Body::new);
        // The auth layer counts failed key lookups per client address.
        req.extensions_mut().insert(ConnectInfo(peer));
        let call = router.clone().oneshot(req);
        let limit = options.request_timeout;
        async move {
            let answer = match tokio::time::timeout(limit, call).await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => {
                    // The application never answered: counted here.
                    crate::metrics::http_response(StatusCode::SERVICE_UNAVAILABLE);
                    timed_out(limit)
                }
            };
            drop(in_service);
            Ok::<_, Infallible>(answer)
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    // The deadlines are Watched's: hyper's header timeout would also end the
    // wait between requests on a keep-alive connection.
    http.header_read_timeout(None).keep_alive(true);
    // Boxed: inline, hyper's connection state would make every
    // connection's task that large from its accept on, idle or not.
    let mut conn = Box::pin(http.serve_connection(io, service));
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            // Finish the request in flight, if any, then close.
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(options.request_timeout + DRAIN_MARGIN, conn.as_mut()).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
    };
    if let Err(err) = result {
        // Timeouts, resets and malformed requests: the client's business.
        tracing::debug!(error = %err, "connection closed");
    }
}

fn timed_out(limit: Duration) -> Response<Body> {
    let mut response = json_rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::Value::Null,
        TIMED_OUT,
        &format!(
            "FleetMind: the request timed out after {} s and was stopped; try again \
             (the limit is --request-timeout-secs / FLEETMIND_REQUEST_TIMEOUT_SECS).",
            limit.as_secs_f64()
        ),
        serde_json::json!({ "error": "timeout" }),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Counts a repeated event and says when to write it: the first time, then
/// at most once per [`WARN_EVERY`] with the count since the last line.
struct Throttle {
    what: &'static str,
    last: Option<Instant>,
    count: u64,
}

impl Throttle {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            last: None,
            count: 0,
        }
    }

    fn note(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self.last.is_some_and(|last| now - last < WARN_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }

    /// The count not yet written, once the period since the last line is
    /// over.
    fn held_back(&mut self) -> Option<u64> {
        if self.count == 0 || self.last.is_some_and(|last| last.elapsed() < WARN_EVERY) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_warning_is_written_once_then_summed() {
        let mut throttle = Throttle::new("x");
        assert_eq!(throttle.note(), Some(1), "the first one is written");
        assert_eq!(throttle.note(), None);
        assert_eq!(throttle.note(), None);
        assert_eq!(throttle.held_back(), None, "not before the period is over");
        // As if the period were over: the two held back are written.
        throttle.last = Some(Instant::now() - WARN_EVERY);
        assert_eq!(throttle.held_back(), Some(2));
        assert_eq!(throttle.held_back(), None);
    }
}

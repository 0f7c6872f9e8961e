//! The `/metrics` listener: its own address (`--metrics-bind`), so that the
//! figures are never reachable where the MCP clients are, and the same
//! connection loop as the MCP listener (timeouts, a connection cap).

use super::{DB_POOL_CONNECTIONS, DURATION_BUCKETS, TOOL_CALL_DURATION};
use crate::edge::{EdgeOptions, EdgeStats};
use crate::store::Db;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Scrapers open few connections; more are closed at once.
const MAX_CONNECTIONS: usize = 16;
/// How often recorded histogram values are folded into their buckets, so
/// that memory stays flat between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// The media type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's recorder: the `metrics` crate has one global recorder, so
/// it is installed once, by the first listener.
static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// A running `/metrics` listener.
pub struct MetricsServer {
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

/// Installs the recorder (once per process) and serves `GET /metrics` on
/// `listener` until `shutdown`.
pub fn serve(
    listener: TcpListener,
    db: Db,
    shutdown: CancellationToken,
) -> std::io::Result<MetricsServer> {
    let addr = listener.local_addr()?;
    let handle = recorder()?;
    let upkeep = {
        let handle = handle.clone();
        let shutdown = shutdown.clone();
        async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = every.tick() => handle.run_upkeep(),
                }
            }
        }
    };
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(Scrape { handle, db });
    let serving = crate::edge::serve(
        listener,
        router,
        EdgeOptions::default(),
        MAX_CONNECTIONS,
        Arc::new(EdgeStats::default()),
        shutdown,
    );
    let task = tokio::spawn(async move {
        let (served, ()) = tokio::join!(serving, upkeep);
        if let Err(err) = served {
            tracing::error!(error = %err, "the metrics listener stopped");
        }
    });
    Ok(MetricsServer { addr, task })
}

fn recorder() -> std::io::Result<PrometheusHandle> {
    if let Some(handle) = RECORDER.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(TOOL_CALL_DURATION.into()), DURATION_BUCKETS)
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(std::io::Error::other)?;
    describe();
    Ok(RECORDER.get_or_init(|| handle).clone())
}

/// The `# HELP` lines.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(super::HTTP_REQUESTS, "HTTP requests answered, by status");
    describe_counter!(
        super::AUTH_REFUSALS,
        "Requests refused by the key check, by reason"
    );
    describe_counter!(
        super::TOOL_CALLS,
        "MCP tools/call requests, by tool and outcome"
    );
    describe_histogram!(
        TOOL_CALL_DURATION,
        metrics::Unit::Seconds,
        "Time to answer a tools/call, by tool"
    );
    describe_counter!(super::KEY_CACHE_HITS, "Key checks answered from the cache");
    describe_counter!(super::KEY_CACHE_MISSES, "Key checks that were not cached");
    describe_gauge!(DB_POOL_CONNECTIONS, "Database pool connections, by state");
    describe_gauge!(
        super::KEY_WATCH_UP,
        "1 while the store's key change watch is live, else 0"
    );
    // Every reason from the start, at 0: a rate over a series that appears
    // only with its first refusal misses that refusal.
    for reason in super::REFUSAL_REASONS {
        metrics::counter!(super::AUTH_REFUSALS, "reason" => *reason).increment(0);
    }
    metrics::counter!(super::KEY_CACHE_HITS).increment(0);
    metrics::counter!(super::KEY_CACHE_MISSES).increment(0);
}

#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    db: Db,
}

async fn metrics(State(scrape): State<Scrape>) -> impl IntoResponse {
    // The pool's figures are read when asked for, not kept up to date.
    let pool = scrape.db.pool_connections();
    super::db_pool(pool.idle, pool.in_use);
    (
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT))],
        scrape.handle.render(),
    )
}

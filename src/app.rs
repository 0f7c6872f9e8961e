//! Builds the HTTP application and runs it; `main` and the tests start the
//! server the same way.

use crate::auth::{AuthLayer, TrustedProxies, UsageRecorder, Verifier, VerifierOptions, no_oauth};
use crate::clock::Clock;
use crate::console::Console;
use crate::edge::envelope::{EnvelopeCheck, EnvelopeLayer, MAX_BODY_BYTES};
use crate::edge::host::{HostLayer, HostRules};
use crate::edge::{EdgeOptions, EdgeStats, limits};
use crate::limits::gate::Limits;
use crate::mcp::FleetMind;
use crate::routing::Routing;
use crate::store::Db;
use crate::usage::{ToolUsage, UsageFlusher};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::never::NeverSessionManager,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the HTTP side needs to know.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `Host` values accepted on `/mcp` (DNS-rebinding protection). Empty
    /// means the loopback names only.
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s accepted on `/mcp`. Empty: `Origin` is not checked
    /// (the `Host` check and the API key still apply).
    pub allowed_origins: Vec<String>,
    /// How often `last_used_at` and the per-tool usage rollup are written.
    pub usage_flush_interval: Duration,
    /// How long per-tool usage rows are kept (`--usage-retention-days`).
    pub usage_retention: Duration,
    /// Verification cache and failed-attempt limit.
    pub auth: VerifierOptions,
    /// Reverse proxies whose `X-Forwarded-For` names the client for the
    /// failed-attempt limit. Empty: the TCP peer is the client.
    pub trusted_proxies: TrustedProxies,
    /// Connection timeouts, the request timeout and the connection cap.
    pub edge: EdgeOptions,
    /// Whether the web console is served under `/console`.
    pub console: bool,
    /// The MCP URL clients use (`--public-url`): the console's own origin,
    /// and the URL in the configurations it shows.
    pub public_url: Option<String>,
    /// The road engine and geocoder (default: the embedded estimate only).
    pub routing: Arc<Routing>,
    /// The wall clock (a test's manual clock, or the system's).
    pub clock: Clock,
    /// The per-minute limit of keys that have none (`None`: unlimited).
    pub default_rate_limit_per_minute: Option<u32>,
    /// How often each replica adds its rate-limit and quota counts to the
    /// shared ones and reads the others' (`--limits-sync-ms`).
    pub limits_sync_interval: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            usage_flush_interval: Duration::from_secs(60),
            usage_retention: Duration::from_secs(90 * 24 * 3600),
            auth: VerifierOptions::default(),
            trusted_proxies: TrustedProxies::default(),
            edge: EdgeOptions::default(),
            console: true,
            public_url: None,
            routing: Arc::new(Routing::embedded()),
            clock: Clock::system(),
            default_rate_limit_per_minute: None,
            limits_sync_interval: crate::limits::sync::DEFAULT_SYNC_INTERVAL,
        }
    }
}

/// The loopback names accepted when no host is configured.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The application and the background work it needs.
pub struct App {
    pub router: Router,
    tasks: Vec<JoinHandle<()>>,
}

/// Assembles routes, the auth layer and the MCP service. `shutdown` ends
/// the background work and rmcp's handlers: it is cancelled once the
/// requests in flight have been answered (see `serve`).
pub fn build(db: Db, options: &ServeOptions, shutdown: &CancellationToken) -> App {
    let usage = UsageRecorder::new();
    let flusher = usage.spawn_flusher(db.clone(), options.usage_flush_interval, shutdown.clone());
    let verifier = Arc::new(
        Verifier::with_options(db.clone(), usage, options.auth).with_clock(options.clock.clone()),
    );
    // Per-key, per-tool usage: recorded by the MCP handler, written by its
    // own flusher on the same interval (and at shutdown, after the drain).
    let tool_usage = ToolUsage::with_clock(options.clock.clone());
    let tool_flusher = UsageFlusher::new(tool_usage.clone(), db.clone(), options.usage_retention)
        .spawn(options.usage_flush_interval, shutdown.clone());
    let watch = verifier.spawn_watch(shutdown.clone());
    // Per-key limits: checked in memory, synced with the other replicas in
    // the background (see `crate::limits::sync`).
    let limits = Arc::new(Limits::new(
        options.clock.clone(),
        options.default_rate_limit_per_minute,
        tool_usage.clone(),
    ));
    let limit_sync = crate::limits::sync::spawn_sync(
        limits.meters().clone(),
        db.clone(),
        options.clock.clone(),
        options.limits_sync_interval,
        shutdown.clone(),
    );
    let auth = AuthLayer::new(verifier, Arc::new(options.trusted_proxies.clone()))
        .with_limits(limits.clone());
    // Where OAuth-minded clients land after a refused key (see no_oauth).
    let no_oauth = Router::new()
        .route("/register", any(no_oauth::registration))
        .with_state(auth.clone())
        .route("/.well-known/{*path}", any(no_oauth::no_metadata));
    let mut router = routes(
        db.clone(),
        options,
        shutdown,
        auth.clone(),
        tool_usage,
        limits,
    )
    .merge(no_oauth);
    if options.console {
        let console = Console::new(db, auth, options.public_url.clone(), options.clock.clone());
        router = router.merge(crate::console::router(console, &allowed_hosts(options)));
    }
    App {
        router,
        tasks: vec![flusher, tool_flusher, watch, limit_sync],
    }
}

/// rmcp's service behind the envelope check.
pub type McpService = EnvelopeCheck<StreamableHttpService<FleetMind, NeverSessionManager>>;

/// The routes, with `gate` in front of the MCP service: the auth layer, or
/// (only in the `bench-noauth` benchmark build) a fixed caller.
fn routes<L>(
    db: Db,
    options: &ServeOptions,
    shutdown: &CancellationToken,
    gate: L,
    usage: ToolUsage,
    limits: Arc<Limits>,
) -> Router
where
    L: tower::Layer<McpService>,
    L::Service: tower::Service<
            http::Request<axum::body::Body>,
            Response = http::Response<axum::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<http::Request<axum::body::Body>>>::Future: Send + Unpin + 'static,
{
    let hosts = allowed_hosts(options);
    // Stateless with JSON answers: any replica serves any request (no sticky
    // sessions), and no session outlives its request.
    // Host and Origin are checked by `check_host`, before the key; rmcp's
    // copy of that check, after the key, would answer in another shape.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_cancellation_token(shutdown.child_token());
    let host_rules = HostRules::new(&hosts, &options.allowed_origins);
    let server = FleetMind::with_routing(db.clone(), options.routing.clone())
        .with_clock(options.clock.clone())
        .with_usage(usage)
        .with_limits(limits);
    let mcp = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    // In this order: Host/Origin, then the key, then the message's shape
    // (a refused key never gets its body parsed).
    let mcp = tower::ServiceBuilder::new()
        .layer(HostLayer::new(host_rules))
        .layer(gate)
        .layer(EnvelopeLayer)
        .service(mcp);

    Router::new()
        .route("/healthz", get(healthz))
        .with_state(db)
        .route_service("/mcp", mcp)
        .fallback(not_found)
        // Every answer of the application; the edge counts its own (a
        // request that timed out).
        .layer(axum::middleware::map_response(count_status))
}

async fn count_status(response: axum::response::Response) -> axum::response::Response {
    crate::metrics::http_response(response.status());
    response
}

/// The `Host` values accepted: the configured ones, else the loopback names.
fn allowed_hosts(options: &ServeOptions) -> Vec<String> {
    if options.allowed_hosts.is_empty() {
        LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect()
    } else {
        options.allowed_hosts.clone()
    }
}

/// The same application with a fixed caller and no key check, for measuring
/// what authentication costs. Exists only with the `bench-noauth` feature,
/// which the `fleetmind` binary refuses to be built with.
#[cfg(feature = "bench-noauth")]
pub fn start_without_auth_for_benchmarks(
    listener: TcpListener,
    db: Db,
    options: &ServeOptions,
    shutdown: CancellationToken,
    caller: crate::auth::Caller,
) -> std::io::Result<RunningServer> {
    let drained = CancellationToken::new();
    let router = routes(
        db,
        options,
        &drained,
        crate::auth::FixedCallerLayer::new(caller),
        // Recorded like the real server's calls (the cost measured is the
        // same); never written.
        ToolUsage::with_clock(options.clock.clone()),
        // No key, so no limits.
        Arc::new(Limits::new(options.clock.clone(), None, ToolUsage::new())),
    );
    serve(listener, router, options, shutdown, drained, Vec::new())
}

async fn healthz(State(db): State<Db>) -> impl IntoResponse {
    match db.ping().await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok", "database": "ok"})),
        ),
        Err(err) => {
            tracing::warn!(error = %err, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "degraded", "database": "unavailable"})),
            )
        }
    }
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "error": "not_found",
            "message": "FleetMind serves MCP at /mcp and a health check at /healthz.",
        })),
    )
}

/// A server running in this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The connection cap in force (see `edge::limits`).
    pub max_connections: usize,
    /// What the connection loop counted.
    pub stats: Arc<EdgeStats>,
    shutdown: CancellationToken,
    serve: JoinHandle<std::io::Result<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// The MCP endpoint.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Stops accepting, finishes what is in flight, flushes key usage.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.serve.await;
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Waits until the server stops on its own (e.g. its token is cancelled).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self
            .serve
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        for task in self.tasks {
            let _ = task.await;
        }
        result
    }
}

/// Serves the application on `listener` until `shutdown` is cancelled.
pub fn start(
    listener: TcpListener,
    db: Db,
    options: &ServeOptions,
    shutdown: CancellationToken,
) -> std::io::Result<RunningServer> {
    let drained = CancellationToken::new();
    let app = build(db, options, &drained);
    serve(listener, app.router, options, shutdown, drained, app.tasks)
}

fn serve(
    listener: TcpListener,
    router: Router,
    options: &ServeOptions,
    shutdown: CancellationToken,
    drained: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
) -> std::io::Result<RunningServer> {
    let addr = listener.local_addr()?;
    let edge = options.edge;
    let (max_connections, lowered) = limits::connection_cap(
        edge.max_connections,
        limits::raise_file_limit(),
        edge.db_connections,
    );
    if let Some(why) = lowered {
        tracing::warn!("{why}");
    }
    let stats = Arc::new(EdgeStats::default());
    let serving = crate::edge::serve(
        listener,
        router,
        edge,
        max_connections,
        stats.clone(),
        shutdown.clone(),
    );
    // Only once the requests in flight are answered do rmcp's handlers, the
    // key watch and the usage flusher stop (the flusher then writes the
    // last uses).
    let serve = tokio::spawn(async move {
        let result = serving.await;
        drained.cancel();
        result
    });
    Ok(RunningServer {
        addr,
        max_connections,
        stats,
        shutdown,
        serve,
        tasks,
    })
}

//! `fleetmind serve`: opens the database, binds, prints the first admin key
//! on a database without keys, and serves until SIGTERM or Ctrl-C.

use super::database::{self, Missing};
use super::first_key;
use super::{CliError, GlobalArgs};
use crate::app::{self, ServeOptions};
use crate::auth::TrustedProxies;
use crate::clock::Clock;
use crate::edge::EdgeOptions;
use crate::routing::{Routing, RoutingOptions};
use crate::store::{Db, PoolOptions};
use clap::Args;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FLEETMIND_BIND", default_value = "127.0.0.1:8787")]
    pub bind: SocketAddr,
    /// Host names accepted in the Host header, comma-separated (default:
    /// localhost, 127.0.0.1, ::1). Set this for a public deployment.
    #[arg(long, env = "FLEETMIND_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted, comma-separated, e.g. `https://app.example.com:443`.
    #[arg(long, env = "FLEETMIND_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Seconds between writes of keys' last_used_at and of the per-key,
    /// per-tool usage rollup (how soon `keys usage` shows a call).
    #[arg(long, env = "FLEETMIND_USAGE_FLUSH_SECS", default_value_t = 60)]
    pub usage_flush_secs: u64,
    /// Days the per-key, per-tool usage rows are kept; older hours are
    /// pruned by the flusher.
    #[arg(long, env = "FLEETMIND_USAGE_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u64).range(1..=36600))]
    pub usage_retention_days: u64,
    /// Milliseconds between two syncs of the per-key rate-limit and quota
    /// counts with the other replicas (the overshoot bound is one interval
    /// of traffic per replica; see ARCHITECTURE.md).
    #[arg(long, env = "FLEETMIND_LIMITS_SYNC_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub limits_sync_ms: u64,
    /// Tool calls a key may make in any minute when its own
    /// rate_limit_per_minute is none (default: no limit for such keys).
    #[arg(long, env = "FLEETMIND_DEFAULT_RATE_LIMIT_PER_MINUTE", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub default_rate_limit_per_minute: Option<u32>,
    /// The URL clients use, for the setup lines printed on first start
    /// (default: derived from --bind).
    #[arg(long, env = "FLEETMIND_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Serve the web console under /console (sign in with a key; issue,
    /// rotate and revoke keys; invite someone with a one-time link).
    #[arg(long, env = "FLEETMIND_CONSOLE", default_value_t = true,
          action = clap::ArgAction::Set, value_name = "true|false")]
    pub console: bool,
    /// Reverse proxies (addresses, or CIDR networks holding only proxies;
    /// comma-separated, e.g. 127.0.0.1,10.0.4.17,::1) whose X-Forwarded-For
    /// names the client for the limit on unknown keys. Default: none (the
    /// header is ignored).
    #[arg(
        long,
        env = "FLEETMIND_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "ADDR[/BITS]"
    )]
    pub trusted_proxies: Vec<String>,
    /// Seconds a connection has to send a complete request head; a new
    /// connection that sends nothing is closed after it too.
    #[arg(long, env = "FLEETMIND_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,
    /// Seconds an idle keep-alive connection stays open.
    #[arg(long, env = "FLEETMIND_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,
    /// Seconds a request may take; a longer one is stopped and answered 503.
    #[arg(long, env = "FLEETMIND_REQUEST_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,
    /// Most connections open at once; more are closed at once (default:
    /// the open-file limit, raised to its hard limit at start, minus room
    /// for the database and files).
    #[arg(long, env = "FLEETMIND_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// On a database without keys, write the first admin key to this new
    /// file (mode 0600; an existing file is never overwritten) instead of
    /// printing it, so that it stays out of journald and container logs.
    #[arg(long, env = "FLEETMIND_BOOTSTRAP_KEY_FILE", value_name = "PATH")]
    pub bootstrap_key_file: Option<std::path::PathBuf>,
    /// Serve Prometheus metrics at GET /metrics on this address (its own
    /// listener, e.g. 127.0.0.1:9187). Default: no metrics listener.
    #[arg(long, env = "FLEETMIND_METRICS_BIND", value_name = "ADDR")]
    pub metrics_bind: Option<SocketAddr>,
    /// A Valhalla server for routes by road, e.g. http://127.0.0.1:8002
    /// (default: none, routes are the marked straight-line estimate).
    #[arg(long, env = "FLEETMIND_ROUTING_URL")]
    pub routing_url: Option<String>,
    /// A Nominatim server for geocoding, e.g. http://127.0.0.1:8088
    /// (default: none, only "lat,lng" and saved places).
    #[arg(long, env = "FLEETMIND_GEOCODER_URL")]
    pub geocoder_url: Option<String>,
}

pub(super) async fn run(
    global: &GlobalArgs,
    pool: &PoolOptions,
    args: ServeArgs,
) -> Result<(), CliError> {
    // Before anything is opened or printed: a bad entry changes nothing.
    let trusted_proxies = TrustedProxies::parse(&args.trusted_proxies).map_err(|err| {
        CliError::Usage(format!(
            "--trusted-proxies (FLEETMIND_TRUSTED_PROXIES): {err}"
        ))
    })?;
    let routing = Routing::new(&RoutingOptions {
        routing_url: args.routing_url.clone(),
        geocoder_url: args.geocoder_url.clone(),
        ..RoutingOptions::default()
    })
    .map_err(CliError::Usage)?;
    let db = database::open(&global.database_url, pool, Missing::Create).await?;
    tracing::info!(
        database = %database::shown(&global.database_url),
        "database opened"
    );
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|err| {
            CliError::Usage(format!(
                "cannot listen on {}: {err}; choose another address with --bind \
                 (or FLEETMIND_BIND)",
                args.bind
            ))
        })?;
    let addr = listener.local_addr()?;
    let url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/mcp", client_addr(addr)));
    // The one clock of the process: the first key's issue and the server's.
    let clock = Clock::system();
    first_key::bootstrap(
        db.as_ref(),
        args.bootstrap_key_file.as_deref(),
        &url,
        &global.database_url,
        clock.now(),
    )
    .await?;
    let options = ServeOptions {
        allowed_hosts: args.allowed_hosts,
        allowed_origins: args.allowed_origins,
        console: args.console,
        public_url: args.public_url.clone(),
        usage_flush_interval: Duration::from_secs(args.usage_flush_secs.max(1)),
        usage_retention: Duration::from_secs(args.usage_retention_days * 24 * 3600),
        limits_sync_interval: Duration::from_millis(args.limits_sync_ms),
        default_rate_limit_per_minute: args.default_rate_limit_per_minute,
        trusted_proxies,
        edge: EdgeOptions {
            header_timeout: Duration::from_secs(args.header_timeout_secs),
            idle_timeout: Duration::from_secs(args.idle_timeout_secs),
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            max_connections: args
                .max_connections
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            db_connections: global.db_max_connections,
        },
        routing: Arc::new(routing),
        clock,
        ..ServeOptions::default()
    };
    if !options.trusted_proxies.is_empty() {
        tracing::info!(
            trusted_proxies = %options.trusted_proxies,
            "X-Forwarded-For names the client when the peer is one of these"
        );
        if options.trusted_proxies.trusts_a_whole_family() {
            tracing::warn!(
                "a trusted proxy network is /0: any client can choose the address its \
                 failed key lookups are counted against"
            );
        }
    }
    let shutdown = CancellationToken::new();
    // Before the application, so that its first figures are recorded.
    let metrics = match args.metrics_bind {
        Some(bind) => Some(serve_metrics(bind, db.clone(), shutdown.clone()).await?),
        None => None,
    };
    let server = app::start(listener, db, &options, shutdown.clone())?;
    let signal = shutdown_signal();
    println!("FleetMind MCP listening on {url}");
    tracing::info!(
        %addr,
        max_connections = server.max_connections,
        header_timeout_secs = args.header_timeout_secs,
        idle_timeout_secs = args.idle_timeout_secs,
        request_timeout_secs = args.request_timeout_secs,
        "serving"
    );
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    server.wait().await?;
    if let Some(metrics) = metrics {
        let _ = metrics.task.await;
    }
    Ok(())
}

/// Starts the `/metrics` listener on `bind`.
async fn serve_metrics(
    bind: SocketAddr,
    db: Db,
    shutdown: CancellationToken,
) -> Result<crate::metrics::MetricsServer, CliError> {
    let listener = tokio::net::TcpListener::bind(bind).await.map_err(|err| {
        CliError::Usage(format!(
            "cannot listen for metrics on {bind} (--metrics-bind / FLEETMIND_METRICS_BIND): {err}"
        ))
    })?;
    let server = crate::metrics::serve(listener, db, shutdown)?;
    tracing::info!(addr = %server.addr, "serving Prometheus metrics at /metrics");
    Ok(server)
}

/// An address a local client can dial: a wildcard bind becomes loopback.
fn client_addr(addr: SocketAddr) -> SocketAddr {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// Installs the SIGTERM/Ctrl-C handlers now (so a signal that arrives right
/// after start-up is not fatal) and returns a future that resolves on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}

//! Benchmark only: the FleetMind server with a fixed caller and no key
//! check, to measure what authentication costs (bench/load.sh runs it beside
//! the real binary). Needs `--features bench-noauth`; the `fleetmind` binary
//! cannot be built with that feature.
//!
//!     cargo run --release --example bench_noauth --features bench-noauth -- \
//!         DATABASE_URL BIND_ADDR USER_ID

use fleetmind::app::{self, ServeOptions};
use fleetmind::auth::{Caller, Identity};
use fleetmind::scopes::Scopes;
use fleetmind::store::{self, PoolOptions};
use fleetmind::tenant::UserId;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

// The same allocator as the real binary, so that only the key check differs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("info,rmcp=warn,sqlx=warn"))
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(bind), Some(user)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: bench_noauth DATABASE_URL BIND_ADDR USER_ID".into());
    };
    let max_connections = std::env::var("FLEETMIND_DB_MAX_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PoolOptions::default().max_connections);
    let db = store::open(
        &url,
        &PoolOptions {
            max_connections,
            ..PoolOptions::default()
        },
    )
    .await?;
    let caller = Caller::new(Identity {
        user_id: UserId::new(user),
        key_id: 0,
        key_prefix: "fm_benchmark".into(),
        scopes: Scopes::admin(),
        expires_at: None,
        limits: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let shutdown = CancellationToken::new();
    let server = app::start_without_auth_for_benchmarks(
        listener,
        db,
        &ServeOptions::default(),
        shutdown.clone(),
        caller,
    )?;
    println!(
        "bench_noauth (NO AUTHENTICATION) listening on {}",
        server.mcp_url()
    );
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
    });
    server.wait().await?;
    Ok(())
}

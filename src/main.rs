use clap::Parser;
use fleetmind::cli::{self, Cli};

// The release binary must never be able to skip the key check: the
// benchmark-only no-auth build lives in examples/bench_noauth.rs.
#[cfg(feature = "bench-noauth")]
compile_error!("the fleetmind binary cannot be built with the bench-noauth feature");

// malloc/free are about a third of the CPU of a tool call; mimalloc makes
// them cheaper (measured in BENCHMARKS.md against a `system-alloc` build).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The filter is the operator's, but some libraries are always capped so
    // that no level prints keys or emails (see `logging`).
    // Held to the end: dropping it writes the lines still buffered.
    let _log = fleetmind::logging::init(&cli.global.log, cli.global.log_format);
    // One log line per panic, never a backtrace on stderr per call.
    fleetmind::mcp::install_panic_hook();
    match cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

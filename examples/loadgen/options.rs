//! Command-line options.

use clap::Parser;
use std::time::Duration;

/// Drives `tools/call` over HTTP/1.1 keep-alive and prints one line:
/// rps= p50_ms= p99_ms= errors= [server_cpu=] client_cpu=
#[derive(Debug, Clone, Parser)]
pub struct Options {
    /// The MCP endpoint, e.g. http://127.0.0.1:8787/mcp.
    pub url: String,
    /// The fm_ key sent on every request.
    #[arg(long)]
    pub key: String,
    #[arg(long, default_value = "whoami")]
    pub tool: String,
    /// The tool's arguments, a JSON object.
    #[arg(long, default_value = "{}")]
    pub args: String,
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
    /// Measured seconds.
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub duration: Duration,
    /// Unmeasured seconds before.
    #[arg(long, default_value = "2", value_parser = seconds)]
    pub warmup: Duration,
    /// Stop after this many requests in all.
    #[arg(long, default_value_t = u64::MAX)]
    pub max_requests: u64,
    /// Also report the CPU used by the server process with this PID.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

fn seconds(value: &str) -> Result<Duration, String> {
    let s: f64 = value
        .parse()
        .map_err(|_| format!("not a number: {value}"))?;
    Duration::try_from_secs_f64(s).map_err(|_| format!("not a duration: {value}"))
}

//! The HTTP edge: the connection loop (timeouts, a cap on connections), the
//! `Host`/`Origin` check that runs before the key check, the look at the
//! JSON-RPC envelope, and the one shape of every refusal.

pub mod answer;
pub mod drain;
pub mod envelope;
pub mod host;
pub mod limits;
mod serve;
mod watch;

pub use serve::{EdgeStats, serve};

use std::time::Duration;

/// The connection settings (`serve --header-timeout-secs` and friends).
#[derive(Debug, Clone, Copy)]
pub struct EdgeOptions {
    /// A connection must send a complete request head within this (a new
    /// one that sends nothing is closed after it too).
    pub header_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub idle_timeout: Duration,
    /// A request that takes longer gets 503.
    pub request_timeout: Duration,
    /// At most this many connections are open; `None`: derived from the
    /// open-file limit (see [`limits::connection_cap`]).
    pub max_connections: Option<usize>,
    /// Database connections the file limit must leave room for.
    pub db_connections: u32,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_connections: None,
            db_connections: 8,
        }
    }
}

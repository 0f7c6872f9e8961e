//! A TCP proxy on 127.0.0.1 that can turn into a blackhole, to put a silent
//! network partition between the server and Postgres.
//!
//! In the blackhole every connection, open or new, still accepts bytes but
//! forwards nothing and closes nothing, in either direction: what a firewall
//! dropping packets looks like to both ends. After [`Proxy::heal`] new
//! connections forward again, but the ones that were cut stay cut (their
//! bytes were lost, so their protocol state is gone), as after a real
//! partition: whoever holds them must give up on them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Odd: blackhole; even: forwarding. A connection is cut once the state
/// differs from the one it was accepted in (each heal moves on by one).
#[derive(Default)]
struct State(AtomicU64);

impl State {
    fn cut(&self, accepted_in: u64) -> bool {
        let now = self.0.load(Ordering::SeqCst);
        now != accepted_in || now % 2 == 1
    }
}

pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<free port> to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            // Dropped with this task, which aborts every connection's pumps.
            let mut pumps = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let accepted_in = shared.0.load(Ordering::SeqCst);
                let state = shared.clone();
                pumps.spawn(async move {
                    let upstream = if state.cut(accepted_in) {
                        None
                    } else {
                        TcpStream::connect(upstream).await.ok()
                    };
                    let (client_read, client_write) = client.into_split();
                    match upstream {
                        Some(up) => {
                            let (up_read, up_write) = up.into_split();
                            tokio::join!(
                                pump(client_read, Some(up_write), &state, accepted_in),
                                pump(up_read, Some(client_write), &state, accepted_in),
                            );
                        }
                        // Accepted in the blackhole: swallow, never answer.
                        // (`pump` never returns once cut, so `client_write`
                        // stays open as long as the proxy lives.)
                        None => {
                            pump(client_read, None, &state, accepted_in).await;
                            drop(client_write);
                        }
                    }
                });
                while pumps.try_join_next().is_some() {}
            }
        });
        Self { addr, state, task }
    }

    /// From now on nothing is forwarded and nothing is closed.
    pub fn blackhole(&self) {
        let _ = self
            .state
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                (s % 2 == 0).then_some(s + 1)
            });
    }

    /// New connections forward again; the cut ones stay cut.
    pub fn heal(&self) {
        let _ = self
            .state
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                (s % 2 == 1).then_some(s + 1)
            });
    }

    /// `url` (a postgres:// URL naming 127.0.0.1:5432 or localhost:5432)
    /// through this proxy.
    pub fn url_through(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).expect("database URL");
        parsed.set_host(Some("127.0.0.1")).expect("host");
        parsed.set_port(Some(self.addr.port())).expect("port");
        parsed.to_string()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` until either ends, or, once the connection is cut,
/// reads and drops everything without ever closing `to`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: Option<tokio::net::tcp::OwnedWriteHalf>,
    state: &State,
    accepted_in: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if state.cut(accepted_in) {
            continue;
        }
        if let Some(out) = to.as_mut()
            && out.write_all(&buf[..n]).await.is_err()
        {
            break;
        }
    }
    if state.cut(accepted_in) {
        // A silent partition closes nothing: hold the other side open.
        std::future::pending::<()>().await;
    }
    if let Some(mut out) = to {
        let _ = out.shutdown().await;
    }
}

/// The address of a database URL's host and port (for the proxy's upstream).
pub fn upstream_of(url: &str) -> SocketAddr {
    let parsed = url::Url::parse(url).expect("database URL");
    let host = match parsed.host_str() {
        Some("localhost") | None => "127.0.0.1",
        Some(h) => h,
    };
    let port = parsed.port().unwrap_or(5432);
    format!("{host}:{port}").parse().expect("upstream address")
}

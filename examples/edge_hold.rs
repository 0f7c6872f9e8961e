//! Holds idle and slowloris connections open against a loopback server, for
//! bench/edges.sh: what an attacker without a key can do to the connection
//! table while valid clients are measured.
//!
//!     cargo run --release --example edge_hold -- 127.0.0.1:8787 \
//!         [--idle 2000] [--slow 200] [--seconds 40] [--reconnect]
//!
//! `idle` connections send nothing; `slow` ones send a request line and then
//! one header byte per second, never finishing the head. With `--reconnect`
//! a connection the server closes is opened again at once (the attacker
//! keeps the pressure on). Every 5 s one line:
//!
//!     t=5 idle_open=2000 slow_open=200 closed_by_server=0 connect_errors=0
//!
//! Only for loopback servers: the address must be 127.0.0.1.

use clap::Parser;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Options {
    addr: SocketAddr,
    #[arg(long, default_value_t = 2000)]
    idle: u32,
    #[arg(long, default_value_t = 200)]
    slow: u32,
    #[arg(long, default_value_t = 40)]
    seconds: u64,
    #[arg(long)]
    reconnect: bool,
}

#[derive(Default)]
struct Counts {
    idle_open: AtomicU64,
    slow_open: AtomicU64,
    closed_by_server: AtomicU64,
    connect_errors: AtomicU64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = Options::parse();
    if !options.addr.ip().is_loopback() {
        return Err("edge_hold only targets loopback addresses".into());
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(options));
    Ok(())
}

async fn run(options: Options) {
    let counts = Arc::new(Counts::default());
    let until = Instant::now() + Duration::from_secs(options.seconds);
    let mut tasks = Vec::new();
    for i in 0..options.idle + options.slow {
        let slow = i >= options.idle;
        let counts = counts.clone();
        let (addr, reconnect) = (options.addr, options.reconnect);
        tasks.push(tokio::spawn(async move {
            loop {
                let open = if slow {
                    &counts.slow_open
                } else {
                    &counts.idle_open
                };
                let Ok(Ok(stream)) =
                    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
                else {
                    counts.connect_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if Instant::now() >= until {
                        return;
                    }
                    continue;
                };
                open.fetch_add(1, Ordering::Relaxed);
                let closed = hold(stream, slow, until).await;
                open.fetch_sub(1, Ordering::Relaxed);
                if closed {
                    counts.closed_by_server.fetch_add(1, Ordering::Relaxed);
                }
                if !closed || !reconnect || Instant::now() >= until {
                    // Without --reconnect a closed connection stays closed
                    // until the end.
                    if closed && !reconnect {
                        tokio::time::sleep_until(until.into()).await;
                    }
                    return;
                }
            }
        }));
        // Spread the connects a little so the listen backlog keeps up.
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let started = Instant::now();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(5).min(until - Instant::now())).await;
        println!(
            "t={} idle_open={} slow_open={} closed_by_server={} connect_errors={}",
            started.elapsed().as_secs(),
            counts.idle_open.load(Ordering::Relaxed),
            counts.slow_open.load(Ordering::Relaxed),
            counts.closed_by_server.load(Ordering::Relaxed),
            counts.connect_errors.load(Ordering::Relaxed),
        );
    }
    for task in tasks {
        task.abort();
    }
}

/// Holds one connection until `until`; true when the server closed it first.
async fn hold(mut stream: TcpStream, slow: bool, until: Instant) -> bool {
    if slow
        && stream
            .write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .is_err()
    {
        return true;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until.into()) => return false,
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            },
            _ = tick.tick(), if slow => {
                if stream.write_all(b"a").await.is_err() {
                    return true;
                }
            }
        }
    }
}

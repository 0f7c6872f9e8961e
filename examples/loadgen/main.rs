//! A light load generator for `tools/call` over HTTP/1.1 keep-alive, for
//! bench/load.sh. It does what the neutral `shared/bench/bench.sh` does
//! (wrk + Lua) at a fraction of the client CPU: on a 2-core machine the load
//! generator shares a core with Postgres, and wrk's Lua body checks took most
//! of that core, so they, not the server, set the ceiling.
//!
//!     cargo run --release --example loadgen -- URL --key KEY \
//!         [--tool whoami] [--args '{}'] [--connections 16] [--duration 10] \
//!         [--warmup 2] [--max-requests N] [--server-pid PID]
//!
//! One thread (a current-thread runtime), one task per connection, one
//! request in flight per connection. Every answer is checked: HTTP 200, the
//! request's own JSON-RPC id, a tool result with `"isError":false`. Prints
//! one line on stdout, in bench.sh's words:
//!
//!     rps=… p50_ms=… p99_ms=… errors=… [server_cpu=… ]client_cpu=…
//!
//! and `detail: requests=N` on stderr. Only for loopback servers.

mod cpu;
mod http;
mod options;

use http::{Connection, Session, Target};
use options::Options;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> Result<()> {
    let options = <Options as clap::Parser>::parse();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(options))
}

/// What one connection measured.
#[derive(Default)]
struct Tally {
    /// Microseconds per answer that arrived inside the measured window.
    latencies: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

/// The shared plan: when to measure, and how many requests may still go.
struct Plan {
    from: Instant,
    to: Instant,
    left: AtomicU64,
}

async fn run(options: Options) -> Result<()> {
    let target = Target::parse(&options.url)?;
    let session = Arc::new(http::handshake(&target, &options.key).await?);
    let from = Instant::now() + options.warmup;
    let plan = Arc::new(Plan {
        from,
        to: from + options.duration,
        left: AtomicU64::new(options.max_requests),
    });
    let call = Arc::new(CallTemplate::new(&options.tool, &options.args));

    let mut tasks = Vec::new();
    for _ in 0..options.connections {
        let (target, session, plan, call) =
            (target.clone(), session.clone(), plan.clone(), call.clone());
        tasks.push(tokio::spawn(async move {
            drive(&target, &session, &plan, &call).await
        }));
    }
    tokio::time::sleep_until(plan.from.into()).await;
    // CPU is read when the window closes, not when the last straggler ends.
    let meter = Arc::new(cpu::Meter::start(options.server_pid));
    let at_close = {
        let (meter, from, to) = (meter.clone(), plan.from, plan.to);
        tokio::spawn(async move {
            tokio::time::sleep_until(to.into()).await;
            meter.stop(to.duration_since(from))
        })
    };
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await?;
        total.latencies.extend(tally.latencies);
        total.errors += tally.errors;
        if let Some(error) = tally.first_error {
            total.first_error.get_or_insert(error);
        }
    }
    let now = Instant::now();
    let wall = now.min(plan.to).duration_since(plan.from);
    let cpu = if now < plan.to {
        // Stopped early (--max-requests): the window closed with the tasks.
        at_close.abort();
        meter.stop(wall)
    } else {
        at_close.await?
    };
    if let Some(error) = &total.first_error {
        eprintln!("loadgen: first error: {error}");
    }
    let answers = total.latencies.len();
    total.latencies.sort_unstable();
    eprintln!("detail: requests={}", answers as u64 + total.errors);
    println!(
        "rps={:.0} p50_ms={:.2} p99_ms={:.2} errors={}{cpu}",
        answers as f64 / wall.as_secs_f64().max(1e-9),
        percentile(&total.latencies, 0.50),
        percentile(&total.latencies, 0.99),
        total.errors,
    );
    Ok(())
}

/// The `p` quantile of sorted microseconds, in milliseconds (nearest rank).
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (sorted.len() as f64 * p).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// The `tools/call` body, split around its id so each request gets its own.
struct CallTemplate {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl CallTemplate {
    fn new(tool: &str, args: &str) -> Self {
        let params =
            format!(r#""method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#);
        Self {
            head: br#"{"jsonrpc":"2.0","#.to_vec(),
            tail: params.into_bytes(),
        }
    }

    /// The body for the request whose id member is `id_field` (`"id":7,`).
    fn body(&self, id_field: &str, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.head);
        out.extend_from_slice(id_field.as_bytes());
        out.extend_from_slice(&self.tail);
    }
}

/// One connection: request, answer, check, again, until the window closes.
async fn drive(target: &Target, session: &Session, plan: &Plan, call: &CallTemplate) -> Tally {
    let mut tally = Tally::default();
    let mut connection: Option<Connection> = None;
    let mut body = Vec::new();
    let mut id = 0u64;
    loop {
        let sent = Instant::now();
        if sent >= plan.to || !take_one(&plan.left) {
            return tally;
        }
        id += 1;
        // The same text goes into the request and is looked for in the answer.
        let id_field = format!(r#""id":{id},"#);
        call.body(&id_field, &mut body);
        let conn = match connection.as_mut() {
            Some(conn) => conn,
            None => match Connection::open(target).await {
                Ok(conn) => connection.insert(conn),
                Err(e) => {
                    if sent >= plan.from {
                        tally.error(format!("connect: {e}"));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let outcome = conn.post(session, &body).await;
        let done = Instant::now();
        let counted = sent >= plan.from && done <= plan.to;
        match outcome {
            Ok(answer) => {
                if !answer.keep_alive {
                    connection = None;
                }
                match check(&answer, &id_field) {
                    Ok(()) if counted => tally.latencies.push(micros(done - sent)),
                    Ok(()) => {}
                    Err(what) if counted => tally.error(what),
                    Err(_) => {}
                }
            }
            Err(e) => {
                connection = None;
                if counted {
                    tally.error(format!("request: {e}"));
                }
            }
        }
    }
}

fn take_one(left: &AtomicU64) -> bool {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

fn micros(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// A successful tool result for the request whose id member is `id_field`,
/// or what was wrong with it.
fn check(answer: &http::Answer, id_field: &str) -> std::result::Result<(), String> {
    let body = answer.body.as_slice();
    let sample = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if answer.status != 200 {
        return Err(format!("HTTP {}: {}", answer.status, sample()));
    }
    let head = &body[..body.len().min(128)];
    if memchr::memmem::find(head, id_field.as_bytes()).is_none() {
        return Err(format!("not the answer to {id_field}: {}", sample()));
    }
    if memchr::memmem::find(body, br#""isError":false"#).is_none() {
        return Err(format!("not a successful tool result: {}", sample()));
    }
    Ok(())
}

//! What the set of known keys costs in memory, with the server's allocator
//! (mimalloc): the process's resident memory before and after
//! - `load` (the default): a verifier loads COUNT keys (default 1,000,000)
//!   from a SQLite file, as a server does at start (the figure includes
//!   SQLite's page cache and what the allocator keeps of the load's pages);
//! - `set`: COUNT keys are reported to the set one by one, no database (the
//!   set alone).
//!
//! ```sh
//! cargo run --release --example known_keys_memory [-- COUNT [load|set]]
//! ```

use fleetmind::auth::{KnownKeys, UsageRecorder, Verifier};
use fleetmind::keys::KeyHash;
use fleetmind::store::{self, KeyChange, PoolOptions};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Resident memory in KiB, from /proc (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    if std::env::args().nth(2).as_deref() == Some("set") {
        let known = KnownKeys::new();
        let before = rss_kib();
        for _ in 0..count {
            let hash = KeyHash::from_stored(&hex::encode(rand::random::<[u8; 32]>()));
            let hash =
                hash.ok_or_else(|| anyhow::anyhow!("a random key hash is not 64 hex digits"))?;
            known.apply(&KeyChange::Key(hash));
        }
        report("set", count, before, rss_kib(), known.len());
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("keys.db").display());
    let db = store::open(&url, &PoolOptions::default()).await?;

    // The rows, written straight into the table (issuing a million keys one
    // by one would take long and measure nothing more).
    let pool = sqlx::SqlitePool::connect(&url).await?;
    let mut tx = pool.begin().await?;
    for i in 0..count {
        let hash = hex::encode(rand::random::<[u8; 32]>());
        sqlx::query(
            "INSERT INTO api_keys (user_id, email, api_key_hash, api_key_prefix, is_active) \
             VALUES ('user_000000000000', 'load@example.com', $1, $2, 1)",
        )
        .bind(&hash)
        .bind(format!("fm_{i:09}"))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    pool.close().await;

    let verifier = Verifier::new(db.clone(), UsageRecorder::new());
    let before = rss_kib();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let _watch = verifier.spawn_watch(shutdown.clone());
    while verifier.known_keys().len() < count {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the keys were not loaded within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let loaded_in = started.elapsed();
    // Let the load's pages be freed and the allocator settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("loaded in {:.2} s", loaded_in.as_secs_f64());
    report(
        "load",
        count,
        before,
        rss_kib(),
        verifier.known_keys().len(),
    );
    shutdown.cancel();
    Ok(())
}

fn report(mode: &str, count: usize, before: u64, after: u64, held: usize) {
    let per_million_mib =
        (after.saturating_sub(before)) as f64 / 1024.0 * 1_000_000.0 / count as f64;
    println!(
        "{mode}: {held} keys held; RSS before {before} KiB, after {after} KiB: \
         {per_million_mib:.1} MiB per million keys"
    );
}

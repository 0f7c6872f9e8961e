//! Holding a key's limits across replicas without a write per request.
//!
//! Every replica admits from its own bucket and month counter (`meter.rs`).
//! Every sync interval (`serve --limits-sync-ms`, 250 ms by default) it
//! sends, for each key called recently, what it admitted since the last
//! sync, in one transaction: `INSERT … ON CONFLICT DO UPDATE … RETURNING`
//! adds it to the key's month row of `key_limit_counts` and reads back the
//! total of every replica. The difference between that total and what this
//! replica last saw plus what it sent is what the others admitted: those
//! calls are taken from the local bucket (possibly leaving a debt) and their
//! units added to the month. The bound this gives is in ARCHITECTURE.md
//! ("Limits across replicas").
//!
//! The sync runs off the request path; a slow or failed write only delays
//! what the others learn (the counts are put back and sent next time), and
//! each call is bounded by the store's deadline.

use super::meter::Meters;
use super::quota::{month_of, previous_month};
use crate::clock::Clock;
use crate::store::Db;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The default sync interval.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(250);

/// A key not called for this long is no longer synced (its bucket is full
/// again unless it owes calls made elsewhere, which later syncs would not
/// change).
const ACTIVE: Duration = Duration::from_secs(120);

/// A key not called for this long is forgotten here; if it comes back, its
/// first sync reads its month again.
const FORGET: Duration = Duration::from_secs(600);

/// How often months before the previous one are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// One sync: send this replica's counts, fold in everyone's.
pub async fn sync_once(meters: &Meters, db: &Db, clock: &Clock) {
    let taken = meters.take_pending(clock.now(), ACTIVE, FORGET);
    if taken.is_empty() {
        return;
    }
    let counts: Vec<_> = taken.iter().map(|(_, count)| *count).collect();
    match db.add_limit_counts(&counts).await {
        Ok(totals) => {
            let now = clock.now();
            for ((meter, sent), total) in taken.iter().zip(&totals) {
                meter.fold(sent, total, now);
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, keys = counts.len(), "could not sync rate-limit counts; will retry");
            for (meter, sent) in &taken {
                meter.restore(sent);
            }
        }
    }
}

/// Syncs every `interval` until `shutdown`, then once more (so a replica
/// that stops leaves its last counts for the others).
pub fn spawn_sync(
    meters: Arc<Meters>,
    db: Db,
    clock: Clock,
    interval: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            sync_once(&meters, &db, &clock).await;
            if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                pruned = Some(tokio::time::Instant::now());
                let keep_from = previous_month(month_of(clock.now()));
                if let Err(err) = db.prune_limit_counts(keep_from).await {
                    tracing::warn!(error = %err, "could not prune old rate-limit counts");
                }
            }
        }
        sync_once(&meters, &db, &clock).await;
    })
}

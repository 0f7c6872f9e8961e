//! Writes the recorded tallies to the `tool_usage` rollup, off the request
//! path: every `--usage-flush-secs` and once more at shutdown, after the
//! requests in flight were answered. A failed write is put back and retried
//! by the next flush; requests never wait for it.
//!
//! The same task prunes rows older than `--usage-retention-days`, at most
//! once per hour of the server's clock, in batches of [`PRUNE_BATCH`] rows
//! (at most [`PRUNE_BATCHES`] per flush, so a large backlog never holds the
//! database for long: what is left goes at the next flush).

use super::{RowKey, Tally, ToolUsage, hour_of};
use crate::store::usage::UsageDelta;
use crate::store::{Db, StoreError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rows written by one store call (one transaction).
pub const FLUSH_CHUNK: usize = 1000;
/// Rows deleted by one pruning statement.
pub const PRUNE_BATCH: i64 = 1000;
/// Pruning statements per flush at most.
pub const PRUNE_BATCHES: usize = 10;

/// The flusher of one server.
pub struct UsageFlusher {
    usage: ToolUsage,
    db: Db,
    retention: Duration,
    /// The hour (of the clock) pruning last finished in.
    pruned_in: Option<i64>,
}

impl UsageFlusher {
    pub fn new(usage: ToolUsage, db: Db, retention: Duration) -> Self {
        Self {
            usage,
            db,
            retention,
            pruned_in: None,
        }
    }

    /// Writes what was recorded since the last flush, `FLUSH_CHUNK` rows
    /// per store call (each within the query deadline); what was not
    /// written waits for the next flush. How many rows were written.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let taken: Vec<(RowKey, Tally)> = self.usage.take().into_iter().collect();
        let mut written = 0;
        for (n, chunk) in taken.chunks(FLUSH_CHUNK).enumerate() {
            let deltas: Vec<UsageDelta> = chunk.iter().map(delta).collect();
            if let Err(err) = self.db.add_tool_usage(&deltas).await {
                // This chunk's transaction wrote nothing (unless its commit
                // was sent just as the deadline passed: then it may count
                // twice, see `store::deadline`).
                self.usage
                    .restore(taken.into_iter().skip(n * FLUSH_CHUNK).collect());
                return Err(err);
            }
            written += deltas.len();
        }
        Ok(written)
    }

    /// The first hour kept: rows of earlier hours are past retention.
    pub fn cutoff_hour(&self) -> i64 {
        let now = self.usage.clock().now().timestamp();
        let retention = i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX);
        hour_of(now.saturating_sub(retention))
    }

    /// Deletes rows past retention, in bounded batches; whether none is left.
    pub async fn prune(&self) -> Result<bool, StoreError> {
        let cutoff = self.cutoff_hour();
        for _ in 0..PRUNE_BATCHES {
            let gone = self.db.prune_tool_usage(cutoff, PRUNE_BATCH).await?;
            if gone < PRUNE_BATCH as u64 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One tick: flush, then prune if this hour has not been pruned yet.
    async fn tick(&mut self) {
        if let Err(err) = self.flush().await {
            tracing::warn!(error = %err, "could not write tool usage; will retry");
        }
        let hour = hour_of(self.usage.clock().now().timestamp());
        if self.pruned_in == Some(hour) {
            return;
        }
        match self.prune().await {
            Ok(true) => self.pruned_in = Some(hour),
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "could not prune old tool usage; will retry"),
        }
    }

    /// Flushes every `interval` until `shutdown`, then once more.
    pub fn spawn(
        mut self,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => self.tick().await,
                    _ = shutdown.cancelled() => break,
                }
            }
            if let Err(err) = self.flush().await {
                tracing::warn!(error = %err, "could not write tool usage at shutdown; it is lost");
            }
        })
    }
}

/// A tally as the row delta the store adds.
fn delta(&((key_id, tool, hour), t): &(RowKey, Tally)) -> UsageDelta {
    UsageDelta {
        key_id,
        tool: tool.to_owned(),
        hour,
        calls: clamp(t.calls),
        errors: clamp(t.errors),
        denied: clamp(t.denied),
        total_micros: clamp(t.total_micros),
        buckets: t.buckets,
    }
}

/// A count as the database stores it.
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

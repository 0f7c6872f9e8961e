//! Per-key, per-tool usage: what each key called, how it ended and how long
//! it took, gathered in memory on the request path and written off it in
//! hourly rollups (issue 13). Not `auth::usage`, which keeps `last_used_at`.
//!
//! [`ToolUsage::record`] is the one entry point: the MCP handler records
//! every call it ran or refused for lack of scope, the auth layer every call
//! it refused (rate limit, quota, address). `flush` writes the tallies to
//! the `tool_usage` table and prunes what is past retention; [`report`]
//! turns stored rows into what the CLI and the tools show.

mod flush;
pub mod histogram;
pub mod report;

pub use flush::UsageFlusher;

use crate::clock::Clock;
use crate::metrics::Outcome;
use histogram::Buckets;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Seconds in the rollup's period.
pub const HOUR_SECS: i64 = 3600;

/// The start of the hour holding `secs` (seconds since the epoch).
pub fn hour_of(secs: i64) -> i64 {
    secs.div_euclid(HOUR_SECS) * HOUR_SECS
}

/// The figures of one key and tool in one hour since the last flush.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Calls that ran (errors included).
    pub calls: u64,
    pub errors: u64,
    /// Calls refused before they ran; not in `calls`, nor timed.
    pub denied: u64,
    /// Sum of the durations of the calls that ran, in microseconds.
    pub total_micros: u64,
    /// The durations of the calls that ran (see [`histogram`]).
    pub buckets: Buckets,
}

impl Tally {
    /// Adds `other` (a tally whose write failed, put back for the next flush).
    fn add(&mut self, other: &Tally) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.denied += other.denied;
        self.total_micros = self.total_micros.saturating_add(other.total_micros);
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *mine += theirs;
        }
    }
}

/// Which row a tally goes to: key id, tool, the hour's start (epoch secs).
pub type RowKey = (i64, &'static str, i64);

/// The shared recorder; cheap to clone.
#[derive(Clone, Default)]
pub struct ToolUsage {
    pending: Arc<Mutex<HashMap<RowKey, Tally>>>,
    /// Tells the hour a call is counted in.
    clock: Clock,
}

impl ToolUsage {
    /// A recorder on the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// A recorder whose hours come from `clock` (the server's, so a test's
    /// manual clock moves calls into another hour).
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            pending: Arc::default(),
            clock,
        }
    }

    /// Notes one call of `tool` by key `key_id`. Never touches the database:
    /// a lock held for one map update.
    pub fn record(&self, key_id: i64, tool: &'static str, outcome: Outcome, elapsed: Duration) {
        let hour = hour_of(self.clock.now().timestamp());
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let tally = pending.entry((key_id, tool, hour)).or_default();
        match outcome {
            Outcome::Ok => tally.calls += 1,
            Outcome::Error => {
                tally.calls += 1;
                tally.errors += 1;
            }
            Outcome::Denied => tally.denied += 1,
        }
        if outcome != Outcome::Denied {
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            tally.total_micros = tally.total_micros.saturating_add(micros);
            tally.buckets[histogram::bucket_of(elapsed)] += 1;
        }
    }

    /// Takes what was recorded since the last call, for the flush.
    pub fn take(&self) -> HashMap<RowKey, Tally> {
        self.pending
            .lock()
            .map(|mut pending| std::mem::take(&mut *pending))
            .unwrap_or_default()
    }

    /// Puts back tallies whose write failed, so that the next flush retries
    /// them (added to what came in meanwhile).
    pub fn restore(&self, tallies: HashMap<RowKey, Tally>) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for (key, tally) in tallies {
            pending.entry(key).or_default().add(&tally);
        }
    }

    /// The clock the hours come from.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn calls_errors_and_denials_are_tallied_per_key_tool_and_hour() {
        let start = Utc.with_ymd_and_hms(2026, 11, 30, 9, 59, 0).unwrap();
        let clock = Clock::manual(start);
        let usage = ToolUsage::with_clock(clock.clone());
        let nine = hour_of(start.timestamp());
        usage.record(1, "whoami", Outcome::Ok, Duration::from_micros(10));
        usage.record(1, "whoami", Outcome::Error, Duration::from_micros(300));
        usage.record(1, "whoami", Outcome::Denied, Duration::from_secs(5));
        usage.record(2, "whoami", Outcome::Ok, Duration::from_micros(1));
        clock.advance(Duration::from_secs(60));
        usage.record(1, "whoami", Outcome::Ok, Duration::from_micros(1));
        let taken = usage.take();
        let mut buckets = Buckets::default();
        buckets[0] = 1;
        buckets[2] = 1;
        assert_eq!(
            taken[&(1, "whoami", nine)],
            Tally {
                calls: 2,
                errors: 1,
                denied: 1,
                total_micros: 310,
                buckets,
            }
        );
        assert_eq!(taken[&(2, "whoami", nine)].calls, 1);
        assert_eq!(
            taken[&(1, "whoami", nine + HOUR_SECS)].calls,
            1,
            "10:00 is another hour"
        );
        assert!(usage.take().is_empty());
    }

    #[test]
    fn restored_tallies_add_to_new_ones() {
        let usage = ToolUsage::new();
        usage.record(1, "whoami", Outcome::Ok, Duration::from_micros(10));
        let failed = usage.take();
        usage.record(1, "whoami", Outcome::Ok, Duration::from_micros(10));
        usage.restore(failed);
        let taken = usage.take();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken.values().next().map(|t| t.calls), Some(2));
    }

    #[test]
    fn hours_start_on_the_hour_before_the_epoch_too() {
        assert_eq!(hour_of(7199), 3600);
        assert_eq!(hour_of(-1), -3600);
    }
}

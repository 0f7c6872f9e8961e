//! Per-key, per-tool usage: what each key called, how it ended and how long
//! it took, gathered in memory on the request path and written off it in
//! hourly rollups (issue 13). Not `auth::usage`, which keeps `last_used_at`.
//!
//! [`ToolUsage::record`] is the one entry point: the MCP handler records
//! every call it ran, the auth layer every call it refused (rate limit,
//! quota, address).

use crate::metrics::Outcome;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The figures of one key and tool since the last flush.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub calls: u64,
    pub errors: u64,
    pub denied: u64,
    /// Sum of the durations of the calls that ran, in microseconds.
    pub total_micros: u64,
}

/// The shared recorder; cheap to clone.
#[derive(Clone, Default)]
pub struct ToolUsage {
    pending: Arc<Mutex<HashMap<(i64, &'static str), Tally>>>,
}

impl ToolUsage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes one call of `tool` by key `key_id`. Never touches the database.
    pub fn record(&self, key_id: i64, tool: &'static str, outcome: Outcome, elapsed: Duration) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let tally = pending.entry((key_id, tool)).or_default();
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
        }
    }

    /// Takes what was recorded since the last call, for the flush.
    pub fn take(&self) -> HashMap<(i64, &'static str), Tally> {
        self.pending
            .lock()
            .map(|mut pending| std::mem::take(&mut *pending))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_errors_and_denials_are_tallied_per_key_and_tool() {
        let usage = ToolUsage::new();
        usage.record(1, "whoami", Outcome::Ok, Duration::from_micros(10));
        usage.record(1, "whoami", Outcome::Error, Duration::from_micros(30));
        usage.record(1, "whoami", Outcome::Denied, Duration::from_secs(5));
        usage.record(2, "whoami", Outcome::Ok, Duration::from_micros(1));
        let taken = usage.take();
        assert_eq!(
            taken[&(1, "whoami")],
            Tally {
                calls: 2,
                errors: 1,
                denied: 1,
                total_micros: 40
            }
        );
        assert_eq!(taken[&(2, "whoami")].calls, 1);
        assert!(usage.take().is_empty());
    }
}

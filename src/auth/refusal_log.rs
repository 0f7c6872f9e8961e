//! Log lines for refused requests that a flood cannot multiply.
//!
//! Anyone can send requests without a key, so one line per refusal lets any
//! client write the log as fast as it can send (20,871 keyless requests in
//! 5 s once wrote 3.9 MB). Instead each reason has a counter: a refusal adds
//! one (an atomic add, no lock), and the refusal that finds the last line of
//! its reason a second old or more writes the count since then:
//! `refused 20871 requests: no API key was sent (last 1 s)`. So each reason
//! writes at most one line per second, and the first refusal after a quiet
//! spell is logged at once. Refusals that arrive after the last line wait in
//! the counter for the next refusal of their reason.

use super::AuthFailure;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shortest time between two lines of one reason.
pub(super) const SUMMARY_INTERVAL: Duration = Duration::from_secs(1);

/// "No line written yet" in [`Reason::last_line_ms`].
const NEVER: u64 = u64::MAX;

/// The refusals of the auth layer, counted per reason.
pub(super) struct RefusalLog {
    started: Instant,
    reasons: [Reason; REASONS],
}

/// One counter per failure [`slot`] gives a number to.
const REASONS: usize = 8;

struct Reason {
    /// Refusals not yet written to the log.
    pending: AtomicU64,
    /// When the last line was written, in ms since `started`.
    last_line_ms: AtomicU64,
}

/// Where a failure is counted.
fn slot(failure: AuthFailure) -> usize {
    match failure {
        AuthFailure::Missing => 0,
        AuthFailure::Malformed => 1,
        AuthFailure::Unknown => 2,
        AuthFailure::Revoked => 3,
        AuthFailure::Expired => 4,
        AuthFailure::Conflicting => 5,
        AuthFailure::Unavailable => 6,
        AuthFailure::Throttled { .. } => 7,
    }
}

/// What to write for one reason, if anything.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Summary {
    pub count: u64,
    /// Since the previous line of this reason; `None` for the first line.
    pub window: Option<Duration>,
}

impl RefusalLog {
    pub(super) fn new() -> Self {
        Self {
            started: Instant::now(),
            reasons: std::array::from_fn(|_| Reason {
                pending: AtomicU64::new(0),
                last_line_ms: AtomicU64::new(NEVER),
            }),
        }
    }

    /// Counts a refusal and writes the line of its reason if one is due.
    pub(super) fn refused(&self, failure: AuthFailure) {
        if let Some(summary) = self.count(failure, Instant::now()) {
            write_line(failure, &summary);
        }
    }

    /// Counts a refusal at `now`; returns the line to write if one is due
    /// (at most one caller per interval and reason gets it).
    pub(super) fn count(&self, failure: AuthFailure, now: Instant) -> Option<Summary> {
        let reason = &self.reasons[slot(failure)];
        reason.pending.fetch_add(1, Ordering::Relaxed);
        let now_ms = u64::try_from(now.saturating_duration_since(self.started).as_millis())
            .unwrap_or(NEVER - 1);
        let last = reason.last_line_ms.load(Ordering::Relaxed);
        let interval_ms = SUMMARY_INTERVAL.as_millis() as u64;
        if last != NEVER && now_ms < last.saturating_add(interval_ms) {
            return None;
        }
        // Whoever moves the mark writes the line; the others just counted.
        reason
            .last_line_ms
            .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        let count = reason.pending.swap(0, Ordering::AcqRel);
        (count > 0).then(|| Summary {
            count,
            window: (last != NEVER).then(|| Duration::from_millis(now_ms - last)),
        })
    }
}

fn write_line(failure: AuthFailure, summary: &Summary) {
    let reason = failure.description();
    match (summary.count, summary.window) {
        (1, _) => tracing::info!(reason, "request refused: {reason}"),
        (count, Some(window)) => tracing::info!(
            reason,
            count,
            "refused {count} requests: {reason} (last {} s)",
            window.as_secs().max(1)
        ),
        (count, None) => tracing::info!(reason, count, "refused {count} requests: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_gives_one_line_per_second_and_reason_and_loses_no_count() {
        let log = RefusalLog::new();
        let t0 = log.started;
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // The first refusal is written at once.
        assert_eq!(
            log.count(AuthFailure::Missing, at(0)),
            Some(Summary {
                count: 1,
                window: None
            })
        );
        // 999 more within the second: counted, not written.
        for i in 1..1000 {
            assert_eq!(log.count(AuthFailure::Missing, at(i % 999)), None);
        }
        // Another reason has its own line.
        assert!(log.count(AuthFailure::Malformed, at(500)).is_some());
        // A second later one line carries them all (and itself).
        assert_eq!(
            log.count(AuthFailure::Missing, at(1000)),
            Some(Summary {
                count: 1000,
                window: Some(Duration::from_secs(1))
            })
        );
        assert_eq!(log.count(AuthFailure::Missing, at(1500)), None);
        assert_eq!(
            log.count(AuthFailure::Missing, at(4000)),
            Some(Summary {
                count: 2,
                window: Some(Duration::from_secs(3))
            })
        );
    }

    #[test]
    fn concurrent_refusals_write_one_line_and_count_every_one() {
        let log = std::sync::Arc::new(RefusalLog::new());
        let now = log.started;
        let lines: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let log = log.clone();
                    s.spawn(move || {
                        (0..10_000)
                            .filter_map(|_| log.count(AuthFailure::Unknown, now))
                            .map(|summary| summary.count)
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let written: Vec<u64> = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect();
            assert_eq!(written.len(), 1, "{written:?}");
            written.iter().sum()
        });
        let pending = log.reasons[slot(AuthFailure::Unknown)]
            .pending
            .load(Ordering::Relaxed);
        assert_eq!(lines + pending, 40_000);
    }
}

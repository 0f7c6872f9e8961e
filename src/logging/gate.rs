//! Log lines that a flood cannot multiply.
//!
//! Some lines are written once per event that a client can repeat at will (a
//! refused request, a failed key lookup while the database is down). One
//! line each would let any client write the log as fast as it can send
//! (20,871 keyless requests in 5 s once wrote 3.9 MB). A [`LineGate`]
//! counts the events instead (an atomic add, no lock); the event that finds
//! the gate's last line a second old or more gets the count since then and
//! writes one line for all of them. So a gate writes at most one line per
//! second, the first event after a quiet spell is written at once, and
//! events that arrive after the last line wait in the count for the next one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shortest time between two lines of one gate.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(1);

/// "No line written yet" in [`LineGate::last_line_ms`].
const NEVER: u64 = u64::MAX;

/// What one line of a gate reports.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    /// Events since the previous line, this one included.
    pub count: u64,
    /// Since the previous line; `None` for the first line.
    pub window: Option<Duration>,
}

/// Counts events and lets through at most one line per [`SUMMARY_INTERVAL`].
pub struct LineGate {
    started: Instant,
    /// Events not yet written to the log.
    pending: AtomicU64,
    /// When the last line was written, in ms since `started`.
    last_line_ms: AtomicU64,
}

impl Default for LineGate {
    fn default() -> Self {
        Self::new()
    }
}

impl LineGate {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            pending: AtomicU64::new(0),
            last_line_ms: AtomicU64::new(NEVER),
        }
    }

    /// Counts an event now; see [`LineGate::count_at`].
    pub fn count(&self) -> Option<Summary> {
        self.count_at(Instant::now())
    }

    /// Counts an event at `now`; returns the line to write if one is due (at
    /// most one caller per interval gets it).
    pub fn count_at(&self, now: Instant) -> Option<Summary> {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let now_ms = u64::try_from(now.saturating_duration_since(self.started).as_millis())
            .unwrap_or(NEVER - 1);
        let last = self.last_line_ms.load(Ordering::Relaxed);
        let interval_ms = SUMMARY_INTERVAL.as_millis() as u64;
        if last != NEVER && now_ms < last.saturating_add(interval_ms) {
            return None;
        }
        // Whoever moves the mark writes the line; the others just counted.
        self.last_line_ms
            .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        let count = self.pending.swap(0, Ordering::AcqRel);
        (count > 0).then(|| Summary {
            count,
            window: (last != NEVER).then(|| Duration::from_millis(now_ms - last)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_gives_one_line_per_second_and_loses_no_count() {
        let gate = LineGate::new();
        let at = |ms: u64| gate.started + Duration::from_millis(ms);
        // The first event is written at once.
        assert_eq!(
            gate.count_at(at(0)),
            Some(Summary {
                count: 1,
                window: None
            })
        );
        // 999 more within the second: counted, not written.
        for i in 1..1000 {
            assert_eq!(gate.count_at(at(i % 999)), None);
        }
        // A second later one line carries them all (and itself).
        assert_eq!(
            gate.count_at(at(1000)),
            Some(Summary {
                count: 1000,
                window: Some(Duration::from_secs(1))
            })
        );
        assert_eq!(gate.count_at(at(1500)), None);
        assert_eq!(
            gate.count_at(at(4000)),
            Some(Summary {
                count: 2,
                window: Some(Duration::from_secs(3))
            })
        );
    }

    #[test]
    fn concurrent_events_write_one_line_and_count_every_one() {
        let gate = std::sync::Arc::new(LineGate::new());
        let now = gate.started;
        let lines: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let gate = gate.clone();
                    s.spawn(move || {
                        (0..10_000)
                            .filter_map(|_| gate.count_at(now))
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
        let pending = gate.pending.load(Ordering::Relaxed);
        assert_eq!(lines + pending, 40_000);
    }
}

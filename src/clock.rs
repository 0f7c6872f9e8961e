//! The wall clock the server reads for anything a test would otherwise wait
//! for: key expiry, rotation grace, console sessions, rate-limit buckets and
//! monthly quotas. Production reads the system clock; a test holds a
//! [`Clock::manual`] and moves it forward instead of sleeping.
//!
//! It is the one reader of the wall clock in `src/` (`tests/it/architecture.rs`
//! checks it): whatever stamps or judges a time takes it from a `Clock`, or
//! as an argument from a caller holding one, so a test's clock reaches it.
//!
//! Deadlines on I/O (timeouts, pool waits) stay on tokio's monotonic clock:
//! they guard against a slow peer, not against the calendar. An age the
//! server judges (a cached key's, see `auth::cache`) is measured on
//! [`Clock::instant`], which a manual clock moves too.

use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// A source of "now". Cheap to clone; clones of a manual clock share its time.
#[derive(Clone, Debug, Default)]
pub struct Clock(Source);

#[derive(Clone, Debug, Default)]
enum Source {
    #[default]
    System,
    /// Moved only by the test.
    Manual(Arc<Manual>),
}

#[derive(Debug)]
struct Manual {
    /// Microseconds since the Unix epoch.
    micros: AtomicI64,
    /// Where it started, and the monotonic instant it was made at: its
    /// [`Clock::instant`] is that instant plus how far it has moved.
    start: i64,
    anchor: Instant,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// A clock that stands still at `start` until [`Clock::advance`] or
    /// [`Clock::set`] moves it.
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self(Source::Manual(Arc::new(Manual {
            micros: AtomicI64::new(start.timestamp_micros()),
            start: start.timestamp_micros(),
            anchor: Instant::now(),
        })))
    }

    /// The current time, to the microsecond (what both databases store, so
    /// that a time written equals the time read back).
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Source::System => Utc::now().trunc_subsecs(6),
            Source::Manual(manual) => from_micros(manual.micros.load(Ordering::SeqCst)),
        }
    }

    /// A monotonic instant, for ages: `Instant::now()` on the system clock;
    /// on a manual clock, the instant it was made plus how far it has been
    /// moved (never before that instant), so advancing it ages what was
    /// timed by it.
    pub fn instant(&self) -> Instant {
        match &self.0 {
            Source::System => Instant::now(),
            Source::Manual(manual) => {
                let moved = manual
                    .micros
                    .load(Ordering::SeqCst)
                    .saturating_sub(manual.start);
                let moved = Duration::from_micros(u64::try_from(moved).unwrap_or(0));
                manual.anchor.checked_add(moved).unwrap_or(manual.anchor)
            }
        }
    }

    /// Moves a manual clock forward. The system clock cannot be moved: this
    /// is a no-op on it, so production code never calls it.
    pub fn advance(&self, by: Duration) {
        if let Source::Manual(manual) = &self.0 {
            let by = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
            manual.micros.fetch_add(by, Ordering::SeqCst);
        }
    }

    /// Sets a manual clock to `at` (a no-op on the system clock).
    pub fn set(&self, at: DateTime<Utc>) {
        if let Source::Manual(manual) = &self.0 {
            manual.micros.store(at.timestamp_micros(), Ordering::SeqCst);
        }
    }

    /// Whether this is a test's manual clock.
    pub fn is_manual(&self) -> bool {
        matches!(self.0, Source::Manual(_))
    }
}

fn from_micros(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let start = Utc.with_ymd_and_hms(2026, 1, 31, 23, 59, 59).unwrap();
        let clock = Clock::manual(start);
        let other = clock.clone();
        assert_eq!(clock.now(), start);
        other.advance(Duration::from_secs(1));
        assert_eq!(
            clock.now(),
            Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()
        );
        clock.set(start);
        assert_eq!(other.now(), start);
    }

    #[test]
    fn the_system_clock_ignores_advance() {
        let clock = Clock::system();
        let before = Utc::now().trunc_subsecs(6);
        clock.advance(Duration::from_secs(86_400));
        let now = clock.now();
        assert!(now >= before && now < before + chrono::Duration::hours(1));
    }

    #[test]
    fn a_manual_clocks_instant_moves_with_it_and_never_back_past_its_start() {
        let start = Utc.with_ymd_and_hms(2026, 1, 31, 23, 59, 59).unwrap();
        let clock = Clock::manual(start);
        let made = clock.instant();
        assert_eq!(clock.instant(), made, "it stands still until moved");
        clock.advance(Duration::from_millis(1_200));
        assert_eq!(clock.instant() - made, Duration::from_millis(1_200));
        clock.set(start - chrono::Duration::hours(1));
        assert_eq!(clock.instant(), made);
    }
}

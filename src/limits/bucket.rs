//! The per-minute limit as a token bucket: `capacity` tokens, refilled
//! evenly at `capacity` per minute, one token per tool call.
//!
//! Kept in integer "ticks" so the arithmetic is exact: a token is
//! [`TICKS_PER_TOKEN`] ticks (the microseconds of a minute), and a bucket of
//! capacity `c` gains `c` ticks per microsecond. The level may go below
//! zero: calls another replica admitted are deducted when they become known
//! (see `sync.rs`), and the debt is repaid by refilling before the next call.

use std::time::Duration;

/// Ticks in one token: the microseconds of a minute.
pub const TICKS_PER_TOKEN: i64 = 60_000_000;

/// One key's bucket. Time is in microseconds since the epoch (from
/// `crate::clock::Clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Ticks available; negative is a debt.
    level: i64,
    /// When `level` was last brought up to date.
    at_micros: i64,
}

impl Bucket {
    /// A full bucket at `now_micros`.
    pub fn full(capacity: u32, now_micros: i64) -> Self {
        Self {
            level: ceiling(capacity),
            at_micros: now_micros,
        }
    }

    /// Adds what the time since the last update refilled, up to the
    /// capacity (a lowered capacity lowers a fuller bucket at once).
    fn refill(&mut self, capacity: u32, now_micros: i64) {
        let elapsed = now_micros.saturating_sub(self.at_micros).max(0);
        let gained = elapsed.saturating_mul(i64::from(capacity));
        self.level = self.level.saturating_add(gained).min(ceiling(capacity));
        // A clock set back does not refill twice.
        self.at_micros = self.at_micros.max(now_micros);
    }

    /// Takes one token, or says how long until there is one.
    pub fn take(&mut self, capacity: u32, now_micros: i64) -> Result<(), Duration> {
        self.refill(capacity, now_micros);
        if self.level >= TICKS_PER_TOKEN {
            self.level -= TICKS_PER_TOKEN;
            return Ok(());
        }
        Err(self.wait_for_one(capacity))
    }

    /// Deducts `calls` admitted elsewhere (may leave a debt).
    pub fn deduct(&mut self, calls: u64, capacity: u32, now_micros: i64) {
        self.refill(capacity, now_micros);
        let ticks = i64::try_from(calls)
            .unwrap_or(i64::MAX)
            .saturating_mul(TICKS_PER_TOKEN);
        self.level = self.level.saturating_sub(ticks);
    }

    /// Whole tokens available now: the calls that would be admitted.
    pub fn available(&mut self, capacity: u32, now_micros: i64) -> u64 {
        self.refill(capacity, now_micros);
        u64::try_from(self.level / TICKS_PER_TOKEN).unwrap_or(0)
    }

    /// The exact time until the level reaches one token (rounded up to the
    /// microsecond); zero when there is one.
    fn wait_for_one(&self, capacity: u32) -> Duration {
        let missing = TICKS_PER_TOKEN.saturating_sub(self.level);
        if missing <= 0 {
            return Duration::ZERO;
        }
        let Some(rate) = i64::from(capacity).checked_abs().filter(|r| *r > 0) else {
            // No refill: never (a capacity of 0 is refused when it is set).
            return Duration::from_secs(60);
        };
        let micros = missing.saturating_add(rate - 1) / rate;
        Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

fn ceiling(capacity: u32) -> i64 {
    i64::from(capacity).saturating_mul(TICKS_PER_TOKEN)
}

/// `Retry-After` in whole seconds, rounded up (a client that waits that
/// long finds a token), at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000;

    #[test]
    fn admits_exactly_its_capacity_then_says_when_the_next_token_comes() {
        let mut bucket = Bucket::full(3, 0);
        for _ in 0..3 {
            assert_eq!(bucket.take(3, 0), Ok(()));
        }
        // 3 a minute: a token every 20 s.
        assert_eq!(bucket.take(3, 0), Err(Duration::from_secs(20)));
        assert_eq!(bucket.take(3, 5 * SEC), Err(Duration::from_secs(15)));
        assert_eq!(bucket.take(3, 20 * SEC), Ok(()));
        assert_eq!(bucket.take(3, 20 * SEC), Err(Duration::from_secs(20)));
    }

    #[test]
    fn refills_evenly_up_to_the_capacity() {
        let mut bucket = Bucket::full(60, 0);
        for _ in 0..60 {
            bucket.take(60, 0).unwrap();
        }
        assert_eq!(bucket.available(60, 10 * SEC), 10);
        assert_eq!(bucket.available(60, 3600 * SEC), 60);
    }

    #[test]
    fn a_wait_that_is_not_whole_seconds_is_exact_and_rounds_up() {
        let mut bucket = Bucket::full(7, 0);
        for _ in 0..7 {
            bucket.take(7, 0).unwrap();
        }
        // 60 s / 7 = 8.571428…6 s, to the microsecond, rounded up.
        let wait = bucket.take(7, 0).unwrap_err();
        assert_eq!(wait, Duration::from_micros(8_571_429));
        assert_eq!(retry_after_secs(wait), 9);
        assert_eq!(bucket.take(7, 8_571_429), Ok(()));
    }

    #[test]
    fn calls_admitted_elsewhere_leave_a_debt_that_is_repaid_by_time() {
        let mut bucket = Bucket::full(60, 0);
        bucket.deduct(90, 60, 0);
        assert_eq!(bucket.available(60, 0), 0);
        // -30 tokens: 31 s until one token.
        assert_eq!(bucket.take(60, 0), Err(Duration::from_secs(31)));
        assert_eq!(bucket.take(60, 31 * SEC), Ok(()));
    }

    #[test]
    fn a_lowered_capacity_applies_at_once_and_a_clock_set_back_refills_nothing() {
        let mut bucket = Bucket::full(100, 0);
        assert_eq!(bucket.available(10, 0), 10);
        bucket.take(10, 10 * SEC).unwrap();
        let before = bucket.available(10, 10 * SEC);
        assert_eq!(bucket.available(10, 0), before);
        assert_eq!(bucket.available(10, 10 * SEC), before);
    }
}

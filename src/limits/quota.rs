//! The monthly quota: tool-call units per calendar month (UTC). A month is
//! named by `year * 100 + month` (202611), which is also how the shared
//! counters (`key_limit_counts`) are keyed.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use std::time::Duration;

/// The month `at` falls in, as `yyyymm`.
pub fn month_of(at: DateTime<Utc>) -> i32 {
    at.year() * 100 + i32::try_from(at.month()).unwrap_or(1)
}

/// The month before `month` (for pruning: the current and the previous
/// month's counters are kept).
pub fn previous_month(month: i32) -> i32 {
    let (year, m) = (month / 100, month % 100);
    if m <= 1 {
        (year - 1) * 100 + 12
    } else {
        month - 1
    }
}

/// The first instant of the month after the one `at` falls in.
pub fn next_month_start(at: DateTime<Utc>) -> DateTime<Utc> {
    let (year, month) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// How long from `at` until the month turns (the quota's `Retry-After`).
pub fn until_month_turns(at: DateTime<Utc>) -> Duration {
    (next_month_start(at) - at)
        .to_std()
        .unwrap_or(Duration::ZERO)
}

/// One key's units used this month, as far as this replica knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthUse {
    pub month: i32,
    pub used: u64,
}

impl MonthUse {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            month: month_of(at),
            used: 0,
        }
    }

    /// Starts over when the month has turned; whether it did.
    pub fn roll(&mut self, at: DateTime<Utc>) -> bool {
        let month = month_of(at);
        if month == self.month {
            return false;
        }
        *self = Self { month, used: 0 };
        true
    }

    /// Whether `cost` more units fit under `quota`.
    pub fn fits(&self, cost: u64, quota: u64) -> bool {
        self.used.saturating_add(cost) <= quota
    }

    /// What is left of `quota`.
    pub fn left(&self, quota: u64) -> u64 {
        quota.saturating_sub(self.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn months_are_utc_calendar_months() {
        assert_eq!(month_of(at(2026, 11, 30, 23, 59, 59)), 202611);
        assert_eq!(month_of(at(2026, 12, 1, 0, 0, 0)), 202612);
        assert_eq!(previous_month(202601), 202512);
        assert_eq!(previous_month(202611), 202610);
        assert_eq!(
            next_month_start(at(2026, 12, 31, 12, 0, 0)),
            at(2027, 1, 1, 0, 0, 0)
        );
    }

    #[test]
    fn the_wait_is_until_the_month_turns() {
        assert_eq!(
            until_month_turns(at(2026, 11, 30, 23, 59, 0)),
            Duration::from_secs(60)
        );
        assert_eq!(
            until_month_turns(at(2026, 2, 28, 0, 0, 0)),
            Duration::from_secs(86_400)
        );
    }

    #[test]
    fn a_quota_is_used_up_and_starts_over_next_month() {
        let mut month = MonthUse::new(at(2026, 11, 30, 23, 0, 0));
        month.used = 9;
        assert!(month.fits(1, 10));
        assert!(!month.fits(2, 10));
        assert_eq!(month.left(10), 1);
        assert!(!month.roll(at(2026, 11, 30, 23, 59, 59)));
        assert!(month.roll(at(2026, 12, 1, 0, 0, 0)));
        assert_eq!(month.used, 0);
    }
}

//! The latency histogram of a usage row: fixed buckets, so that rows from
//! several replicas merge by adding bucket counts (in SQL, on upsert).
//!
//! Resolution: the bounds follow a 1-2-5 series from 0.1 ms to 30 s, so a
//! p95 read from them is the upper bound of the bucket it falls in: at most
//! 2.5 times the true value, never below it. A call over 30 s (past the
//! default request timeout) counts in the last bucket and reads as 30 s.

pub use crate::store::usage::{BUCKETS, Buckets};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds; one more bucket holds
/// everything above the last.
pub const BOUNDS_MICROS: [u64; 17] = [
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000, 2_000_000, 5_000_000, 10_000_000, 30_000_000,
];

// A row has a column per bound and one for the overflow.
const _: () = assert!(BUCKETS == BOUNDS_MICROS.len() + 1);

/// The bucket a call of `elapsed` falls in.
pub fn bucket_of(elapsed: Duration) -> usize {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    BOUNDS_MICROS
        .iter()
        .position(|bound| micros <= *bound)
        .unwrap_or(BOUNDS_MICROS.len())
}

/// The 95th percentile in milliseconds: the bound of the first bucket where
/// the cumulative count reaches 95 % of all; `None` without calls.
pub fn p95_ms(buckets: &Buckets) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    // The smallest count that is at least 95 % of the total (integer
    // arithmetic: no rounding at the edge).
    let needed = (total * 95).div_ceil(100);
    let mut seen = 0;
    for (i, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= needed {
            let bound = BOUNDS_MICROS
                .get(i)
                .or(BOUNDS_MICROS.last())
                .copied()
                .unwrap_or(0);
            return Some(bound as f64 / 1000.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_lands_in_the_bucket_of_its_upper_bound() {
        assert_eq!(bucket_of(Duration::ZERO), 0);
        assert_eq!(bucket_of(Duration::from_micros(100)), 0);
        assert_eq!(bucket_of(Duration::from_micros(101)), 1);
        assert_eq!(bucket_of(Duration::from_millis(3)), 5);
        assert_eq!(bucket_of(Duration::from_secs(30)), BUCKETS - 2);
        assert_eq!(bucket_of(Duration::from_secs(31)), BUCKETS - 1);
    }

    #[test]
    fn p95_is_the_bound_where_the_cumulative_count_reaches_95_percent() {
        let mut b = Buckets::default();
        assert_eq!(p95_ms(&b), None);
        b[0] = 95;
        b[9] = 5;
        assert_eq!(p95_ms(&b), Some(0.1), "95 of 100 within 0.1 ms");
        b[0] = 94;
        b[9] = 6;
        assert_eq!(p95_ms(&b), Some(100.0));
        let mut over = Buckets::default();
        over[BUCKETS - 1] = 1;
        assert_eq!(p95_ms(&over), Some(30_000.0), "over 30 s reads as 30 s");
    }
}

//! What a usage report shows of a stored row, the same for `keys usage
//! --json`, `admin_key_usage` and `my_usage`; and the `since` they take.

use super::{HOUR_SECS, histogram, hour_of};
use crate::store::usage::UsageRow;
use chrono::{DateTime, Utc};
use rmcp::schemars;
use serde::Serialize;

/// Most rows one report returns (newest hours first).
pub const MAX_ROWS: i64 = 10_000;

/// The longest `since`: 10 years, past any retention.
const MAX_SINCE_HOURS: i64 = 10 * 366 * 24;

/// The default `since` of every report.
pub const DEFAULT_SINCE: &str = "7d";

/// One key's use of one tool in one hour.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct UsageView {
    pub key_id: i64,
    pub tool: String,
    /// The hour's start (RFC 3339, UTC).
    pub hour: String,
    /// Calls that ran, errors included.
    pub calls: i64,
    /// Calls that ran and failed.
    pub errors: i64,
    /// Calls refused before they ran (scope, rate limit, quota, address).
    pub denied: i64,
    /// Mean duration of the calls that ran, in ms; null without calls.
    pub mean_ms: Option<f64>,
    /// 95th percentile duration in ms, as the upper bound of its histogram
    /// bucket (1-2-5 steps from 0.1 ms to 30 s); null without calls.
    pub p95_ms: Option<f64>,
}

impl UsageView {
    pub fn of(row: &UsageRow) -> Self {
        let hour = DateTime::<Utc>::from_timestamp(row.hour, 0)
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let mean_ms = (row.calls > 0).then(|| {
            let mean = row.total_micros as f64 / row.calls as f64 / 1000.0;
            (mean * 1000.0).round() / 1000.0
        });
        Self {
            key_id: row.key_id,
            tool: row.tool.clone(),
            hour,
            calls: row.calls,
            errors: row.errors,
            denied: row.denied,
            mean_ms,
            p95_ms: histogram::p95_ms(&row.buckets),
        }
    }
}

/// Reads a `since` like `24h` or `7d` (a whole number of hours or days, at
/// least 1) into the first hour to show: the start of the hour that many
/// hours before `now`.
pub fn since_hour(since: &str, now: DateTime<Utc>) -> Result<i64, String> {
    let bad = || {
        format!(
            "since must be a whole number of hours or days, like 24h or 7d (got '{}')",
            since.chars().take(32).collect::<String>()
        )
    };
    let since = since.trim();
    let (number, per) = if let Some(n) = since.strip_suffix('h') {
        (n, 1)
    } else if let Some(n) = since.strip_suffix('d') {
        (n, 24)
    } else {
        return Err(bad());
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let hours = number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(per))
        .filter(|h| (1..=MAX_SINCE_HOURS).contains(h))
        .ok_or_else(|| format!("since must be between 1h and {}d", MAX_SINCE_HOURS / 24))?;
    Ok(hour_of(now.timestamp()) - (hours - 1) * HOUR_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn since_counts_the_current_hour_as_the_first() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 10, 30, 0).unwrap();
        let ten = Utc
            .with_ymd_and_hms(2026, 11, 30, 10, 0, 0)
            .unwrap()
            .timestamp();
        assert_eq!(since_hour("1h", now), Ok(ten));
        assert_eq!(since_hour("24h", now), Ok(ten - 23 * HOUR_SECS));
        assert_eq!(since_hour("7d", now), Ok(ten - (7 * 24 - 1) * HOUR_SECS));
        for bad in [
            "7x",
            "",
            "d",
            "-1d",
            "1.5d",
            "7 d",
            "+7d",
            "0h",
            "99999999999999999999d",
        ] {
            let err = since_hour(bad, now).unwrap_err();
            assert!(err.starts_with("since must be"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_view_has_mean_and_p95_in_milliseconds() {
        let mut buckets = histogram::Buckets::default();
        buckets[3] = 20;
        let row = UsageRow {
            key_id: 7,
            tool: "whoami".into(),
            hour: 3600,
            calls: 20,
            errors: 1,
            denied: 2,
            total_micros: 15_000,
            buckets,
        };
        let view = UsageView::of(&row);
        assert_eq!(view.hour, "1970-01-01T01:00:00Z");
        assert_eq!(view.mean_ms, Some(0.75));
        assert_eq!(view.p95_ms, Some(1.0));
        let idle = UsageView::of(&UsageRow {
            calls: 0,
            total_micros: 0,
            buckets: Default::default(),
            ..row
        });
        assert_eq!((idle.mean_ms, idle.p95_ms), (None, None));
    }
}

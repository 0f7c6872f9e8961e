//! Per-key limits (issue 13): how fast, how much and from where a key may
//! call tools. This module holds what a key's row says ([`KeyLimits`]) and
//! the rules for valid values; enforcing them on requests lives beside it.
//!
//! The limits are three nullable columns of `api_keys`, read in the same
//! query as the key, so a verified caller carries them
//! (`caller.limits`, through `auth::Caller`'s `Identity`) and checking them
//! needs no query. A change of limits is a change of the key's row: the
//! change watch reloads it on every replica, as for a revocation.

use crate::net::{InvalidNetwork, Networks};
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

pub mod bucket;
pub mod cost;
pub mod gate;
pub mod meter;
pub mod quota;
pub mod sync;

/// What a key's row limits; `None` means no limit of that kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyLimits {
    /// At most this many tool calls in any minute (a token bucket of this
    /// capacity, refilled evenly).
    pub rate_limit_per_minute: Option<u32>,
    /// At most this many tool-call units per calendar month (UTC).
    pub monthly_quota: Option<u64>,
    /// Only requests from these networks (the client address as worked
    /// out with `--trusted-proxies`).
    pub allowed_ips: Option<AllowedIps>,
}

/// A change of some of a key's limits: `None` leaves a kind as it is,
/// `Some(None)` removes it, `Some(Some(v))` sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsChange {
    pub rate_limit_per_minute: Option<Option<u32>>,
    pub monthly_quota: Option<Option<u64>>,
    pub allowed_ips: Option<Option<AllowedIps>>,
}

impl LimitsChange {
    /// Whether it names no limit at all.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The limits `current` becomes.
    pub fn apply(&self, current: &KeyLimits) -> KeyLimits {
        KeyLimits {
            rate_limit_per_minute: self
                .rate_limit_per_minute
                .unwrap_or(current.rate_limit_per_minute),
            monthly_quota: self.monthly_quota.unwrap_or(current.monthly_quota),
            allowed_ips: match &self.allowed_ips {
                Some(ips) => ips.clone(),
                None => current.allowed_ips.clone(),
            },
        }
    }
}

/// Why a limit was refused; the message names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{field} must be a whole number from 1 to {max} (got {value}); use none for no limit")]
    OutOfRange {
        field: &'static str,
        value: String,
        max: u64,
    },
    #[error("allowed_ips: {0}")]
    Network(#[from] InvalidNetwork),
    #[error(
        "allowed_ips lists no address; give addresses or CIDR networks \
         (10.0.0.0/8,192.0.2.7), or none for no restriction"
    )]
    EmptyAllowlist,
}

impl KeyLimits {
    /// The limits of a stored row. The columns refuse zero and negative
    /// values (CHECK); were one there anyway, it would read as 0, which
    /// admits nothing, rather than as no limit.
    pub fn from_storage(
        rate_limit_per_minute: Option<i64>,
        monthly_quota: Option<i64>,
        allowed_ips: Option<&str>,
    ) -> Self {
        Self {
            rate_limit_per_minute: rate_limit_per_minute
                .map(|v| u32::try_from(v.max(0)).unwrap_or(u32::MAX)),
            monthly_quota: monthly_quota.map(|v| v.max(0).unsigned_abs()),
            allowed_ips: AllowedIps::from_storage(allowed_ips),
        }
    }

    /// The three columns as bound on a write: `(rate, quota, ips)`.
    pub fn to_storage(&self) -> (Option<i64>, Option<i64>, Option<String>) {
        (
            self.rate_limit_per_minute.map(i64::from),
            self.monthly_quota
                .map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
            self.allowed_ips.as_ref().map(AllowedIps::to_storage),
        )
    }

    /// Whether the key has no limit at all.
    pub fn is_unlimited(&self) -> bool {
        self == &Self::default()
    }
}

/// Shown in audit details and the CLI: `rate 600/min, quota 100000/month,
/// ips 10.0.0.0/8`, each `none` when unset.
impl fmt::Display for KeyLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rate_limit_per_minute {
            Some(rate) => write!(f, "rate {rate}/min")?,
            None => f.write_str("rate none")?,
        }
        match self.monthly_quota {
            Some(quota) => write!(f, ", quota {quota}/month")?,
            None => f.write_str(", quota none")?,
        }
        match &self.allowed_ips {
            Some(ips) => write!(f, ", ips {ips}"),
            None => f.write_str(", ips none"),
        }
    }
}

/// A rate limit given by a person or a tool: 1 to `u32::MAX`.
pub fn rate_limit_per_minute(value: i64) -> Result<u32, LimitError> {
    u32::try_from(value)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| out_of_range("rate_limit_per_minute", value, u64::from(u32::MAX)))
}

/// A monthly quota given by a person or a tool: 1 to `i64::MAX` (what the
/// column holds).
pub fn monthly_quota(value: i64) -> Result<u64, LimitError> {
    u64::try_from(value)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| out_of_range("monthly_quota", value, i64::MAX.unsigned_abs()))
}

/// A command-line value that may be `none` (no limit): `Ok(None)` for
/// `none`, the parsed value otherwise.
fn or_none<T>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, LimitError>,
) -> Result<Option<T>, LimitError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        Ok(None)
    } else {
        parse(text).map(Some)
    }
}

/// `--rate-limit-per-minute N|none`.
pub fn rate_limit_arg(text: &str) -> Result<Option<u32>, LimitError> {
    or_none(text, |t| {
        let value = t
            .parse::<i64>()
            .map_err(|_| out_of_range("rate_limit_per_minute", t, u64::from(u32::MAX)))?;
        rate_limit_per_minute(value)
    })
}

/// `--monthly-quota N|none`.
pub fn monthly_quota_arg(text: &str) -> Result<Option<u64>, LimitError> {
    or_none(text, |t| {
        let value = t
            .parse::<i64>()
            .map_err(|_| out_of_range("monthly_quota", t, i64::MAX.unsigned_abs()))?;
        monthly_quota(value)
    })
}

/// `--allowed-ips LIST|none`.
pub fn allowed_ips_arg(text: &str) -> Result<Option<AllowedIps>, LimitError> {
    or_none(text, str::parse)
}

fn out_of_range(field: &'static str, value: impl fmt::Display, max: u64) -> LimitError {
    LimitError::OutOfRange {
        field,
        value: value.to_string(),
        max,
    }
}

/// The networks a key may be used from: at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedIps(Networks);

impl AllowedIps {
    /// Whether a request from `ip` may use the key.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The column's text (the canonical, comma-separated list) as stored.
    /// Entries that do not parse (only a hand edit can write them) match
    /// nothing, so a damaged list refuses rather than opens the key;
    /// `None` only for a NULL column.
    pub fn from_storage(text: Option<&str>) -> Option<Self> {
        let networks = text?.split(',').filter_map(|entry| entry.parse().ok());
        Some(Self(networks.collect()))
    }

    /// Each network, normalised: `["10.0.0.0/8", "192.0.2.7/32"]`.
    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// What the column holds: `10.0.0.0/8,192.0.2.7/32`.
    pub fn to_storage(&self) -> String {
        self.0.to_string()
    }
}

/// `10.0.0.0/8,192.0.2.7`: addresses or CIDR networks, comma-separated;
/// the first invalid entry is named; an empty list is refused (`none`, not
/// an empty list, means no restriction).
impl FromStr for AllowedIps {
    type Err = LimitError;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let networks: Networks = list.parse()?;
        if networks.is_empty() {
            return Err(LimitError::EmptyAllowlist);
        }
        Ok(Self(networks))
    }
}

impl fmt::Display for AllowedIps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A list of strings: `["10.0.0.0/8", "192.0.2.7/32"]`.
impl Serialize for AllowedIps {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.entries())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn zero_negative_and_too_large_limits_are_refused_by_name() {
        assert_eq!(rate_limit_per_minute(600), Ok(600));
        assert_eq!(rate_limit_per_minute(1), Ok(1));
        for bad in [0, -1, i64::MIN, i64::from(u32::MAX) + 1] {
            let err = rate_limit_per_minute(bad).unwrap_err().to_string();
            assert!(err.contains("rate_limit_per_minute"), "{err}");
            assert!(err.contains(&bad.to_string()), "{err}");
        }
        assert_eq!(monthly_quota(i64::MAX), Ok(i64::MAX.unsigned_abs()));
        for bad in [0, -5] {
            let err = monthly_quota(bad).unwrap_err().to_string();
            assert!(err.contains("monthly_quota must be"), "{err}");
        }
    }

    #[test]
    fn command_line_values_take_a_number_a_list_or_none() {
        assert_eq!(rate_limit_arg("600"), Ok(Some(600)));
        assert_eq!(rate_limit_arg(" None "), Ok(None));
        assert_eq!(monthly_quota_arg("none"), Ok(None));
        assert_eq!(monthly_quota_arg("5"), Ok(Some(5)));
        for bad in ["0", "-3", "ten", "1.5", ""] {
            let err = rate_limit_arg(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("rate_limit_per_minute must be"),
                "{bad}: {err}"
            );
            let err = monthly_quota_arg(bad).unwrap_err().to_string();
            assert!(err.starts_with("monthly_quota must be"), "{bad}: {err}");
        }
        assert_eq!(allowed_ips_arg("none"), Ok(None));
        assert_eq!(
            allowed_ips_arg("10.0.0.0/8").unwrap().unwrap().to_storage(),
            "10.0.0.0/8"
        );
        assert!(allowed_ips_arg("10.0.0.0/33").is_err());
    }

    #[test]
    fn an_allowlist_allows_its_networks_only() {
        let list: AllowedIps = "10.0.0.0/8, 192.0.2.7".parse().unwrap();
        assert!(list.allows(ip("10.1.2.3")));
        assert!(list.allows(ip("192.0.2.7")));
        assert!(list.allows(ip("::ffff:192.0.2.7")));
        assert!(!list.allows(ip("192.0.2.8")));
        assert!(!list.allows(ip("::1")));
        assert_eq!(list.to_storage(), "10.0.0.0/8,192.0.2.7/32");
        assert_eq!(
            AllowedIps::from_storage(Some(&list.to_storage())),
            Some(list.clone())
        );
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            serde_json::json!(["10.0.0.0/8", "192.0.2.7/32"])
        );
    }

    #[test]
    fn an_unparsable_or_empty_allowlist_is_refused_by_name() {
        let err = "10.0.0.0/8,10.0.0.300".parse::<AllowedIps>().unwrap_err();
        assert!(err.to_string().contains("'10.0.0.300'"), "{err}");
        assert!(err.to_string().starts_with("allowed_ips"), "{err}");
        for empty in ["", " , "] {
            assert_eq!(empty.parse::<AllowedIps>(), Err(LimitError::EmptyAllowlist));
        }
    }

    #[test]
    fn a_damaged_stored_list_refuses_rather_than_opens() {
        assert_eq!(AllowedIps::from_storage(None), None);
        let damaged = AllowedIps::from_storage(Some("bogus")).unwrap();
        assert!(!damaged.allows(ip("10.0.0.1")));
        let partly = AllowedIps::from_storage(Some("bogus,10.0.0.0/8")).unwrap();
        assert!(partly.allows(ip("10.0.0.1")));
        assert!(!partly.allows(ip("11.0.0.1")));
    }

    #[test]
    fn stored_limits_read_back_and_bad_ones_admit_nothing() {
        let limits = KeyLimits {
            rate_limit_per_minute: Some(600),
            monthly_quota: Some(100_000),
            allowed_ips: Some("10.0.0.0/8,::1".parse().unwrap()),
        };
        let (rate, quota, ips) = limits.to_storage();
        assert_eq!(KeyLimits::from_storage(rate, quota, ips.as_deref()), limits);
        assert_eq!(
            KeyLimits::from_storage(None, None, None),
            KeyLimits::default()
        );
        let bad = KeyLimits::from_storage(Some(-1), Some(0), None);
        assert_eq!(bad.rate_limit_per_minute, Some(0));
        assert_eq!(bad.monthly_quota, Some(0));
    }

    #[test]
    fn a_change_sets_removes_or_keeps_each_kind() {
        let current = KeyLimits {
            rate_limit_per_minute: Some(600),
            monthly_quota: Some(1000),
            allowed_ips: Some("10.0.0.0/8".parse().unwrap()),
        };
        assert!(LimitsChange::default().is_empty());
        assert_eq!(LimitsChange::default().apply(&current), current);
        let change = LimitsChange {
            rate_limit_per_minute: Some(Some(60)),
            monthly_quota: Some(None),
            allowed_ips: None,
        };
        assert!(!change.is_empty());
        assert_eq!(
            change.apply(&current),
            KeyLimits {
                rate_limit_per_minute: Some(60),
                monthly_quota: None,
                allowed_ips: current.allowed_ips.clone(),
            }
        );
    }

    #[test]
    fn limits_print_each_kind_or_none() {
        assert_eq!(
            KeyLimits::default().to_string(),
            "rate none, quota none, ips none"
        );
        assert!(KeyLimits::default().is_unlimited());
        let limits = KeyLimits {
            rate_limit_per_minute: Some(600),
            monthly_quota: Some(100_000),
            allowed_ips: Some("10.0.0.0/8".parse().unwrap()),
        };
        assert!(!limits.is_unlimited());
        assert_eq!(
            limits.to_string(),
            "rate 600/min, quota 100000/month, ips 10.0.0.0/8"
        );
    }
}

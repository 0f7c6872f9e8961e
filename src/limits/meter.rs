//! Each limited key's standing on this replica: its bucket, its month's
//! units, and what it used since the last sync. The check is in memory (one
//! read lock on the map, one lock on the key); the database is only read
//! and written by the sync, in the background (see `sync.rs`).

use super::bucket::Bucket;
use super::quota::{MonthUse, month_of, until_month_turns};
use crate::store::LimitCount;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The limits that apply to one call (the key's own, or the server's
/// default rate for a key without one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub rate_per_minute: Option<u32>,
    pub monthly_quota: Option<u64>,
}

impl Applied {
    /// Whether anything is to be counted.
    pub fn any(&self) -> bool {
        self.rate_per_minute.is_some() || self.monthly_quota.is_some()
    }
}

/// Why a call was refused, with how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    RateLimited { per_minute: u32, wait: Duration },
    QuotaExhausted { quota: u64, wait: Duration },
}

/// Where a key stands now, for `whoami`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// Calls the bucket would admit now (`None`: no rate limit).
    pub minute_left: Option<u64>,
    /// Units used this month, as far as this replica knows.
    pub month_used: u64,
    /// Units left this month (`None`: no quota).
    pub month_left: Option<u64>,
}

/// One key's counters.
pub struct Meter {
    key_id: i64,
    state: Mutex<State>,
}

struct State {
    /// Created at the key's first rate-limited call.
    bucket: Option<Bucket>,
    /// The capacity the bucket was last used with (for deducting others'
    /// calls at the sync).
    capacity: u32,
    month: MonthUse,
    /// Used here since the last sync, in `month`.
    pending_calls: u64,
    pending_units: u64,
    /// The totals of every replica at the last sync, for `month`; `None`
    /// until the first sync of this month.
    synced: Option<(u64, u64)>,
    /// The last call (microseconds since the epoch).
    last_call: i64,
}

impl Meter {
    fn new(key_id: i64, now: DateTime<Utc>) -> Self {
        Self {
            key_id,
            state: Mutex::new(State {
                bucket: None,
                capacity: 0,
                month: MonthUse::new(now),
                pending_calls: 0,
                pending_units: 0,
                synced: None,
                last_call: now.timestamp_micros(),
            }),
        }
    }
}

impl State {
    /// A new month starts from nothing here; its first sync brings what
    /// the other replicas already counted.
    fn roll(&mut self, now: DateTime<Utc>) {
        if self.month.roll(now) {
            self.pending_calls = 0;
            self.pending_units = 0;
            self.synced = None;
        }
    }

    fn bucket(&mut self, capacity: u32, now_micros: i64) -> &mut Bucket {
        self.capacity = capacity;
        self.bucket
            .get_or_insert_with(|| Bucket::full(capacity, now_micros))
    }
}

/// Every limited key seen recently on this replica.
#[derive(Default)]
pub struct Meters {
    keys: RwLock<HashMap<i64, Arc<Meter>>>,
}

impl Meters {
    pub fn new() -> Self {
        Self::default()
    }

    fn meter(&self, key_id: i64, now: DateTime<Utc>) -> Option<Arc<Meter>> {
        if let Some(meter) = self.keys.read().ok()?.get(&key_id) {
            return Some(meter.clone());
        }
        let mut keys = self.keys.write().ok()?;
        Some(
            keys.entry(key_id)
                .or_insert_with(|| Arc::new(Meter::new(key_id, now)))
                .clone(),
        )
    }

    /// Admits one call costing `cost` units, or refuses it. The quota is
    /// checked first: a refused call takes no token and no unit.
    pub fn admit(
        &self,
        key_id: i64,
        limits: Applied,
        cost: u64,
        now: DateTime<Utc>,
    ) -> Result<(), Refused> {
        if !limits.any() {
            return Ok(());
        }
        // A poisoned lock (a panic elsewhere) admits: the limits guard
        // against abuse, they must not take the server down with them.
        let Some(meter) = self.meter(key_id, now) else {
            return Ok(());
        };
        let Ok(mut state) = meter.state.lock() else {
            return Ok(());
        };
        let now_micros = now.timestamp_micros();
        state.roll(now);
        if let Some(quota) = limits.monthly_quota
            && !state.month.fits(cost, quota)
        {
            return Err(Refused::QuotaExhausted {
                quota,
                wait: until_month_turns(now),
            });
        }
        if let Some(per_minute) = limits.rate_per_minute {
            state
                .bucket(per_minute, now_micros)
                .take(per_minute, now_micros)
                .map_err(|wait| Refused::RateLimited { per_minute, wait })?;
        }
        state.month.used = state.month.used.saturating_add(cost);
        state.pending_calls += 1;
        state.pending_units = state.pending_units.saturating_add(cost);
        state.last_call = now_micros;
        Ok(())
    }

    /// Where `key_id` stands under `limits` now.
    pub fn standing(&self, key_id: i64, limits: Applied, now: DateTime<Utc>) -> Standing {
        let full = Standing {
            minute_left: limits.rate_per_minute.map(u64::from),
            month_used: 0,
            month_left: limits.monthly_quota,
        };
        let meter = match self.keys.read() {
            Ok(keys) => keys.get(&key_id).cloned(),
            Err(_) => None,
        };
        let Some(meter) = meter else {
            return full;
        };
        let Ok(mut state) = meter.state.lock() else {
            return full;
        };
        let now_micros = now.timestamp_micros();
        state.roll(now);
        let minute_left = limits.rate_per_minute.map(|per_minute| {
            let bucket = state.bucket(per_minute, now_micros);
            bucket.available(per_minute, now_micros)
        });
        Standing {
            minute_left,
            month_used: state.month.used,
            month_left: limits.monthly_quota.map(|q| state.month.left(q)),
        }
    }

    /// The counts to send, for every key called within `active` before
    /// `now` (a key with nothing new still learns the others' counts);
    /// what was taken is no longer pending. Keys idle for longer than
    /// `forget` are dropped (their bucket has refilled long ago).
    pub fn take_pending(
        &self,
        now: DateTime<Utc>,
        active: Duration,
        forget: Duration,
    ) -> Vec<(Arc<Meter>, LimitCount)> {
        let now_micros = now.timestamp_micros();
        let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        let (active, forget) = (micros(active), micros(forget));
        let mut taken = Vec::new();
        let mut idle = Vec::new();
        if let Ok(keys) = self.keys.read() {
            for meter in keys.values() {
                let Ok(mut state) = meter.state.lock() else {
                    continue;
                };
                let since = now_micros.saturating_sub(state.last_call);
                if since > forget && state.pending_calls == 0 {
                    idle.push(meter.key_id);
                    continue;
                }
                if since > active && state.pending_calls == 0 {
                    continue;
                }
                taken.push((
                    meter.clone(),
                    LimitCount {
                        key_id: meter.key_id,
                        month: state.month.month,
                        calls: i64::try_from(state.pending_calls).unwrap_or(i64::MAX),
                        units: i64::try_from(state.pending_units).unwrap_or(i64::MAX),
                        minute: now_micros.div_euclid(super::bucket::TICKS_PER_TOKEN),
                        recent_calls: 0,
                    },
                ));
                state.pending_calls = 0;
                state.pending_units = 0;
            }
        }
        if !idle.is_empty()
            && let Ok(mut keys) = self.keys.write()
        {
            for key_id in idle {
                keys.remove(&key_id);
            }
        }
        taken
    }

    /// How many keys are held (for the memory figure and tests).
    pub fn len(&self) -> usize {
        self.keys.read().map(|keys| keys.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Meter {
    /// Folds what every replica counted (`total`, after `sent` was added)
    /// into this replica's state: the others' new calls are deducted from
    /// the bucket, their units added to the month. At the first sync of a
    /// month (a key new here, a restart) the month's calls are history: only
    /// the others' calls of the current and the previous minute are
    /// deducted (that holds back more than a bucket refilled since would,
    /// never less).
    pub fn fold(&self, sent: &LimitCount, total: &LimitCount, now: DateTime<Utc>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.roll(now);
        if state.month.month != sent.month || month_of(now) != total.month {
            return;
        }
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        let (sent_calls, sent_units) = (count(sent.calls), count(sent.units));
        let (calls, units) = (count(total.calls), count(total.units));
        let (other_calls, other_units) = match state.synced {
            None => (
                count(total.recent_calls).saturating_sub(sent_calls),
                units.saturating_sub(sent_units),
            ),
            Some((seen_calls, seen_units)) => (
                calls.saturating_sub(seen_calls).saturating_sub(sent_calls),
                units.saturating_sub(seen_units).saturating_sub(sent_units),
            ),
        };
        state.synced = Some((calls, units));
        state.month.used = state.month.used.saturating_add(other_units);
        if other_calls > 0 && state.capacity > 0 {
            let capacity = state.capacity;
            let now_micros = now.timestamp_micros();
            state
                .bucket(capacity, now_micros)
                .deduct(other_calls, capacity, now_micros);
        }
    }

    /// Puts back what a failed sync took, for the next one.
    pub fn restore(&self, sent: &LimitCount) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.month.month == sent.month {
            state.pending_calls += u64::try_from(sent.calls).unwrap_or(0);
            state.pending_units += u64::try_from(sent.units).unwrap_or(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, s).unwrap()
    }

    const RATE: Applied = Applied {
        rate_per_minute: Some(3),
        monthly_quota: None,
    };

    #[test]
    fn the_quota_is_checked_before_the_bucket_and_refusals_take_nothing() {
        let meters = Meters::new();
        let limits = Applied {
            rate_per_minute: Some(10),
            monthly_quota: Some(5),
        };
        let now = at(30, 23, 59, 0);
        assert_eq!(meters.admit(1, limits, 5, now), Ok(()));
        assert_eq!(
            meters.admit(1, limits, 1, now),
            Err(Refused::QuotaExhausted {
                quota: 5,
                wait: Duration::from_secs(60)
            })
        );
        let standing = meters.standing(1, limits, now);
        assert_eq!(standing.minute_left, Some(9));
        assert_eq!(standing.month_left, Some(0));
        // December.
        assert_eq!(
            meters.admit(1, limits, 1, now + chrono::Duration::seconds(60)),
            Ok(())
        );
    }

    #[test]
    fn an_active_key_costs_under_two_hundred_bytes() {
        // The meter behind its Arc (two counters), and the map's entry
        // (key, pointer, one control byte) at the map's 7/8 load.
        let meter = std::mem::size_of::<Meter>() + 2 * std::mem::size_of::<usize>();
        let entry = (std::mem::size_of::<(i64, Arc<Meter>)>() + 1) * 8 / 7;
        let per_key = meter + entry;
        eprintln!("per active key: meter {meter} B + map entry {entry} B = {per_key} B");
        assert!(per_key < 200, "{per_key} bytes");
    }

    #[test]
    fn keys_without_limits_are_not_held() {
        let meters = Meters::new();
        meters
            .admit(1, Applied::default(), 1, at(1, 0, 0, 0))
            .unwrap();
        assert!(meters.is_empty());
    }

    #[test]
    fn a_sync_deducts_the_other_replicas_calls_and_adds_their_units() {
        let meters = Meters::new();
        let now = at(2, 0, 0, 0);
        meters.admit(1, RATE, 1, now).unwrap();
        let taken = meters.take_pending(now, Duration::from_secs(120), Duration::from_secs(600));
        assert_eq!(taken.len(), 1);
        let (meter, sent) = &taken[0];
        assert_eq!((sent.calls, sent.units), (1, 1));
        // First sync: 40 units of history this month, of which the other
        // replicas made 1 call in the last two minutes.
        meter.fold(
            sent,
            &LimitCount {
                calls: 41,
                units: 41,
                recent_calls: 2,
                ..*sent
            },
            now,
        );
        let standing = meters.standing(1, RATE, now);
        assert_eq!(standing.minute_left, Some(1));
        assert_eq!(standing.month_used, 41);
        // Then another replica makes 1 call: this one's bucket is empty.
        let taken = meters.take_pending(now, Duration::from_secs(120), Duration::from_secs(600));
        let (meter, sent) = &taken[0];
        assert_eq!((sent.calls, sent.units), (0, 0));
        meter.fold(
            sent,
            &LimitCount {
                calls: 42,
                units: 42,
                ..*sent
            },
            now,
        );
        assert_eq!(meters.standing(1, RATE, now).minute_left, Some(0));
        assert!(matches!(
            meters.admit(1, RATE, 1, now),
            Err(Refused::RateLimited { per_minute: 3, .. })
        ));
    }

    #[test]
    fn a_failed_sync_is_sent_again_and_idle_keys_are_forgotten() {
        let meters = Meters::new();
        let now = at(3, 0, 0, 0);
        meters.admit(7, RATE, 1, now).unwrap();
        let taken = meters.take_pending(now, Duration::from_secs(1), Duration::from_secs(10));
        taken[0].0.restore(&taken[0].1);
        let later = now + chrono::Duration::seconds(5);
        let taken = meters.take_pending(later, Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(taken[0].1.calls, 1, "restored");
        let idle = now + chrono::Duration::seconds(11);
        assert!(
            meters
                .take_pending(idle, Duration::from_secs(1), Duration::from_secs(10))
                .is_empty()
        );
        assert!(meters.is_empty());
    }
}

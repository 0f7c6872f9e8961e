//! The shared counters behind per-key rate limits and monthly quotas
//! (`key_limit_counts`, issue 13): each replica adds what it admitted since
//! its last sync and reads back the total of every replica. Keyed by key id
//! and month; every statement names its key, none reads across keys.

use super::StoreError;
use async_trait::async_trait;

/// Calls and quota units of one key in one month (`yyyymm`): what a
/// replica adds, or the total of all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitCount {
    pub key_id: i64,
    pub month: i32,
    pub calls: i64,
    pub units: i64,
    /// Minutes since the epoch: when a replica adds, its clock's minute (its
    /// calls are counted in it); in a total, the latest minute written.
    pub minute: i64,
    /// In a total: the calls of `minute` and of the minute before, of
    /// every replica (what a replica new to the key takes from its bucket).
    pub recent_calls: i64,
}

#[async_trait]
pub trait LimitCountStore: Send + Sync + 'static {
    /// Adds each count to its key's month (creating the row) in one
    /// transaction, and returns the totals in the same order.
    async fn add_limit_counts(&self, counts: &[LimitCount]) -> Result<Vec<LimitCount>, StoreError>;

    /// The total of one key's month, if anything was counted.
    async fn limit_count(&self, key_id: i64, month: i32) -> Result<Option<LimitCount>, StoreError>;

    /// Deletes the months before `month`; how many rows went.
    async fn prune_limit_counts(&self, month: i32) -> Result<u64, StoreError>;
}

// Every SET expression reads the row as it was (both databases): a later
// minute moves the window (the current minute becomes the previous one, or
// nothing if a minute was skipped); a replica whose clock is behind adds
// to the current minute.
pub(crate) const ADD_COUNT: &str = "INSERT INTO key_limit_counts \
     (key_id, month, calls, units, minute, minute_calls, prev_minute_calls) \
     VALUES ($1, $2, $3, $4, $5, $3, 0) ON CONFLICT (key_id, month) DO UPDATE SET \
     calls = key_limit_counts.calls + excluded.calls, \
     units = key_limit_counts.units + excluded.units, \
     prev_minute_calls = CASE \
         WHEN excluded.minute = key_limit_counts.minute + 1 THEN key_limit_counts.minute_calls \
         WHEN excluded.minute > key_limit_counts.minute + 1 THEN 0 \
         ELSE key_limit_counts.prev_minute_calls END, \
     minute_calls = CASE WHEN excluded.minute > key_limit_counts.minute \
         THEN excluded.minute_calls \
         ELSE key_limit_counts.minute_calls + excluded.minute_calls END, \
     minute = CASE WHEN excluded.minute > key_limit_counts.minute \
         THEN excluded.minute ELSE key_limit_counts.minute END \
     RETURNING calls, units, minute, minute_calls + prev_minute_calls";
pub(crate) const SELECT_COUNT: &str = "SELECT calls, units, minute, minute_calls + prev_minute_calls \
     FROM key_limit_counts WHERE key_id = $1 AND month = $2";
pub(crate) const PRUNE_COUNTS: &str = "DELETE FROM key_limit_counts WHERE month < $1";

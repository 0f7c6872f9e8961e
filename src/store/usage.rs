//! The hourly per-key, per-tool usage rollup (issue 13): written in batches
//! by the usage flusher, read by `keys usage`, `admin_key_usage` and
//! `my_usage`. The SQL is in `usage_sql.rs`, shared by both backends.

use super::StoreError;
use crate::tenant::UserId;
use async_trait::async_trait;

/// Latency buckets per row: the columns `b00` to `b17` (their bounds are
/// `usage::histogram`'s, which the migration lists).
pub const BUCKETS: usize = 18;

/// Calls per latency bucket.
pub type Buckets = [u64; BUCKETS];

/// What one replica adds to one `(key, tool, hour)` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    pub key_id: i64,
    pub tool: String,
    /// The hour's start, in seconds since the Unix epoch (UTC).
    pub hour: i64,
    pub calls: i64,
    pub errors: i64,
    pub denied: i64,
    /// Sum of the durations of the calls that ran, in microseconds.
    pub total_micros: i64,
    pub buckets: Buckets,
}

/// A stored row: the figures of one key and tool in one hour, summed over
/// every replica.
pub type UsageRow = UsageDelta;

/// Which rows a report shows (an administrator's: any tenant).
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub key_id: Option<i64>,
    /// A normalized email (see `keys::normalize_email`): the keys of that
    /// owner.
    pub email: Option<String>,
    /// The first hour shown (seconds since the epoch, an hour's start).
    pub since_hour: i64,
    /// Most rows returned, newest hours first.
    pub limit: i64,
}

#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds each delta to its row, creating it if new: several replicas
    /// add to the same rows.
    async fn add_tool_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError>;

    /// Rows matching `filter`, newest hour first, then by key and tool.
    async fn tool_usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>, StoreError>;

    /// The rows of every key of `user`'s tenant from `since_hour` on (at
    /// most `limit`, newest first): never another tenant's.
    async fn tenant_tool_usage(
        &self,
        user: &UserId,
        since_hour: i64,
        limit: i64,
    ) -> Result<Vec<UsageRow>, StoreError>;

    /// Deletes at most `batch` rows of hours before `before_hour`; how many
    /// went.
    async fn prune_tool_usage(&self, before_hour: i64, batch: i64) -> Result<u64, StoreError>;
}

//! The usage rollup's SQL, written once and compiled once per backend:
//! `sqlite.rs` and `postgres.rs` each include this file as their module
//! `usage_sql`, after naming their store `This` (see `sql_backend.rs`). The
//! text is the same on both (`ON CONFLICT … DO UPDATE` adds to the stored
//! counts, row values in the pruning `IN`).

use super::This;
use crate::store::StoreError;
use crate::store::sql_backend::SqlBackend;
use crate::store::usage::{BUCKETS, Buckets, UsageDelta, UsageFilter, UsageRow, UsageStore};
use crate::tenant::UserId;
use async_trait::async_trait;
use sqlx::Row;
use std::sync::LazyLock;

type DbRow = <<This as SqlBackend>::Db as sqlx::Database>::Row;

/// The bucket columns, `b00` to `b17` (see the migration for their bounds).
fn bucket_column(i: usize) -> String {
    format!("b{i:02}")
}

/// The columns read into a [`UsageRow`], prefixed by the rollup's alias `u`.
static COLUMNS: LazyLock<String> = LazyLock::new(|| {
    let buckets: Vec<String> = (0..BUCKETS)
        .map(|i| format!("u.{}", bucket_column(i)))
        .collect();
    format!(
        "u.key_id, u.tool, u.hour, u.calls, u.errors, u.denied, u.total_micros, {}",
        buckets.join(", ")
    )
});

/// Rows per `INSERT` statement: 25 parameters each, well under both
/// backends' limit on parameters (SQLite 32766, Postgres 65535).
const ROWS_PER_STATEMENT: usize = 100;

/// The columns an upsert writes, in the order of its parameters.
fn upsert_columns() -> Vec<String> {
    [
        "key_id",
        "tool",
        "hour",
        "calls",
        "errors",
        "denied",
        "total_micros",
    ]
    .iter()
    .map(|c| (*c).to_owned())
    .chain((0..BUCKETS).map(bucket_column))
    .collect()
}

/// Adds `rows` deltas to their rows in one statement; the counts of a row
/// another replica wrote first are added to, never replaced. The deltas of
/// one statement are of distinct rows (Postgres refuses to update a row
/// twice in one statement).
fn upsert_sql(rows: usize) -> String {
    let columns = upsert_columns();
    let width = columns.len();
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sums: Vec<String> = columns
        .iter()
        .skip(3)
        .map(|c| format!("{c} = tool_usage.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO tool_usage ({}) VALUES {} \
         ON CONFLICT (key_id, tool, hour) DO UPDATE SET {}",
        columns.join(", "),
        values.join(", "),
        sums.join(", ")
    )
}

/// The statement of a full batch, built once.
static UPSERT_FULL: LazyLock<String> = LazyLock::new(|| upsert_sql(ROWS_PER_STATEMENT));

/// An administrator's report: every filter optional. Keys are never
/// deleted, but a row outlives nothing it needs: the join is an outer one.
static SELECT_FILTERED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM tool_usage u LEFT JOIN api_keys k ON k.key_id = u.key_id \
         WHERE u.hour >= $1 AND ($2 IS NULL OR u.key_id = $2) \
           AND ($3 IS NULL OR lower(trim(k.email)) = $3) \
         ORDER BY u.hour DESC, u.key_id, u.tool LIMIT $4",
        COLUMNS.as_str()
    )
});

/// One tenant's report: only the rows of keys whose `user_id` is the caller's.
static SELECT_TENANT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM tool_usage u JOIN api_keys k ON k.key_id = u.key_id \
         WHERE k.user_id = $1 AND u.hour >= $2 \
         ORDER BY u.hour DESC, u.key_id, u.tool LIMIT $3",
        COLUMNS.as_str()
    )
});

/// At most `$2` rows older than `$1`, by primary key (the same text on both
/// backends, unlike `ctid` or `rowid`).
const PRUNE: &str = "DELETE FROM tool_usage WHERE (key_id, tool, hour) IN \
     (SELECT key_id, tool, hour FROM tool_usage WHERE hour < $1 LIMIT $2)";

fn row_of(row: &DbRow) -> Result<UsageRow, sqlx::Error> {
    let mut buckets = Buckets::default();
    for (i, count) in buckets.iter_mut().enumerate() {
        *count = u64::try_from(row.try_get::<i64, _>(bucket_column(i).as_str())?).unwrap_or(0);
    }
    Ok(UsageRow {
        key_id: row.try_get("key_id")?,
        tool: row.try_get("tool")?,
        hour: row.try_get("hour")?,
        calls: row.try_get("calls")?,
        errors: row.try_get("errors")?,
        denied: row.try_get("denied")?,
        total_micros: row.try_get("total_micros")?,
        buckets,
    })
}

#[async_trait]
impl UsageStore for This {
    async fn add_tool_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError> {
        // The same order in every replica, so that two flushes touching the
        // same rows lock them in the same order (no deadlock on Postgres).
        let mut ordered: Vec<&UsageDelta> = deltas.iter().collect();
        ordered.sort_by(|a, b| (a.key_id, &a.tool, a.hour).cmp(&(b.key_id, &b.tool, b.hour)));
        let mut tx = self.write_tx().await?;
        for chunk in ordered.chunks(ROWS_PER_STATEMENT) {
            let partial;
            let sql = if chunk.len() == ROWS_PER_STATEMENT {
                UPSERT_FULL.as_str()
            } else {
                partial = upsert_sql(chunk.len());
                partial.as_str()
            };
            let mut query = sqlx::query(sql);
            for d in chunk {
                query = query
                    .bind(d.key_id)
                    .bind(&d.tool)
                    .bind(d.hour)
                    .bind(d.calls)
                    .bind(d.errors)
                    .bind(d.denied)
                    .bind(d.total_micros);
                for count in d.buckets {
                    query = query.bind(i64::try_from(count).unwrap_or(i64::MAX));
                }
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn tool_usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(SELECT_FILTERED.as_str())
            .bind(filter.since_hour)
            .bind(filter.key_id)
            .bind(filter.email.as_deref())
            .bind(filter.limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row_of).collect::<Result<_, _>>()?)
    }

    async fn tenant_tool_usage(
        &self,
        user: &UserId,
        since_hour: i64,
        limit: i64,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(SELECT_TENANT.as_str())
            .bind(user.as_str())
            .bind(since_hour)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row_of).collect::<Result<_, _>>()?)
    }

    async fn prune_tool_usage(&self, before_hour: i64, batch: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(PRUNE)
            .bind(before_hour)
            .bind(batch)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

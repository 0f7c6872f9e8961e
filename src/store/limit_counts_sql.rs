//! The limit counters' SQL, written once and compiled once per backend:
//! `sqlite.rs` and `postgres.rs` each include this file as their module
//! `limit_counts_sql`, after naming their store `This` (see `sql_backend.rs`).

use super::This;
use crate::store::StoreError;
use crate::store::limit_counts::*;
use crate::store::sql_backend::SqlBackend;
use async_trait::async_trait;

#[async_trait]
impl LimitCountStore for This {
    async fn add_limit_counts(&self, counts: &[LimitCount]) -> Result<Vec<LimitCount>, StoreError> {
        if counts.is_empty() {
            return Ok(Vec::new());
        }
        // In key order, so two replicas' transactions lock rows in the same
        // order and never deadlock each other.
        let mut order: Vec<usize> = (0..counts.len()).collect();
        order.sort_by_key(|&i| (counts[i].key_id, counts[i].month));
        let mut totals = counts.to_vec();
        let mut tx = self.pool().begin().await?;
        for i in order {
            let count = counts[i];
            let (calls, units, minute, recent_calls): (i64, i64, i64, i64) =
                sqlx::query_as(ADD_COUNT)
                    .bind(count.key_id)
                    .bind(count.month)
                    .bind(count.calls)
                    .bind(count.units)
                    .bind(count.minute)
                    .fetch_one(&mut *tx)
                    .await?;
            totals[i] = LimitCount {
                key_id: count.key_id,
                month: count.month,
                calls,
                units,
                minute,
                recent_calls,
            };
        }
        tx.commit().await?;
        Ok(totals)
    }

    async fn limit_count(&self, key_id: i64, month: i32) -> Result<Option<LimitCount>, StoreError> {
        let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(SELECT_COUNT)
            .bind(key_id)
            .bind(month)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|(calls, units, minute, recent_calls)| LimitCount {
            key_id,
            month,
            calls,
            units,
            minute,
            recent_calls,
        }))
    }

    async fn prune_limit_counts(&self, month: i32) -> Result<u64, StoreError> {
        let done = sqlx::query(PRUNE_COUNTS)
            .bind(month)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

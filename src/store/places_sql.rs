//! The saved places' SQL, written once and compiled once per backend:
//! `sqlite.rs` and `postgres.rs` each include this file as their module
//! `places_sql`, after naming their store `This` (see `sql_backend.rs`).
//! Every query names the tenant (`user_id = $1`).

use super::This;
use crate::store::StoreError;
use crate::store::places::{MAX_PLACES, NewPlace, Place, PlaceStore, name_key};
use crate::store::sql_backend::SqlBackend;
use crate::tenant::UserId;
use chrono::{DateTime, Utc};

/// The tenant's other places: a save that would go past [`MAX_PLACES`] is
/// refused.
const COUNT_OTHERS: &str = "SELECT count(*) FROM places WHERE user_id = $1 AND name_key <> $2";

/// Saves a place, replacing the tenant's place of the same name key (`$7`
/// is both times of a new one).
const UPSERT: &str = "INSERT INTO places (user_id, name_key, name, address, lat, lng, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
     ON CONFLICT (user_id, name_key) DO UPDATE SET name = excluded.name, \
     address = excluded.address, lat = excluded.lat, lng = excluded.lng, \
     updated_at = excluded.updated_at \
     RETURNING name, address, lat, lng, created_at, updated_at";

const SELECT_ALL: &str = "SELECT name, address, lat, lng, created_at, updated_at \
     FROM places WHERE user_id = $1 ORDER BY name_key";

const SELECT_ONE: &str = "SELECT name, address, lat, lng, created_at, updated_at \
     FROM places WHERE user_id = $1 AND name_key = $2";

const DELETE: &str = "DELETE FROM places WHERE user_id = $1 AND name_key = $2";

fn full() -> StoreError {
    StoreError::Conflict(format!(
        "a tenant keeps at most {MAX_PLACES} places: delete one first (delete_place)"
    ))
}

#[async_trait::async_trait]
impl PlaceStore for This {
    async fn save_place(
        &self,
        user: &UserId,
        place: NewPlace,
        now: DateTime<Utc>,
    ) -> Result<Place, StoreError> {
        let key = name_key(&place.name);
        let mut tx = self.write_tx().await?;
        let others: i64 = sqlx::query_scalar(COUNT_OTHERS)
            .bind(user.as_str())
            .bind(&key)
            .fetch_one(&mut *tx)
            .await?;
        if others >= MAX_PLACES {
            return Err(full());
        }
        let saved: Place = sqlx::query_as(UPSERT)
            .bind(user.as_str())
            .bind(&key)
            .bind(place.name.trim())
            .bind(&place.address)
            .bind(place.lat)
            .bind(place.lng)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn places(&self, user: &UserId) -> Result<Vec<Place>, StoreError> {
        Ok(sqlx::query_as(SELECT_ALL)
            .bind(user.as_str())
            .fetch_all(self.pool())
            .await?)
    }

    async fn place(&self, user: &UserId, name: &str) -> Result<Option<Place>, StoreError> {
        Ok(sqlx::query_as(SELECT_ONE)
            .bind(user.as_str())
            .bind(name_key(name))
            .fetch_optional(self.pool())
            .await?)
    }

    async fn delete_place(&self, user: &UserId, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(DELETE)
            .bind(user.as_str())
            .bind(name_key(name))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

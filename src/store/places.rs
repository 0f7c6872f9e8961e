//! Saved places: a tenant's named points (depots, regular customers), so
//! routes and geocoding can name them. Every call takes the tenant.

use super::StoreError;
use super::postgres::PgStore;
use super::sql_backend::SqlBackend;
use super::sqlite::SqliteStore;
use crate::tenant::UserId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rmcp::schemars;
use serde::Serialize;

/// Most places one tenant may keep.
pub const MAX_PLACES: i64 = 1000;

/// A saved place.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Place {
    pub name: String,
    pub address: String,
    pub lat: f64,
    pub lng: f64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A place to save; `name` is already checked (see `mcp::routing`).
#[derive(Debug, Clone)]
pub struct NewPlace {
    pub name: String,
    pub address: String,
    pub lat: f64,
    pub lng: f64,
}

/// The key a name is unique by: trimmed, lower case.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

#[async_trait]
pub trait PlaceStore: Send + Sync {
    /// Saves the place, replacing the tenant's place of the same name.
    async fn save_place(&self, user: &UserId, place: NewPlace) -> Result<Place, StoreError>;
    /// The tenant's places, by name.
    async fn places(&self, user: &UserId) -> Result<Vec<Place>, StoreError>;
    async fn place(&self, user: &UserId, name: &str) -> Result<Option<Place>, StoreError>;
    /// Whether there was such a place.
    async fn delete_place(&self, user: &UserId, name: &str) -> Result<bool, StoreError>;
}

const COLUMNS: &str = "name, address, lat, lng, created_at, updated_at";
const COUNT_OTHERS: &str = "SELECT count(*) FROM places WHERE user_id = $1 AND name_key <> $2";
const UPSERT: &str = "INSERT INTO places (user_id, name_key, name, address, lat, lng, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
     ON CONFLICT (user_id, name_key) DO UPDATE SET name = excluded.name, \
     address = excluded.address, lat = excluded.lat, lng = excluded.lng, \
     updated_at = excluded.updated_at \
     RETURNING name, address, lat, lng, created_at, updated_at";

fn full() -> StoreError {
    StoreError::Conflict(format!(
        "a tenant keeps at most {MAX_PLACES} places: delete one first (delete_place)"
    ))
}

// The two backends differ only in their pool and transaction types; the
// SQL is the same.
macro_rules! place_store_impl {
    ($store:ty) => {
        #[async_trait]
        impl PlaceStore for $store {
            async fn save_place(
                &self,
                user: &UserId,
                place: NewPlace,
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
                    .bind(Utc::now())
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(saved)
            }

            async fn places(&self, user: &UserId) -> Result<Vec<Place>, StoreError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM places WHERE user_id = $1 ORDER BY name_key"
                ))
                .bind(user.as_str())
                .fetch_all(self.pool())
                .await?)
            }

            async fn place(&self, user: &UserId, name: &str) -> Result<Option<Place>, StoreError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM places WHERE user_id = $1 AND name_key = $2"
                ))
                .bind(user.as_str())
                .bind(name_key(name))
                .fetch_optional(self.pool())
                .await?)
            }

            async fn delete_place(&self, user: &UserId, name: &str) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM places WHERE user_id = $1 AND name_key = $2")
                    .bind(user.as_str())
                    .bind(name_key(name))
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

place_store_impl!(SqliteStore);
place_store_impl!(PgStore);

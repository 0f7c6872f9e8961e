//! Saved places: a tenant's named points (depots, regular customers), so
//! routes and geocoding can name them. Every call takes the tenant.
//!
//! The SQL is in `places_sql.rs`, written once for both backends.

use super::StoreError;
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
    /// Saves the place, replacing the tenant's place of the same name;
    /// dated `now`.
    async fn save_place(
        &self,
        user: &UserId,
        place: NewPlace,
        now: DateTime<Utc>,
    ) -> Result<Place, StoreError>;
    /// The tenant's places, by name.
    async fn places(&self, user: &UserId) -> Result<Vec<Place>, StoreError>;
    async fn place(&self, user: &UserId, name: &str) -> Result<Option<Place>, StoreError>;
    /// Whether there was such a place.
    async fn delete_place(&self, user: &UserId, name: &str) -> Result<bool, StoreError>;
}

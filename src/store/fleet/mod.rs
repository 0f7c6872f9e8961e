//! The fleet's data: orders, drivers and the assignments joining them.
//!
//! Every function takes the tenant (`user`) as a required argument; another
//! tenant's row is simply not found. A write that dates a row takes the time
//! (`now`) from the caller, who holds the server's clock (`Clock::now`, to
//! the microsecond both databases keep): the store reads no clock. Status changes and their cascades
//! (order and driver follow the assignment) happen in one transaction.
//!
//! The SQL is in `sql/` (one file per table, each with its columns: how a
//! value is bound and read), written once for both backends; the
//! statements made from the columns in `rows.rs`.

mod postgres;
mod rows;
mod sqlite;

use crate::fleet::choose::Leg;
use crate::fleet::types::*;
use crate::store::StoreError;
use crate::tenant::UserId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// The fleet tables of one database.
#[async_trait]
pub trait FleetStore: Send + Sync {
    /// Stores a new `pending` order with a fresh `ORD-…` id, made `now`.
    async fn create_order(
        &self,
        user: &UserId,
        new: NewOrder,
        now: DateTime<Utc>,
    ) -> Result<Order, StoreError>;
    async fn order(&self, user: &UserId, order_id: &str) -> Result<Order, StoreError>;
    async fn orders(&self, user: &UserId, query: &OrderQuery) -> Result<Vec<Order>, StoreError>;
    async fn count_orders(
        &self,
        user: &UserId,
        filter: &OrderFilter,
    ) -> Result<StatusCounts, StoreError>;
    /// Orders whose id, customer name, email or phone contain `term`
    /// (case-insensitive; `%` and `_` are plain characters).
    async fn search_orders(
        &self,
        user: &UserId,
        term: &str,
        limit: i64,
    ) -> Result<Vec<Order>, StoreError>;
    /// Pending, assigned and in-transit orders, most urgent first.
    async fn open_orders(&self, user: &UserId, limit: i64) -> Result<Vec<Order>, StoreError>;
    /// Applies `patch`; a change is dated `now`.
    async fn update_order(
        &self,
        user: &UserId,
        order_id: &str,
        patch: OrderPatch,
        now: DateTime<Utc>,
    ) -> Result<Order, StoreError>;
    /// Deletes the order and its finished assignments; refused while an
    /// assignment is open.
    async fn delete_order(&self, user: &UserId, order_id: &str) -> Result<(), StoreError>;
    /// Deletes the tenant's orders (of one status, if given); refused while
    /// any of them has an open assignment.
    async fn delete_all_orders(
        &self,
        user: &UserId,
        status: Option<OrderStatus>,
    ) -> Result<u64, StoreError>;

    /// Stores a new driver with a fresh `DRV-…` id, made `now`.
    async fn create_driver(
        &self,
        user: &UserId,
        new: NewDriver,
        now: DateTime<Utc>,
    ) -> Result<Driver, StoreError>;
    async fn driver(&self, user: &UserId, driver_id: &str) -> Result<Driver, StoreError>;
    async fn drivers(&self, user: &UserId, query: &DriverQuery) -> Result<Vec<Driver>, StoreError>;
    async fn count_drivers(
        &self,
        user: &UserId,
        filter: &DriverFilter,
    ) -> Result<StatusCounts, StoreError>;
    /// Drivers whose id, name, email, phone or plate contain `term`.
    async fn search_drivers(
        &self,
        user: &UserId,
        term: &str,
        limit: i64,
    ) -> Result<Vec<Driver>, StoreError>;
    /// Applies `patch`; a change is dated `now`.
    async fn update_driver(
        &self,
        user: &UserId,
        driver_id: &str,
        patch: DriverPatch,
        now: DateTime<Utc>,
    ) -> Result<Driver, StoreError>;
    async fn delete_driver(&self, user: &UserId, driver_id: &str) -> Result<(), StoreError>;
    async fn delete_all_drivers(
        &self,
        user: &UserId,
        status: Option<DriverStatus>,
    ) -> Result<u64, StoreError>;

    /// Gives a pending order to an active driver: order `assigned`, driver
    /// `busy`, in one transaction, `now`. The assignment's route is `leg`
    /// (the caller's measure, by road or estimated) if it starts where the
    /// driver is, else the straight-line estimate.
    async fn assign(
        &self,
        user: &UserId,
        order_id: &str,
        driver_id: &str,
        leg: Option<&Leg>,
        now: DateTime<Utc>,
    ) -> Result<Assignment, StoreError>;
    async fn assignment(
        &self,
        user: &UserId,
        assignment_id: &str,
    ) -> Result<Assignment, StoreError>;
    /// The order's assignments, newest first (the order must exist).
    async fn assignments_of_order(
        &self,
        user: &UserId,
        order_id: &str,
    ) -> Result<Vec<Assignment>, StoreError>;
    /// The driver's assignments, newest first (the driver must exist).
    async fn assignments_of_driver(
        &self,
        user: &UserId,
        driver_id: &str,
    ) -> Result<Vec<Assignment>, StoreError>;
    /// How many assignments each driver got since `since` (their workload).
    async fn assignments_since(
        &self,
        user: &UserId,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, StoreError>;
    /// Changes an assignment `now` (a delivery without an arrival time
    /// arrived then); a status step cascades to its order and driver in the
    /// same transaction.
    async fn change_assignment(
        &self,
        user: &UserId,
        assignment_id: &str,
        change: AssignmentChange,
        now: DateTime<Utc>,
    ) -> Result<Assignment, StoreError>;
}

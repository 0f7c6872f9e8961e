//! The fleet's SQL, written once and compiled once per backend: `sqlite.rs`
//! and `postgres.rs` each include this folder as their module `sql`, after
//! naming their store `This`; what the code asks of the backend goes through
//! [`SqlBackend`]. One file per table (its columns, each with how a row's
//! value is bound and read, and its queries); what they do alike, the
//! reading of a row included, is in `table.rs`.
//!
//! Every query names the tenant (`user_id = $1`). Status changes are
//! conditional updates (`AND status = <the status read>`) inside one
//! transaction, so a concurrent change makes the call fail instead of
//! breaking a state machine.

mod assignments;
mod drivers;
mod orders;
mod table;

use super::{DbRow, This};
use crate::fleet::choose::Leg;
use crate::fleet::types::*;
use crate::store::StoreError;
use crate::store::fleet::FleetStore;
use crate::store::sql_backend::SqlBackend;
use crate::tenant::UserId;
use chrono::{DateTime, Utc};

/// This backend's sqlx driver and its connection.
type Db = <This as SqlBackend>::Db;
type Conn = <Db as sqlx::Database>::Connection;
/// A query being bound.
type Q<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

#[async_trait::async_trait]
impl FleetStore for This {
    async fn create_order(
        &self,
        user: &UserId,
        new: NewOrder,
        now: DateTime<Utc>,
    ) -> Result<Order, StoreError> {
        orders::create(self, user, new, now).await
    }

    async fn order(&self, user: &UserId, order_id: &str) -> Result<Order, StoreError> {
        let mut conn = self.pool().acquire().await?;
        table::read(&mut conn, user, order_id).await
    }

    async fn orders(&self, user: &UserId, query: &OrderQuery) -> Result<Vec<Order>, StoreError> {
        orders::list(self, user, query).await
    }

    async fn count_orders(
        &self,
        user: &UserId,
        filter: &OrderFilter,
    ) -> Result<StatusCounts, StoreError> {
        orders::count(self, user, filter).await
    }

    async fn search_orders(
        &self,
        user: &UserId,
        term: &str,
        limit: i64,
    ) -> Result<Vec<Order>, StoreError> {
        table::search(self, user, term, limit).await
    }

    async fn open_orders(&self, user: &UserId, limit: i64) -> Result<Vec<Order>, StoreError> {
        orders::open(self, user, limit).await
    }

    async fn update_order(
        &self,
        user: &UserId,
        order_id: &str,
        patch: OrderPatch,
        now: DateTime<Utc>,
    ) -> Result<Order, StoreError> {
        orders::update(self, user, order_id, patch, now).await
    }

    async fn delete_order(&self, user: &UserId, order_id: &str) -> Result<(), StoreError> {
        orders::delete(self, user, order_id).await
    }

    async fn delete_all_orders(
        &self,
        user: &UserId,
        status: Option<OrderStatus>,
    ) -> Result<u64, StoreError> {
        orders::delete_all(self, user, status).await
    }

    async fn create_driver(
        &self,
        user: &UserId,
        new: NewDriver,
        now: DateTime<Utc>,
    ) -> Result<Driver, StoreError> {
        drivers::create(self, user, new, now).await
    }

    async fn driver(&self, user: &UserId, driver_id: &str) -> Result<Driver, StoreError> {
        let mut conn = self.pool().acquire().await?;
        table::read(&mut conn, user, driver_id).await
    }

    async fn drivers(&self, user: &UserId, query: &DriverQuery) -> Result<Vec<Driver>, StoreError> {
        drivers::list(self, user, query).await
    }

    async fn count_drivers(
        &self,
        user: &UserId,
        filter: &DriverFilter,
    ) -> Result<StatusCounts, StoreError> {
        drivers::count(self, user, filter).await
    }

    async fn search_drivers(
        &self,
        user: &UserId,
        term: &str,
        limit: i64,
    ) -> Result<Vec<Driver>, StoreError> {
        table::search(self, user, term, limit).await
    }

    async fn update_driver(
        &self,
        user: &UserId,
        driver_id: &str,
        patch: DriverPatch,
        now: DateTime<Utc>,
    ) -> Result<Driver, StoreError> {
        drivers::update(self, user, driver_id, patch, now).await
    }

    async fn delete_driver(&self, user: &UserId, driver_id: &str) -> Result<(), StoreError> {
        drivers::delete(self, user, driver_id).await
    }

    async fn delete_all_drivers(
        &self,
        user: &UserId,
        status: Option<DriverStatus>,
    ) -> Result<u64, StoreError> {
        drivers::delete_all(self, user, status).await
    }

    async fn assign(
        &self,
        user: &UserId,
        order_id: &str,
        driver_id: &str,
        leg: Option<&Leg>,
        now: DateTime<Utc>,
    ) -> Result<Assignment, StoreError> {
        assignments::assign(self, user, order_id, driver_id, leg, now).await
    }

    async fn assignment(
        &self,
        user: &UserId,
        assignment_id: &str,
    ) -> Result<Assignment, StoreError> {
        let mut conn = self.pool().acquire().await?;
        table::read(&mut conn, user, assignment_id).await
    }

    async fn assignments_of_order(
        &self,
        user: &UserId,
        order_id: &str,
    ) -> Result<Vec<Assignment>, StoreError> {
        assignments::of_order(self, user, order_id).await
    }

    async fn assignments_of_driver(
        &self,
        user: &UserId,
        driver_id: &str,
    ) -> Result<Vec<Assignment>, StoreError> {
        assignments::of_driver(self, user, driver_id).await
    }

    async fn assignments_since(
        &self,
        user: &UserId,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        assignments::since(self, user, since).await
    }

    async fn change_assignment(
        &self,
        user: &UserId,
        assignment_id: &str,
        change: AssignmentChange,
        now: DateTime<Utc>,
    ) -> Result<Assignment, StoreError> {
        assignments::change(self, user, assignment_id, change, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::assignments::ASSIGNMENT_COLUMNS;
    use super::drivers::DRIVER_COLUMNS;
    use super::orders::ORDER_COLUMNS;
    use super::table::Table;
    use crate::fleet::types::{Assignment, Driver, Order};
    use std::collections::BTreeSet;

    /// The fields of `T` (its answer's keys) against the columns its table
    /// reads: a field with no line in `COLUMNS` would be accepted, answered
    /// from memory by the create, and lost; nothing else would notice.
    fn fields_not_read<T: Table + serde::Serialize>() -> (BTreeSet<String>, BTreeSet<String>) {
        let fields: BTreeSet<String> = match serde_json::to_value(T::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            other => panic!(
                "{} does not serialise as an object: {other:?}",
                std::any::type_name::<T>()
            ),
        };
        let read: BTreeSet<String> = T::SQL
            .columns
            .read()
            .map(|(column, _)| column.name.to_owned())
            .collect();
        (
            fields.difference(&read).cloned().collect(),
            read.difference(&fields).cloned().collect(),
        )
    }

    #[test]
    fn every_field_of_a_row_is_read_from_its_column() {
        let none = (BTreeSet::new(), BTreeSet::new());
        assert_eq!(
            fields_not_read::<Order>(),
            none,
            "orders: (fields not read, columns read into no field)"
        );
        assert_eq!(
            fields_not_read::<Driver>(),
            none,
            "drivers: (fields not read, columns read into no field)"
        );
        assert_eq!(
            fields_not_read::<Assignment>(),
            none,
            "assignments: (fields not read, columns read into no field)"
        );
    }

    #[test]
    fn the_columns_read_are_the_id_the_writes_and_the_set_once_ones() {
        assert!(
            ORDER_COLUMNS
                .as_str()
                .starts_with("order_id, customer_name, ")
        );
        assert!(
            ORDER_COLUMNS
                .as_str()
                .ends_with(", delivered_at, created_at")
        );
        assert!(!DRIVER_COLUMNS.as_str().contains("search_text"));
        assert_eq!(ASSIGNMENT_COLUMNS.as_str().split(", ").count(), 20);
    }
}

//! The fleet's rows in SQL, the same on both backends: the column lists,
//! the reading of a row into a domain value (one `FromRow` per entity,
//! generic over the backend), and small pieces of SQL the queries share.

use crate::fleet::rules;
use crate::fleet::types::*;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, FromRow, Row, Type};
use std::sync::OnceLock;

/// The columns read into an [`Order`]: its id, what a write sets (but the
/// search text, which nobody reads) and what is set once. Derived, so a new
/// column is one more name in [`ORDER_WRITES`].
pub(super) static ORDER_COLUMNS: Columns =
    Columns::read("order_id", &[ORDER_WRITES, &["created_at"]]);

/// The columns read into a [`Driver`].
pub(super) static DRIVER_COLUMNS: Columns =
    Columns::read("driver_id", &[DRIVER_WRITES, &["created_at"]]);

/// The columns read into an [`Assignment`].
pub(super) static ASSIGNMENT_COLUMNS: Columns =
    Columns::read("assignment_id", &[ASSIGNMENT_WRITES, ASSIGNMENT_FIXED]);

/// A table's column list for `SELECT`, made from its write lists the first
/// time it is used; it prints as `a, b, c`.
pub(super) struct Columns {
    id: &'static str,
    parts: &'static [&'static [&'static str]],
    list: OnceLock<String>,
}

impl Columns {
    const fn read(id: &'static str, parts: &'static [&'static [&'static str]]) -> Self {
        Columns {
            id,
            parts,
            list: OnceLock::new(),
        }
    }

    pub(super) fn as_str(&self) -> &str {
        self.list.get_or_init(|| {
            std::iter::once(self.id)
                .chain(self.parts.iter().flat_map(|part| part.iter().copied()))
                .filter(|column| *column != "search_text")
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

impl std::fmt::Display for Columns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The order columns a write sets, in the order `orders::bind` binds them
/// (`$3` on, after the tenant and the id).
pub(super) const ORDER_WRITES: &[&str] = &[
    "customer_name",
    "customer_phone",
    "customer_email",
    "delivery_address",
    "delivery_lat",
    "delivery_lng",
    "time_window_start",
    "time_window_end",
    "expected_delivery_time",
    "priority",
    "weight_kg",
    "volume_m3",
    "special_instructions",
    "order_value",
    "payment_status",
    "requires_signature",
    "is_fragile",
    "requires_cold_storage",
    "status",
    "assigned_driver_id",
    "delivery_status",
    "sla_grace_period_minutes",
    "search_text",
    "updated_at",
    "delivered_at",
];

/// The driver columns a write sets, in the order `drivers::bind` binds them.
pub(super) const DRIVER_WRITES: &[&str] = &[
    "name",
    "phone",
    "email",
    "status",
    "vehicle_type",
    "vehicle_plate",
    "capacity_kg",
    "capacity_m3",
    "skills",
    "current_address",
    "current_lat",
    "current_lng",
    "last_location_update",
    "search_text",
    "updated_at",
];

/// The assignment columns a change sets, in the order `assignments::bind`
/// binds them.
pub(super) const ASSIGNMENT_WRITES: &[&str] = &[
    "status",
    "updated_at",
    "actual_arrival",
    "actual_distance_meters",
    "notes",
    "failure_reason",
];

/// The assignment columns set once, when it is made, after
/// [`ASSIGNMENT_WRITES`].
pub(super) const ASSIGNMENT_FIXED: &[&str] = &[
    "order_id",
    "driver_id",
    "assigned_at",
    "route_distance_meters",
    "route_duration_seconds",
    "route_summary",
    "driver_start_lat",
    "driver_start_lng",
    "delivery_lat",
    "delivery_lng",
    "delivery_address",
    "estimated_arrival",
    "vehicle_type",
];

/// `INSERT INTO table (user_id, id, writes…, then…) VALUES ($1, $2, …)`:
/// the tenant and the row's id, then the columns in the order they are
/// bound, numbered for them, so that a new column is one more name.
pub(super) fn insert_sql(table: &str, id: &str, writes: &[&str], then: &[&str]) -> String {
    let columns: Vec<&str> = ["user_id", id]
        .iter()
        .chain(writes)
        .chain(then)
        .copied()
        .collect();
    let values: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        columns.join(", "),
        values.join(", ")
    )
}

/// `UPDATE table SET writes… = $3 … WHERE user_id = $1 AND id = $2 AND
/// status = $n`: the write of a changeable row, conditional on the status it
/// was read with.
pub(super) fn update_sql(table: &str, id: &str, writes: &[&str]) -> String {
    let set: Vec<String> = writes
        .iter()
        .zip(3..)
        .map(|(column, n)| format!("{column} = ${n}"))
        .collect();
    format!(
        "UPDATE {table} SET {} WHERE user_id = $1 AND {id} = $2 AND status = ${}",
        set.join(", "),
        writes.len() + 3
    )
}

/// The condition of `orders` and `count_orders`: the tenant ($1) and the
/// `OrderFilter` ($2 status, $3 priority, $4 payment status, $5 driver).
pub(super) const ORDER_FILTER: &str = "user_id = $1 \
     AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR priority = $3) \
     AND ($4 IS NULL OR payment_status = $4) \
     AND ($5 IS NULL OR assigned_driver_id = $5)";

/// The condition of `drivers` and `count_drivers`: the tenant ($1) and the
/// `DriverFilter` ($2 status, $3 vehicle type).
pub(super) const DRIVER_FILTER: &str =
    "user_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR vehicle_type = $3)";

/// The open assignment statuses, for SQL.
pub(super) const OPEN_ASSIGNMENT: &str = "('active', 'in_progress')";

/// Orders by urgency, for SQL.
pub(super) const PRIORITY_RANK: &str =
    "CASE priority WHEN 'urgent' THEN 3 WHEN 'express' THEN 2 ELSE 1 END";

/// The sort direction, for SQL.
pub(super) fn dir(descending: bool) -> &'static str {
    if descending { "DESC" } else { "ASC" }
}

pub(super) fn counts(rows: Vec<(String, i64)>) -> StatusCounts {
    StatusCounts {
        total: rows.iter().map(|(_, n)| n).sum(),
        by_status: rows,
    }
}

pub(super) fn changed_meanwhile(what: &str, id: &str) -> StoreError {
    StoreError::Conflict(format!(
        "{what} {id} was changed by another call meanwhile; try again"
    ))
}

/// The text `search_orders` matches against.
pub(super) fn order_search_text(o: &Order) -> String {
    rules::search_text(&[
        Some(&o.order_id),
        Some(&o.customer_name),
        o.customer_email.as_deref(),
        o.customer_phone.as_deref(),
    ])
}

/// The text `search_drivers` matches against.
pub(super) fn driver_search_text(d: &Driver) -> String {
    rules::search_text(&[
        Some(&d.driver_id),
        Some(&d.name),
        d.email.as_deref(),
        d.phone.as_deref(),
        d.vehicle_plate.as_deref(),
    ])
}

/// A column stored as the name of a value (a status, a vehicle type, …).
fn named<'r, R, T>(row: &'r R, col: &'r str, parse: fn(&str) -> Option<T>) -> Result<T, sqlx::Error>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let text: String = row.try_get(col)?;
    parse(&text).ok_or_else(|| unknown(col))
}

/// A column that may hold the name of a value, or NULL.
fn named_opt<'r, R, T>(
    row: &'r R,
    col: &'r str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, sqlx::Error>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let text: Option<String> = row.try_get(col)?;
    text.map(|text| parse(&text).ok_or_else(|| unknown(col)))
        .transpose()
}

fn unknown(col: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: col.into(),
        source: format!("unknown value in {col}").into(),
    }
}

// The domain types hold no sqlx (`src/fleet/` has no I/O), so their rows
// are read here, by column name, once for both backends.

impl<'r, R> FromRow<'r, R> for Order
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Order {
            order_id: row.try_get("order_id")?,
            customer_name: row.try_get("customer_name")?,
            customer_phone: row.try_get("customer_phone")?,
            customer_email: row.try_get("customer_email")?,
            delivery_address: row.try_get("delivery_address")?,
            delivery_lat: row.try_get("delivery_lat")?,
            delivery_lng: row.try_get("delivery_lng")?,
            time_window_start: row.try_get("time_window_start")?,
            time_window_end: row.try_get("time_window_end")?,
            expected_delivery_time: row.try_get("expected_delivery_time")?,
            priority: named(row, "priority", Priority::parse)?,
            weight_kg: row.try_get("weight_kg")?,
            volume_m3: row.try_get("volume_m3")?,
            special_instructions: row.try_get("special_instructions")?,
            order_value: row.try_get("order_value")?,
            payment_status: named(row, "payment_status", PaymentStatus::parse)?,
            requires_signature: row.try_get("requires_signature")?,
            is_fragile: row.try_get("is_fragile")?,
            requires_cold_storage: row.try_get("requires_cold_storage")?,
            status: named(row, "status", OrderStatus::parse)?,
            assigned_driver_id: row.try_get("assigned_driver_id")?,
            delivery_status: named_opt(row, "delivery_status", DeliveryStatus::parse)?,
            sla_grace_period_minutes: row.try_get("sla_grace_period_minutes")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            delivered_at: row.try_get("delivered_at")?,
        })
    }
}

impl<'r, R> FromRow<'r, R> for Driver
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Driver {
            driver_id: row.try_get("driver_id")?,
            name: row.try_get("name")?,
            phone: row.try_get("phone")?,
            email: row.try_get("email")?,
            status: named(row, "status", DriverStatus::parse)?,
            vehicle_type: named(row, "vehicle_type", VehicleType::parse)?,
            vehicle_plate: row.try_get("vehicle_plate")?,
            capacity_kg: row.try_get("capacity_kg")?,
            capacity_m3: row.try_get("capacity_m3")?,
            skills: named(row, "skills", rules::skills_from_text)?,
            current_address: row.try_get("current_address")?,
            current_lat: row.try_get("current_lat")?,
            current_lng: row.try_get("current_lng")?,
            last_location_update: row.try_get("last_location_update")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl<'r, R> FromRow<'r, R> for Assignment
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Assignment {
            assignment_id: row.try_get("assignment_id")?,
            order_id: row.try_get("order_id")?,
            driver_id: row.try_get("driver_id")?,
            status: named(row, "status", AssignmentStatus::parse)?,
            assigned_at: row.try_get("assigned_at")?,
            updated_at: row.try_get("updated_at")?,
            route_distance_meters: row.try_get("route_distance_meters")?,
            route_duration_seconds: row.try_get("route_duration_seconds")?,
            route_summary: row.try_get("route_summary")?,
            driver_start_lat: row.try_get("driver_start_lat")?,
            driver_start_lng: row.try_get("driver_start_lng")?,
            delivery_lat: row.try_get("delivery_lat")?,
            delivery_lng: row.try_get("delivery_lng")?,
            delivery_address: row.try_get("delivery_address")?,
            estimated_arrival: row.try_get("estimated_arrival")?,
            actual_arrival: row.try_get("actual_arrival")?,
            actual_distance_meters: row.try_get("actual_distance_meters")?,
            vehicle_type: named(row, "vehicle_type", VehicleType::parse)?,
            notes: row.try_get("notes")?,
            failure_reason: named_opt(row, "failure_reason", FailureReason::parse)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_numbered_in_bind_order() {
        assert_eq!(
            insert_sql("t", "t_id", &["a", "b"], &["created_at"]),
            "INSERT INTO t (user_id, t_id, a, b, created_at) VALUES ($1, $2, $3, $4, $5)"
        );
        assert_eq!(
            update_sql("t", "t_id", &["a", "b"]),
            "UPDATE t SET a = $3, b = $4 WHERE user_id = $1 AND t_id = $2 AND status = $5"
        );
    }

    #[test]
    fn the_columns_read_are_the_id_the_writes_and_the_set_once_ones() {
        assert_eq!(
            Columns::read("t_id", &[&["a", "search_text", "b"], &["created_at"]]).as_str(),
            "t_id, a, b, created_at"
        );
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

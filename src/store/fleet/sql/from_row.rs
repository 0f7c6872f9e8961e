//! The reading of a row into a domain value, by column name: one
//! `FromRow` per entity, for this backend's row type. The domain types hold
//! no sqlx (`src/fleet/` has no I/O), so their rows are read here.

use super::DbRow;
use crate::fleet::rules;
use crate::fleet::types::*;
use sqlx::{FromRow, Row};

/// A column stored as the name of a value (a status, a vehicle type, …).
fn named<T>(row: &DbRow, col: &str, parse: fn(&str) -> Option<T>) -> Result<T, sqlx::Error> {
    let text: String = row.try_get(col)?;
    parse(&text).ok_or_else(|| unknown(col))
}

/// A column that may hold the name of a value, or NULL.
fn named_opt<T>(
    row: &DbRow,
    col: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, sqlx::Error> {
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

impl FromRow<'_, DbRow> for Order {
    fn from_row(row: &DbRow) -> Result<Self, sqlx::Error> {
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

impl FromRow<'_, DbRow> for Driver {
    fn from_row(row: &DbRow) -> Result<Self, sqlx::Error> {
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

impl FromRow<'_, DbRow> for Assignment {
    fn from_row(row: &DbRow) -> Result<Self, sqlx::Error> {
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

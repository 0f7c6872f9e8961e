//! New rows as the rules make them: a fresh id, the first state of each
//! state machine, the times of creation. The store only writes them.

use super::FleetError;
use super::choose::Leg;
use super::fields::{invalid, window};
use super::rules::{later_by_seconds, new_id, patch_driver, patch_order};
use super::types::*;

/// A caller's new order, checked: `pending`, unassigned, with a fresh
/// `ORD-…` id, made `now`. Its fields are set as `update_order` sets them,
/// by [`patch_order`], so each field's limit is written once.
pub fn new_order(new: NewOrder, now: chrono::DateTime<chrono::Utc>) -> Result<Order, FleetError> {
    // First, as create_order always did: a call with several mistakes is
    // refused for the same one.
    window(new.time_window_start, new.time_window_end)?;
    let blank = Order {
        order_id: new_id("ORD"),
        status: OrderStatus::Pending,
        created_at: now,
        updated_at: now,
        ..Order::default()
    };
    patch_order(&blank, new.into())
}

/// A new order as the change that sets every field it gives.
impl From<NewOrder> for OrderPatch {
    fn from(new: NewOrder) -> Self {
        OrderPatch {
            customer_name: Some(new.customer_name),
            customer_phone: new.customer_phone,
            customer_email: new.customer_email,
            delivery_address: Some(new.delivery_address),
            delivery_lat: Some(new.delivery_lat),
            delivery_lng: Some(new.delivery_lng),
            expected_delivery_time: Some(new.expected_delivery_time),
            time_window_start: new.time_window_start,
            time_window_end: new.time_window_end,
            priority: Some(new.priority),
            weight_kg: new.weight_kg,
            volume_m3: new.volume_m3,
            special_instructions: new.special_instructions,
            order_value: new.order_value,
            payment_status: Some(new.payment_status),
            requires_signature: Some(new.requires_signature),
            is_fragile: Some(new.is_fragile),
            requires_cold_storage: Some(new.requires_cold_storage),
            sla_grace_period_minutes: Some(new.sla_grace_period_minutes),
            status: None,
        }
    }
}

/// A caller's new driver, checked, with a fresh `DRV-…` id; the location
/// is as of `now`. Like [`new_order`], through [`patch_driver`].
pub fn new_driver(
    new: NewDriver,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Driver, FleetError> {
    if new.status == DriverStatus::Busy {
        return Err(invalid(
            "status",
            "'busy' is set by assignments; use active, offline or unavailable",
        ));
    }
    let blank = Driver {
        driver_id: new_id("DRV"),
        status: DriverStatus::Active,
        last_location_update: now,
        created_at: now,
        updated_at: now,
        ..Driver::default()
    };
    patch_driver(&blank, new.into())
}

/// A new driver as the change that sets every field they give.
impl From<NewDriver> for DriverPatch {
    fn from(new: NewDriver) -> Self {
        DriverPatch {
            name: Some(new.name),
            phone: new.phone,
            email: new.email,
            status: Some(new.status),
            vehicle_type: Some(new.vehicle_type),
            vehicle_plate: new.vehicle_plate,
            capacity_kg: Some(new.capacity_kg),
            capacity_m3: Some(new.capacity_m3),
            skills: Some(new.skills),
            current_address: Some(new.current_address),
            current_lat: Some(new.current_lat),
            current_lng: Some(new.current_lng),
        }
    }
}

/// The assignment of `order` to `driver` made `now` (the caller checked
/// [`check_assignment`](super::rules::check_assignment)): active, with
/// `leg` as its route when it starts where the driver is (the tool
/// measured it, by road or estimated), else the straight-line estimate
/// from the driver's position.
pub fn new_assignment(
    order: &Order,
    driver: &Driver,
    leg: Option<&Leg>,
    now: chrono::DateTime<chrono::Utc>,
) -> Assignment {
    let route = match leg {
        Some(leg) if leg.starts_at(driver) => leg.clone(),
        _ => Leg::straight(order, driver),
    };
    Assignment {
        assignment_id: new_id("ASN"),
        order_id: order.order_id.clone(),
        driver_id: driver.driver_id.clone(),
        status: AssignmentStatus::Active,
        assigned_at: now,
        updated_at: now,
        route_distance_meters: route.distance_meters,
        route_duration_seconds: route.duration_seconds,
        route_summary: route.summary,
        driver_start_lat: driver.current_lat,
        driver_start_lng: driver.current_lng,
        delivery_lat: order.delivery_lat,
        delivery_lng: order.delivery_lng,
        delivery_address: order.delivery_address.clone(),
        estimated_arrival: later_by_seconds(now, route.duration_seconds),
        actual_arrival: None,
        actual_distance_meters: None,
        vehicle_type: driver.vehicle_type,
        notes: None,
        failure_reason: None,
    }
}

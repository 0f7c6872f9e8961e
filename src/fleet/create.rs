//! New rows as the rules make them: a fresh id, the first state of each
//! state machine, the times of creation. The store only writes them.

use super::FleetError;
use super::choose::Leg;
use super::rules::{later_by_seconds, new_id};
use super::types::*;

/// A caller's new order, checked: `pending`, unassigned, with a fresh
/// `ORD-…` id, made `now`.
pub fn new_order(new: NewOrder, now: chrono::DateTime<chrono::Utc>) -> Result<Order, FleetError> {
    let new = new.checked()?;
    Ok(Order {
        order_id: new_id("ORD"),
        customer_name: new.customer_name,
        customer_phone: new.customer_phone,
        customer_email: new.customer_email,
        delivery_address: new.delivery_address,
        delivery_lat: new.delivery_lat,
        delivery_lng: new.delivery_lng,
        time_window_start: new.time_window_start,
        time_window_end: new.time_window_end,
        expected_delivery_time: new.expected_delivery_time,
        priority: new.priority,
        weight_kg: new.weight_kg,
        volume_m3: new.volume_m3,
        special_instructions: new.special_instructions,
        order_value: new.order_value,
        payment_status: new.payment_status,
        requires_signature: new.requires_signature,
        is_fragile: new.is_fragile,
        requires_cold_storage: new.requires_cold_storage,
        status: OrderStatus::Pending,
        assigned_driver_id: None,
        delivery_status: None,
        sla_grace_period_minutes: new.sla_grace_period_minutes,
        created_at: now,
        updated_at: now,
        delivered_at: None,
    })
}

/// A caller's new driver, checked, with a fresh `DRV-…` id; the location
/// is as of `now`.
pub fn new_driver(
    new: NewDriver,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Driver, FleetError> {
    let new = new.checked()?;
    Ok(Driver {
        driver_id: new_id("DRV"),
        name: new.name,
        phone: new.phone,
        email: new.email,
        status: new.status,
        vehicle_type: new.vehicle_type,
        vehicle_plate: new.vehicle_plate,
        capacity_kg: new.capacity_kg,
        capacity_m3: new.capacity_m3,
        skills: new.skills,
        current_address: new.current_address,
        current_lat: new.current_lat,
        current_lng: new.current_lng,
        last_location_update: now,
        created_at: now,
        updated_at: now,
    })
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

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::{Value, json};

    fn at() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
    }

    /// Arguments as `create_order` reads them, `extra` over a valid set.
    fn order_args(extra: Value) -> NewOrder {
        let mut args = json!({
            "customer_name": "A", "delivery_address": "B",
            "delivery_lat": 1, "delivery_lng": 2,
            "expected_delivery_time": "2099-01-01T12:00:00Z",
        });
        if let (Some(args), Some(extra)) = (args.as_object_mut(), extra.as_object()) {
            args.extend(extra.clone());
        }
        serde_json::from_value(args).unwrap()
    }

    fn driver_args(extra: Value) -> NewDriver {
        let mut args = json!({
            "name": "D", "vehicle_type": "van", "current_address": "Depot",
            "current_lat": 1, "current_lng": 2,
        });
        if let (Some(args), Some(extra)) = (args.as_object_mut(), extra.as_object()) {
            args.extend(extra.clone());
        }
        serde_json::from_value(args).unwrap()
    }

    #[test]
    fn a_new_order_carries_every_field_the_caller_gave_checked() {
        let given = json!({
            "customer_name": "  Olive ", "delivery_address": " 1 Sea Road ",
            "delivery_lat": 48.5, "delivery_lng": 2.25,
            "expected_delivery_time": "2099-01-01T12:00:00Z",
            "customer_phone": "+33 1 23", "customer_email": "o@example.com",
            "priority": "express", "weight_kg": 12.5, "volume_m3": 0.25,
            "special_instructions": " ring ", "time_window_start": "2099-01-01T10:00:00Z",
            "time_window_end": "2099-01-01T13:00:00Z", "order_value": 99.5,
            "payment_status": "paid", "requires_signature": true, "is_fragile": true,
            "requires_cold_storage": true, "sla_grace_period_minutes": 20,
        });
        let order = new_order(order_args(given.clone()), at()).unwrap();
        let shown = serde_json::to_value(&order).unwrap();
        for (field, value) in given.as_object().unwrap() {
            let want = match value.as_str() {
                Some(text) => json!(text.trim()),
                None => value.clone(),
            };
            assert_eq!(shown[field], want, "{field}");
        }
        assert_eq!(order.status, OrderStatus::Pending);
        assert_eq!((order.created_at, order.updated_at), (at(), at()));
        assert_eq!(order.assigned_driver_id, None);
        assert_eq!(order.delivery_status, None);
        assert_eq!(order.delivered_at, None);
        assert!(order.order_id.starts_with("ORD-"));
    }

    #[test]
    fn a_new_order_left_bare_takes_the_defaults() {
        let order = new_order(order_args(json!({"customer_phone": ""})), at()).unwrap();
        assert_eq!(order.customer_phone, None);
        assert_eq!(order.priority, Priority::Standard);
        assert_eq!(order.payment_status, PaymentStatus::Pending);
        assert_eq!(order.sla_grace_period_minutes, 15);
        assert!(!order.requires_signature && !order.is_fragile && !order.requires_cold_storage);
    }

    #[test]
    fn a_create_with_several_mistakes_is_refused_for_the_one_it_always_was() {
        let refused = |extra: Value| new_order(order_args(extra), at()).unwrap_err().to_string();
        // The window first, then the fields in their order.
        assert_eq!(
            refused(json!({
                "customer_email": "bad",
                "time_window_start": "2099-01-02", "time_window_end": "2099-01-01",
            })),
            "time_window_end: must not be before time_window_start"
        );
        assert_eq!(
            refused(json!({"customer_name": " ", "weight_kg": -1, "delivery_lat": 100})),
            "customer_name: must not be empty"
        );
        assert_eq!(
            refused(json!({"weight_kg": -1, "sla_grace_period_minutes": -1})),
            "weight_kg: must be between 0 and 100000"
        );
    }

    #[test]
    fn a_new_driver_carries_their_fields_and_busy_is_refused_first() {
        let driver = new_driver(
            driver_args(json!({
                "name": " Dan ", "skills": ["overnight", "refrigerated", "overnight"],
                "status": "offline", "capacity_kg": 500, "phone": "",
            })),
            at(),
        )
        .unwrap();
        assert_eq!(driver.name, "Dan");
        assert_eq!(driver.skills, vec![Skill::Refrigerated, Skill::Overnight]);
        assert_eq!(driver.status, DriverStatus::Offline);
        assert_eq!((driver.capacity_kg, driver.capacity_m3), (500.0, 12.0));
        assert_eq!(driver.phone, None);
        assert_eq!(driver.last_location_update, at());
        assert!(driver.driver_id.starts_with("DRV-"));
        let busy = new_driver(driver_args(json!({"name": "", "status": "busy"})), at());
        assert_eq!(
            busy.unwrap_err().to_string(),
            "status: 'busy' is set by assignments; use active, offline or unavailable"
        );
    }
}

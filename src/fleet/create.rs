//! New rows as the rules make them: a fresh id, the first state of each
//! state machine, the times of creation. The store only writes them.

use super::FleetError;
use super::choose::Leg;
use super::fields::{invalid, window};
use super::rules::{later_by_seconds, new_id, patch_driver, patch_order};
use super::types::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

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
    patch_order(&blank, as_patch("order", &new)?)
}

/// A new row as the change that sets every field it gives: each field of
/// `N` to the field of the same name of `P`, through their JSON, so that
/// no line per field can be left out. A field of `N` that `P` lacks fails
/// here (the patches refuse unknown fields), on every create: a mistake in
/// the types, said as such. The values cross unchanged: times as RFC 3339
/// to the nanosecond, read back by the patch's own reader (a float JSON
/// cannot hold, NaN, would cross as `null`, but no caller's JSON holds one).
fn as_patch<N: Serialize, P: DeserializeOwned>(what: &str, new: &N) -> Result<P, FleetError> {
    serde_json::to_value(new)
        .and_then(serde_json::from_value)
        .map_err(|err| {
            FleetError::Invalid(format!(
                "a new {what} does not read as a change of one (a mistake in the server): {err}"
            ))
        })
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
    patch_driver(&blank, as_patch("driver", &new)?)
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

    fn order_args(extra: Value) -> NewOrder {
        crate::fleet::samples::new_order(extra).unwrap()
    }

    fn driver_args(extra: Value) -> NewDriver {
        crate::fleet::samples::new_driver(extra).unwrap()
    }

    /// Every field of a new order, none left to its default.
    fn every_order_field() -> Value {
        json!({
            "customer_name": "  Olive ", "delivery_address": " 1 Sea Road ",
            "delivery_lat": 48.5, "delivery_lng": 2.25,
            "expected_delivery_time": "2099-01-01T12:30:00Z",
            "customer_phone": "+33 1 23", "customer_email": "o@example.com",
            "priority": "express", "weight_kg": 12.5, "volume_m3": 0.25,
            "special_instructions": " ring ", "time_window_start": "2099-01-01T10:00:00Z",
            "time_window_end": "2099-01-01T13:00:00Z", "order_value": 99.5,
            "payment_status": "paid", "requires_signature": true, "is_fragile": true,
            "requires_cold_storage": true, "sla_grace_period_minutes": 20,
        })
    }

    /// Every field of a new driver, none left to its default.
    fn every_driver_field() -> Value {
        json!({
            "name": " Dan ", "vehicle_type": "truck", "current_address": "Yard",
            "current_lat": 3.5, "current_lng": 4.5, "phone": "+1 555", "email": "d@example.com",
            "vehicle_plate": "AB 1", "capacity_kg": 500, "capacity_m3": 6,
            "skills": ["overnight"], "status": "offline",
        })
    }

    /// `given` (every field of `N`, none to its default: `bare` has the
    /// defaults) arrives whole in the patch: each field, with its value.
    fn arrives_whole<N, P>(bare: &N, given: Value)
    where
        N: DeserializeOwned + Serialize,
        P: DeserializeOwned + Serialize,
    {
        let new: N = serde_json::from_value(given).unwrap();
        let fields = serde_json::to_value(&new).unwrap();
        let bare = serde_json::to_value(bare).unwrap();
        let patch = serde_json::to_value(as_patch::<N, P>("row", &new).unwrap()).unwrap();
        for (field, value) in fields.as_object().unwrap() {
            assert_ne!(
                value, &bare[field],
                "{field}: give it a value not its default"
            );
            assert_eq!(&patch[field], value, "{field}");
        }
    }

    #[test]
    fn a_new_order_or_driver_arrives_whole_in_its_patch() {
        arrives_whole::<NewOrder, OrderPatch>(&order_args(json!({})), every_order_field());
        arrives_whole::<NewDriver, DriverPatch>(&driver_args(json!({})), every_driver_field());
    }

    #[test]
    fn a_new_order_carries_every_field_the_caller_gave_checked() {
        let given = every_order_field();
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

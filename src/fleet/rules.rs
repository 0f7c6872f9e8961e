//! The fleet's rules in plain Rust, shared by both backends: one state
//! machine per entity, the fields' limits as a change applies them, ids,
//! distances and search patterns (the checks and limits themselves are in
//! `fields.rs`, new rows in `create.rs`, both re-exported here). Refusals
//! are [`FleetError`]s.

use super::FleetError;
use super::types::*;
use chrono::{DateTime, TimeDelta, Utc};

pub use super::create::*;
pub use super::fields::*;
use super::fields::{grace, invalid, window};
pub use super::parse::{DEFAULT_GRACE_MINUTES, time_text};

/// A fresh id for a tenant's row: random, so two tenants (or two calls in
/// the same second) never race for one; uniqueness is per tenant anyway.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{:012X}", rand::random::<u64>() & 0xFFFF_FFFF_FFFF)
}

impl OrderStatus {
    /// The order state machine. Assigning, starting, completing, failing and
    /// unassigning are driven by assignments; a caller may cancel a pending
    /// or failed order and reopen a cancelled or failed one.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Pending, Assigned | Cancelled)
                | (Assigned, InTransit | Pending | Delivered | Failed)
                | (InTransit, Delivered | Failed)
                | (Failed, Pending | Cancelled)
                | (Cancelled, Pending)
        )
    }
}

impl DriverStatus {
    /// The driver state machine: `busy` comes and goes with assignments;
    /// the caller moves a driver between active, offline and unavailable.
    pub fn can_become(self, to: DriverStatus) -> bool {
        use DriverStatus::*;
        matches!(
            (self, to),
            (Active, Busy | Offline | Unavailable)
                | (Busy, Active)
                | (Offline, Active | Unavailable)
                | (Unavailable, Active | Offline)
        )
    }
}

impl AssignmentStatus {
    /// The assignment state machine: active → in_progress → completed or
    /// failed; only an active one can be cancelled (unassigned).
    pub fn can_become(self, to: AssignmentStatus) -> bool {
        use AssignmentStatus::*;
        matches!(
            (self, to),
            (Active, InProgress | Completed | Failed | Cancelled)
                | (InProgress, Completed | Failed)
        )
    }
}

impl AssignmentStep {
    pub fn target(&self) -> AssignmentStatus {
        match self {
            AssignmentStep::Start => AssignmentStatus::InProgress,
            AssignmentStep::Complete => AssignmentStatus::Completed,
            AssignmentStep::Fail { .. } => AssignmentStatus::Failed,
            AssignmentStep::Cancel => AssignmentStatus::Cancelled,
        }
    }

    /// What the order becomes.
    pub fn order_status(&self) -> OrderStatus {
        match self {
            AssignmentStep::Start => OrderStatus::InTransit,
            AssignmentStep::Complete => OrderStatus::Delivered,
            AssignmentStep::Fail { .. } => OrderStatus::Failed,
            AssignmentStep::Cancel => OrderStatus::Pending,
        }
    }

    /// What the driver becomes.
    pub fn driver_status(&self) -> DriverStatus {
        match self {
            AssignmentStep::Start => DriverStatus::Busy,
            _ => DriverStatus::Active,
        }
    }
}

/// Whether `assignment` can take `step`; the refusal says why not.
pub fn check_step(assignment: &Assignment, step: &AssignmentStep) -> Result<(), FleetError> {
    let from = assignment.status;
    let to = step.target();
    if from.can_become(to) {
        return Ok(());
    }
    let id = &assignment.assignment_id;
    Err(FleetError::Conflict(match (from, step) {
        (AssignmentStatus::InProgress, AssignmentStep::Cancel) => format!(
            "assignment {id} is in_progress and cannot be unassigned; complete or fail the delivery instead"
        ),
        _ => format!("assignment {id} is {from} and cannot become {to}"),
    }))
}

/// The pending-order rule: only a pending order can be given to a driver.
/// The assignment tools check it before choosing a driver, the store again
/// inside the assignment's transaction.
pub fn check_assignable(order: &Order) -> Result<(), FleetError> {
    if order.status == OrderStatus::Pending {
        return Ok(());
    }
    Err(FleetError::Conflict(format!(
        "order {} is {}; only pending orders can be assigned",
        order.order_id, order.status
    )))
}

/// Whether `order` can be given to `driver` now: the order pending, the
/// driver active and able to carry it.
pub fn check_assignment(order: &Order, driver: &Driver) -> Result<(), FleetError> {
    check_assignable(order)?;
    if driver.status != DriverStatus::Active {
        return Err(FleetError::Conflict(format!(
            "driver {} is {}; only active drivers can be assigned",
            driver.driver_id, driver.status
        )));
    }
    match unsuitable(order, driver) {
        Some(why) => Err(FleetError::Conflict(why)),
        None => Ok(()),
    }
}

/// Applies a caller's changes to an order, checking each field and the
/// status rule; the result is what gets stored. A new order is made here
/// too (see [`new_order`]): these are the limits of an order's fields,
/// each written once.
pub fn patch_order(order: &Order, patch: OrderPatch) -> Result<Order, FleetError> {
    let mut next = order.clone();
    if let Some(v) = patch.customer_name {
        next.customer_name = required_text("customer_name", &v, NAME_MAX)?;
    }
    if let Some(v) = patch.customer_phone {
        next.customer_phone = optional_phone("customer_phone", Some(&v))?;
    }
    if let Some(v) = patch.customer_email {
        next.customer_email = optional_email("customer_email", Some(&v))?;
    }
    if let Some(v) = patch.delivery_address {
        next.delivery_address = required_text("delivery_address", &v, ADDRESS_MAX)?;
    }
    if let Some(v) = patch.delivery_lat {
        next.delivery_lat = latitude("delivery_lat", v)?;
    }
    if let Some(v) = patch.delivery_lng {
        next.delivery_lng = longitude("delivery_lng", v)?;
    }
    if let Some(v) = patch.expected_delivery_time {
        next.expected_delivery_time = time("expected_delivery_time", v)?;
    }
    if let Some(v) = patch.time_window_start {
        next.time_window_start = Some(time("time_window_start", v)?);
    }
    if let Some(v) = patch.time_window_end {
        next.time_window_end = Some(time("time_window_end", v)?);
    }
    window(next.time_window_start, next.time_window_end)?;
    if let Some(v) = patch.priority {
        next.priority = v;
    }
    if let Some(v) = patch.weight_kg {
        next.weight_kg = Some(amount("weight_kg", v, WEIGHT_MAX_KG, false)?);
    }
    if let Some(v) = patch.volume_m3 {
        next.volume_m3 = Some(amount("volume_m3", v, VOLUME_MAX_M3, false)?);
    }
    if let Some(v) = patch.special_instructions {
        next.special_instructions = optional_text("special_instructions", Some(&v), TEXT_MAX)?;
    }
    if let Some(v) = patch.order_value {
        next.order_value = Some(amount("order_value", v, VALUE_MAX, false)?);
    }
    if let Some(v) = patch.payment_status {
        next.payment_status = v;
    }
    if let Some(v) = patch.requires_signature {
        next.requires_signature = v;
    }
    if let Some(v) = patch.is_fragile {
        next.is_fragile = v;
    }
    if let Some(v) = patch.requires_cold_storage {
        next.requires_cold_storage = v;
    }
    if let Some(v) = patch.sla_grace_period_minutes {
        next.sla_grace_period_minutes = grace(v)?;
    }
    if let Some(to) = patch.status
        && !matches!(to, OrderStatus::Pending | OrderStatus::Cancelled)
    {
        return Err(invalid(
            "status",
            format!(
                "'{to}' is set by the assignment tools (create_assignment, update_assignment, complete_delivery, fail_delivery); update_order can set pending or cancelled"
            ),
        ));
    }
    if let Some(to) = patch.status
        && to != order.status
    {
        let id = &order.order_id;
        let from = order.status;
        if matches!(from, OrderStatus::Assigned | OrderStatus::InTransit) {
            return Err(FleetError::Conflict(format!(
                "order {id} is {from} with an open assignment; unassign it first"
            )));
        }
        if !from.can_become(to) {
            return Err(FleetError::Conflict(format!(
                "order {id} is {from} and cannot become {to}"
            )));
        }
        next.status = to;
        if to == OrderStatus::Pending {
            next.delivery_status = None;
            next.assigned_driver_id = None;
        }
    }
    Ok(next)
}

/// Applies a caller's changes to a driver (see [`patch_order`]); a new
/// driver is made here too (see [`new_driver`]).
pub fn patch_driver(driver: &Driver, patch: DriverPatch) -> Result<Driver, FleetError> {
    let mut next = driver.clone();
    if let Some(v) = patch.name {
        next.name = required_text("name", &v, NAME_MAX)?;
    }
    if let Some(v) = patch.phone {
        next.phone = optional_phone("phone", Some(&v))?;
    }
    if let Some(v) = patch.email {
        next.email = optional_email("email", Some(&v))?;
    }
    if let Some(v) = patch.vehicle_type {
        next.vehicle_type = v;
    }
    if let Some(v) = patch.vehicle_plate {
        next.vehicle_plate = optional_text("vehicle_plate", Some(&v), PLATE_MAX)?;
    }
    if let Some(v) = patch.capacity_kg {
        next.capacity_kg = amount("capacity_kg", v, WEIGHT_MAX_KG, true)?;
    }
    if let Some(v) = patch.capacity_m3 {
        next.capacity_m3 = amount("capacity_m3", v, VOLUME_MAX_M3, true)?;
    }
    if let Some(v) = patch.skills {
        next.skills = canonical_skills(v);
    }
    if let Some(v) = patch.current_address {
        next.current_address = required_text("current_address", &v, ADDRESS_MAX)?;
    }
    if let Some(v) = patch.current_lat {
        next.current_lat = latitude("current_lat", v)?;
    }
    if let Some(v) = patch.current_lng {
        next.current_lng = longitude("current_lng", v)?;
    }
    if patch.status == Some(DriverStatus::Busy) {
        return Err(invalid(
            "status",
            "'busy' is set by assignments; update_driver can set active, offline or unavailable",
        ));
    }
    if let Some(to) = patch.status
        && to != driver.status
    {
        let id = &driver.driver_id;
        if driver.status == DriverStatus::Busy {
            return Err(FleetError::Conflict(format!(
                "driver {id} is busy with an open assignment; complete, fail or unassign it first"
            )));
        }
        if !driver.status.can_become(to) {
            return Err(FleetError::Conflict(format!(
                "driver {id} is {} and cannot become {to}",
                driver.status
            )));
        }
        next.status = to;
    }
    Ok(next)
}

/// Why `driver` cannot carry `order`, if they cannot (hard limits only).
pub fn unsuitable(order: &Order, driver: &Driver) -> Option<String> {
    let (o, d) = (&order.order_id, &driver.driver_id);
    if let Some(w) = order.weight_kg
        && w > driver.capacity_kg
    {
        return Some(format!(
            "driver {d} cannot carry order {o}: {w} kg exceeds the capacity of {} kg",
            driver.capacity_kg
        ));
    }
    if let Some(v) = order.volume_m3
        && v > driver.capacity_m3
    {
        return Some(format!(
            "driver {d} cannot carry order {o}: {v} m³ exceeds the capacity of {} m³",
            driver.capacity_m3
        ));
    }
    if order.requires_cold_storage && !driver.skills.contains(&Skill::Refrigerated) {
        return Some(format!(
            "driver {d} cannot carry order {o}: it needs cold storage and the driver lacks the 'refrigerated' skill"
        ));
    }
    None
}

/// Great-circle distance in kilometres.
pub fn haversine_km(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lng2 - lng1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

impl VehicleType {
    /// Average speed in town, for time estimates.
    pub fn speed_kmh(self) -> f64 {
        match self {
            VehicleType::Motorcycle => 40.0,
            VehicleType::Car => 45.0,
            VehicleType::Van => 40.0,
            VehicleType::Truck => 35.0,
        }
    }
}

/// The estimated route from a driver to an order's delivery point.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteEstimate {
    pub distance_meters: f64,
    pub duration_seconds: i64,
    pub summary: String,
}

pub fn estimate_route(order: &Order, driver: &Driver) -> RouteEstimate {
    let km = haversine_km(
        driver.current_lat,
        driver.current_lng,
        order.delivery_lat,
        order.delivery_lng,
    );
    let speed = driver.vehicle_type.speed_kmh();
    let duration_seconds = (km / speed * 3600.0).round() as i64;
    RouteEstimate {
        distance_meters: (km * 1000.0).round(),
        duration_seconds,
        summary: format!(
            "straight-line estimate: {km:.1} km, about {} min by {} at {speed} km/h",
            (duration_seconds + 59) / 60,
            driver.vehicle_type
        ),
    }
}

/// `t` moved by `seconds` (back when negative). Past the ends of chrono's
/// range it stops at the end instead of overflowing: a row stored before
/// times were checked (or written by another program) may hold any time,
/// and a sum on it must not panic inside a request.
pub fn later_by_seconds(t: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    shifted(t, TimeDelta::try_seconds(seconds), seconds < 0)
}

/// `t` moved by `minutes`, like [`later_by_seconds`].
pub fn later_by_minutes(t: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
    shifted(t, TimeDelta::try_minutes(minutes), minutes < 0)
}

fn shifted(t: DateTime<Utc>, delta: Option<TimeDelta>, back: bool) -> DateTime<Utc> {
    delta
        .and_then(|delta| t.checked_add_signed(delta))
        .unwrap_or(if back {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// When the order is late: its promised time plus the grace period.
pub fn due(order: &Order) -> DateTime<Utc> {
    later_by_minutes(order.expected_delivery_time, order.sla_grace_period_minutes)
}

/// How a delivery (or failure) at `at` meets the order's promise.
pub fn delivery_status(order: &Order, at: DateTime<Utc>, failed: bool) -> DeliveryStatus {
    let due = due(order);
    match (failed, at <= due) {
        (true, true) => DeliveryStatus::FailedOnTime,
        (true, false) => DeliveryStatus::FailedLate,
        (false, true) => DeliveryStatus::OnTime,
        (false, false) if at <= later_by_minutes(due, 60) => DeliveryStatus::Late,
        (false, false) => DeliveryStatus::VeryLate,
    }
}

/// The lower-cased text a search matches against, one field per line.
pub fn search_text(fields: &[Option<&str>]) -> String {
    fields
        .iter()
        .flatten()
        .map(|f| f.to_lowercase())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A LIKE pattern matching `term` anywhere, with the caller's `%`, `_` and
/// `\` taken literally (the query says `ESCAPE '\'`).
pub fn like_pattern(term: &str) -> String {
    let mut pattern = String::from("%");
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_state_machine() {
        use OrderStatus::*;
        assert!(Pending.can_become(Assigned));
        assert!(Assigned.can_become(Pending));
        assert!(InTransit.can_become(Delivered));
        assert!(!Delivered.can_become(Pending));
        assert!(!Pending.can_become(Delivered));
        assert!(!InTransit.can_become(Pending));
        assert!(!Cancelled.can_become(Assigned));
    }

    #[test]
    fn driver_and_assignment_state_machines() {
        assert!(DriverStatus::Active.can_become(DriverStatus::Busy));
        assert!(!DriverStatus::Offline.can_become(DriverStatus::Busy));
        assert!(!DriverStatus::Busy.can_become(DriverStatus::Offline));
        use AssignmentStatus::*;
        assert!(Active.can_become(Cancelled));
        assert!(!InProgress.can_become(Cancelled));
        assert!(!Completed.can_become(Failed));
        assert!(InProgress.can_become(Failed));
    }

    #[test]
    fn haversine_matches_a_known_distance() {
        // Paris to London, about 343.5 km.
        let km = haversine_km(48.8566, 2.3522, 51.5074, -0.1278);
        assert!((km - 343.5).abs() < 1.0, "{km}");
        assert_eq!(haversine_km(10.0, 10.0, 10.0, 10.0), 0.0);
    }

    #[test]
    fn time_sums_stop_at_the_ends_instead_of_overflowing() {
        let (max, min) = (DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC);
        assert_eq!(later_by_minutes(max, 15), max);
        assert_eq!(later_by_minutes(min, -15), min);
        assert_eq!(later_by_seconds(max, i64::MAX), max);
        assert_eq!(later_by_seconds(min, i64::MIN), min);
        let t = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 5, 6, 7, 8, 9).unwrap();
        assert_eq!(later_by_minutes(t, -60), t - TimeDelta::hours(1));
        assert_eq!(later_by_seconds(t, 90), t + TimeDelta::seconds(90));
    }

    #[test]
    fn time_fields_are_within_the_years() {
        use chrono::TimeZone;
        let ok = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(time("t", ok).unwrap(), ok);
        let first = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(time("t", first).unwrap(), first);
        for bad in [
            first - TimeDelta::microseconds(1),
            ok + TimeDelta::seconds(1),
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::MIN_UTC,
        ] {
            let err = time("expected_delivery_time", bad).unwrap_err().to_string();
            assert!(
                err.starts_with("expected_delivery_time: must be a time in the years 1970 to 9999"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn like_pattern_takes_wildcards_literally() {
        assert_eq!(like_pattern("50%_A\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn texts_are_checked() {
        assert!(required_text("name", "  ", 10).is_err());
        assert!(required_text("name", "a\0b", 10).is_err());
        let long = required_text("name", &"é".repeat(11), 10).unwrap_err();
        assert!(
            long.to_string().starts_with("name: is 11 characters"),
            "{long}"
        );
        assert_eq!(required_text("name", " Zoë 🚚 ", 10).unwrap(), "Zoë 🚚");
        assert!(optional_email("email", Some("nope")).is_err());
        assert!(optional_phone("phone", Some("+1 (555) 010-0000")).is_ok());
        assert!(optional_phone("phone", Some("'; DROP TABLE")).is_err());
    }

    #[test]
    fn ids_have_their_prefix_and_differ() {
        let a = new_id("ORD");
        assert!(a.starts_with("ORD-") && a.len() == 16, "{a}");
        assert_ne!(a, new_id("ORD"));
    }
}

//! The fleet's rules in plain Rust, shared by both backends: one state
//! machine per entity, field limits, ids, distances and search patterns.

use super::types::*;
use crate::store::StoreError;
use chrono::{DateTime, SubsecRound, Utc};

/// Longest accepted values, in characters.
pub const NAME_MAX: usize = 200;
pub const ADDRESS_MAX: usize = 500;
pub const PHONE_MAX: usize = 40;
pub const EMAIL_MAX: usize = 254;
pub const PLATE_MAX: usize = 20;
pub const TEXT_MAX: usize = 2000;
pub const SEARCH_MAX: usize = 200;
pub const ID_MAX: usize = 64;
/// Largest weight, volume and capacity anyone plausibly means.
pub const WEIGHT_MAX_KG: f64 = 100_000.0;
pub const VOLUME_MAX_M3: f64 = 1_000.0;
pub const VALUE_MAX: f64 = 1e12;
pub const DISTANCE_MAX_M: f64 = 1e8;
pub const GRACE_MAX_MINUTES: i64 = 7 * 24 * 60;

/// The current time at the precision both databases keep (microseconds), so
/// that what a call returns equals what a later read returns.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A fresh id for a tenant's row: random, so two tenants (or two calls in
/// the same second) never race for one; uniqueness is per tenant anyway.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{:012X}", rand::random::<u64>() & 0xFFFF_FFFF_FFFF)
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("{field}: {problem}"))
}

/// A required text: trimmed, not empty, at most `max` characters, no
/// control characters (Postgres cannot store NUL; others are never meant).
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, StoreError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    checked_text(field, value, max)
}

/// An optional text: empty means absent.
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, StoreError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => checked_text(field, value, max).map(Some),
    }
}

fn checked_text(field: &str, value: &str, max: usize) -> Result<String, StoreError> {
    let len = value.chars().count();
    if len > max {
        return Err(invalid(
            field,
            format!("is {len} characters long; at most {max} are allowed"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

pub fn optional_email(field: &str, value: Option<&str>) -> Result<Option<String>, StoreError> {
    let email = optional_text(field, value, EMAIL_MAX)?;
    if let Some(email) = &email {
        let ok = email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !email.chars().any(char::is_whitespace);
        if !ok {
            return Err(invalid(field, "is not an email address"));
        }
    }
    Ok(email)
}

pub fn optional_phone(field: &str, value: Option<&str>) -> Result<Option<String>, StoreError> {
    let phone = optional_text(field, value, PHONE_MAX)?;
    if let Some(phone) = &phone {
        let ok = phone.chars().any(|c| c.is_ascii_digit())
            && phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
        if !ok {
            return Err(invalid(field, "may hold only digits, spaces and + - ( ) ."));
        }
    }
    Ok(phone)
}

pub fn latitude(field: &str, value: f64) -> Result<f64, StoreError> {
    if value.is_finite() && (-90.0..=90.0).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(field, "must be a latitude between -90 and 90"))
    }
}

pub fn longitude(field: &str, value: f64) -> Result<f64, StoreError> {
    if value.is_finite() && (-180.0..=180.0).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(field, "must be a longitude between -180 and 180"))
    }
}

/// A number in `[min, max]` (or `(0, max]` when `positive`).
pub fn amount(field: &str, value: f64, max: f64, positive: bool) -> Result<f64, StoreError> {
    let ok = value.is_finite() && value <= max && if positive { value > 0.0 } else { value >= 0.0 };
    if ok {
        Ok(value)
    } else if positive {
        Err(invalid(field, format!("must be above 0 and at most {max}")))
    } else {
        Err(invalid(field, format!("must be between 0 and {max}")))
    }
}

fn optional_amount(field: &str, value: Option<f64>, max: f64) -> Result<Option<f64>, StoreError> {
    value.map(|v| amount(field, v, max, false)).transpose()
}

fn grace(value: i64) -> Result<i64, StoreError> {
    if (0..=GRACE_MAX_MINUTES).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            "sla_grace_period_minutes",
            format!("must be between 0 and {GRACE_MAX_MINUTES}"),
        ))
    }
}

fn window(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Result<(), StoreError> {
    match (start, end) {
        (Some(start), Some(end)) if start > end => Err(invalid(
            "time_window_end",
            "must not be before time_window_start",
        )),
        _ => Ok(()),
    }
}

/// An id as the caller gave it: short and printable, else it names nothing.
pub fn id_arg(field: &str, value: &str) -> Result<String, StoreError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    checked_text(field, value, ID_MAX)
}

impl NewOrder {
    /// The order as it will be stored: trimmed, checked, field by field.
    pub fn checked(self) -> Result<NewOrder, StoreError> {
        window(self.time_window_start, self.time_window_end)?;
        Ok(NewOrder {
            customer_name: required_text("customer_name", &self.customer_name, NAME_MAX)?,
            customer_phone: optional_phone("customer_phone", self.customer_phone.as_deref())?,
            customer_email: optional_email("customer_email", self.customer_email.as_deref())?,
            delivery_address: required_text(
                "delivery_address",
                &self.delivery_address,
                ADDRESS_MAX,
            )?,
            delivery_lat: latitude("delivery_lat", self.delivery_lat)?,
            delivery_lng: longitude("delivery_lng", self.delivery_lng)?,
            weight_kg: optional_amount("weight_kg", self.weight_kg, WEIGHT_MAX_KG)?,
            volume_m3: optional_amount("volume_m3", self.volume_m3, VOLUME_MAX_M3)?,
            special_instructions: optional_text(
                "special_instructions",
                self.special_instructions.as_deref(),
                TEXT_MAX,
            )?,
            order_value: optional_amount("order_value", self.order_value, VALUE_MAX)?,
            sla_grace_period_minutes: grace(self.sla_grace_period_minutes)?,
            expected_delivery_time: self.expected_delivery_time.trunc_subsecs(6),
            time_window_start: self.time_window_start.map(|t| t.trunc_subsecs(6)),
            time_window_end: self.time_window_end.map(|t| t.trunc_subsecs(6)),
            ..self
        })
    }
}

impl NewDriver {
    /// The driver as they will be stored: trimmed, checked, field by field.
    pub fn checked(self) -> Result<NewDriver, StoreError> {
        if self.status == DriverStatus::Busy {
            return Err(invalid(
                "status",
                "'busy' is set by assignments; use active, offline or unavailable",
            ));
        }
        Ok(NewDriver {
            name: required_text("name", &self.name, NAME_MAX)?,
            phone: optional_phone("phone", self.phone.as_deref())?,
            email: optional_email("email", self.email.as_deref())?,
            vehicle_plate: optional_text(
                "vehicle_plate",
                self.vehicle_plate.as_deref(),
                PLATE_MAX,
            )?,
            capacity_kg: amount("capacity_kg", self.capacity_kg, WEIGHT_MAX_KG, true)?,
            capacity_m3: amount("capacity_m3", self.capacity_m3, VOLUME_MAX_M3, true)?,
            skills: canonical_skills(self.skills),
            current_address: required_text("current_address", &self.current_address, ADDRESS_MAX)?,
            current_lat: latitude("current_lat", self.current_lat)?,
            current_lng: longitude("current_lng", self.current_lng)?,
            ..self
        })
    }
}

/// Skills sorted and without repeats, so equal sets are stored equally.
pub fn canonical_skills(mut skills: Vec<Skill>) -> Vec<Skill> {
    skills.sort();
    skills.dedup();
    skills
}

/// The stored form of a skill list.
pub fn skills_to_text(skills: &[Skill]) -> String {
    skills
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads a stored skill list; an unknown name means a broken row.
pub fn skills_from_text(text: &str) -> Option<Vec<Skill>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(Skill::parse)
        .collect()
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

    /// Whether the order still needs delivering.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OrderStatus::Pending | OrderStatus::Assigned | OrderStatus::InTransit
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

    /// Whether the assignment still holds its order and driver.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            AssignmentStatus::Active | AssignmentStatus::InProgress
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

/// Why `assignment` cannot take `step`, if it cannot.
pub fn refuse_step(assignment: &Assignment, step: &AssignmentStep) -> Option<String> {
    let from = assignment.status;
    let to = step.target();
    if from.can_become(to) {
        return None;
    }
    let id = &assignment.assignment_id;
    Some(match (from, step) {
        (AssignmentStatus::InProgress, AssignmentStep::Cancel) => format!(
            "assignment {id} is in_progress and cannot be unassigned; complete or fail the delivery instead"
        ),
        _ => format!("assignment {id} is {from} and cannot become {to}"),
    })
}

/// Applies a caller's changes to an order, checking each field and the
/// status rule; the result is what gets stored.
pub fn patch_order(order: &Order, patch: OrderPatch) -> Result<Order, StoreError> {
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
        next.expected_delivery_time = v.trunc_subsecs(6);
    }
    if let Some(v) = patch.time_window_start {
        next.time_window_start = Some(v.trunc_subsecs(6));
    }
    if let Some(v) = patch.time_window_end {
        next.time_window_end = Some(v.trunc_subsecs(6));
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
            return Err(StoreError::Conflict(format!(
                "order {id} is {from} with an open assignment; unassign it first"
            )));
        }
        if !from.can_become(to) {
            return Err(StoreError::Conflict(format!(
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

/// Applies a caller's changes to a driver (see [`patch_order`]).
pub fn patch_driver(driver: &Driver, patch: DriverPatch) -> Result<Driver, StoreError> {
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
            return Err(StoreError::Conflict(format!(
                "driver {id} is busy with an open assignment; complete, fail or unassign it first"
            )));
        }
        if !driver.status.can_become(to) {
            return Err(StoreError::Conflict(format!(
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

/// How a delivery (or failure) at `at` meets the order's promise.
pub fn delivery_status(order: &Order, at: DateTime<Utc>, failed: bool) -> DeliveryStatus {
    let due =
        order.expected_delivery_time + chrono::Duration::minutes(order.sla_grace_period_minutes);
    match (failed, at <= due) {
        (true, true) => DeliveryStatus::FailedOnTime,
        (true, false) => DeliveryStatus::FailedLate,
        (false, true) => DeliveryStatus::OnTime,
        (false, false) if at <= due + chrono::Duration::hours(1) => DeliveryStatus::Late,
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

//! Choosing a driver for an order, deterministically and without any
//! network: `auto_assign_order` takes the nearest suitable driver;
//! `intelligent_assign_order` weighs distance, vehicle, capacity, skills,
//! workload and urgency and explains the result.
//!
//! Distances and times come in as [`Leg`]s the caller measured (by road
//! through the routing engine, or estimated): this module does no I/O. A
//! driver without a leg is measured by the straight line.

use super::rules::{self, haversine_km, unsuitable};
use super::types::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// Drivers who cannot take the order, and why.
pub type RuledOut = Vec<String>;

/// A driver's way to the order's delivery point, as measured by the
/// caller, from where the driver was then.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    pub from_lat: f64,
    pub from_lng: f64,
    pub distance_meters: f64,
    pub duration_seconds: i64,
    pub summary: String,
}

impl Leg {
    /// The straight-line leg (at the vehicle's average speed), for a
    /// driver nobody measured.
    pub fn straight(order: &Order, driver: &Driver) -> Leg {
        let route = rules::estimate_route(order, driver);
        Leg {
            from_lat: driver.current_lat,
            from_lng: driver.current_lng,
            distance_meters: route.distance_meters,
            duration_seconds: route.duration_seconds,
            summary: route.summary,
        }
    }

    /// Whether this leg starts where `driver` is now (else it is stale).
    pub fn starts_at(&self, driver: &Driver) -> bool {
        self.from_lat == driver.current_lat && self.from_lng == driver.current_lng
    }
}

/// Measured legs, by driver id.
pub type Legs = HashMap<String, Leg>;

/// `driver`'s leg: the measured one, or the straight line.
fn leg_of(order: &Order, driver: &Driver, legs: &Legs) -> Leg {
    match legs.get(&driver.driver_id) {
        Some(leg) if leg.starts_at(driver) => leg.clone(),
        _ => Leg::straight(order, driver),
    }
}

/// The drivers who can carry the order, and why the others cannot.
pub fn suitable<'a>(order: &Order, drivers: &'a [Driver]) -> (Vec<&'a Driver>, RuledOut) {
    let mut fit = Vec::new();
    let mut ruled_out = Vec::new();
    for driver in drivers {
        match unsuitable(order, driver) {
            Some(why) => ruled_out.push(why),
            None => fit.push(driver),
        }
    }
    (fit, ruled_out)
}

/// The ids of `drivers`, nearest first by their legs (ties: lower id).
/// With no legs measured that is the straight line; a road is never
/// shorter, so a driver further out by the straight line than the best of
/// the first few by road cannot be nearer by road.
pub fn by_leg(order: &Order, drivers: &[&Driver], legs: &Legs) -> Vec<String> {
    let mut measured: Vec<(f64, &str)> = drivers
        .iter()
        .map(|d| (leg_of(order, d, legs).distance_meters, d.driver_id.as_str()))
        .collect();
    measured.sort_by(|(a, aid), (b, bid)| a.total_cmp(b).then_with(|| aid.cmp(bid)));
    measured.into_iter().map(|(_, id)| id.to_owned()).collect()
}

/// The nearest active driver who can carry the order, by its leg (ties:
/// lower id), with that leg.
pub fn nearest<'a>(
    order: &Order,
    drivers: &'a [Driver],
    legs: &Legs,
) -> (Option<(&'a Driver, Leg)>, RuledOut) {
    let mut best: Option<(&Driver, Leg)> = None;
    let mut ruled_out = Vec::new();
    for driver in drivers {
        if let Some(why) = unsuitable(order, driver) {
            ruled_out.push(why);
            continue;
        }
        let leg = leg_of(order, driver, legs);
        let better = match &best {
            None => true,
            Some((b, bleg)) => {
                let (m, bm) = (leg.distance_meters, bleg.distance_meters);
                m < bm || (m == bm && driver.driver_id < b.driver_id)
            }
        };
        if better {
            best = Some((driver, leg));
        }
    }
    (best, ruled_out)
}

pub fn distance_km(order: &Order, driver: &Driver) -> f64 {
    haversine_km(
        driver.current_lat,
        driver.current_lng,
        order.delivery_lat,
        order.delivery_lng,
    )
}

/// One driver's score: each factor from 0 (worst) to 1 (best), and the
/// weighted total.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DriverScore {
    pub driver_id: String,
    pub name: String,
    pub total: f64,
    /// From the driver to the delivery point: by road when the routing
    /// engine measured it, else estimated.
    pub distance_km: f64,
    /// Travel time for that distance.
    pub duration_seconds: i64,
    pub distance: f64,
    pub vehicle: f64,
    pub capacity: f64,
    pub skills: f64,
    pub workload: f64,
    pub urgency: f64,
    /// Minutes between the estimated arrival and the promised time (negative: late).
    pub slack_minutes: i64,
    /// Assignments the driver got in the last 24 hours.
    pub recent_assignments: i64,
}

/// How much each factor counts, by the order's priority.
#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
pub struct Weights {
    pub distance: f64,
    pub vehicle: f64,
    pub capacity: f64,
    pub skills: f64,
    pub workload: f64,
    pub urgency: f64,
}

pub fn weights(priority: Priority) -> Weights {
    match priority {
        Priority::Standard => Weights {
            distance: 0.30,
            vehicle: 0.15,
            capacity: 0.10,
            skills: 0.15,
            workload: 0.20,
            urgency: 0.10,
        },
        Priority::Express => Weights {
            distance: 0.35,
            vehicle: 0.10,
            capacity: 0.10,
            skills: 0.15,
            workload: 0.10,
            urgency: 0.20,
        },
        Priority::Urgent => Weights {
            distance: 0.40,
            vehicle: 0.10,
            capacity: 0.05,
            skills: 0.10,
            workload: 0.05,
            urgency: 0.30,
        },
    }
}

/// How well a vehicle suits a load of `kg`.
fn vehicle_fit(vehicle: VehicleType, kg: f64) -> f64 {
    use VehicleType::*;
    match (kg, vehicle) {
        (kg, Motorcycle) if kg <= 20.0 => 1.0,
        (kg, Car) if kg <= 20.0 => 0.9,
        (kg, Van) if kg <= 20.0 => 0.7,
        (kg, Truck) if kg <= 20.0 => 0.4,
        (kg, Van) if kg <= 300.0 => 1.0,
        (kg, Car) if kg <= 300.0 => 0.8,
        (kg, Truck) if kg <= 300.0 => 0.7,
        (kg, Motorcycle) if kg <= 300.0 => 0.2,
        (_, Truck) => 1.0,
        (_, Van) => 0.8,
        (_, Car) => 0.3,
        (_, Motorcycle) => 0.1,
    }
}

/// The skills that make a driver better for this order (not required).
pub fn wanted_skills(order: &Order) -> Vec<Skill> {
    let mut wanted = Vec::new();
    if order.is_fragile {
        wanted.push(Skill::FragileHandler);
    }
    if matches!(order.priority, Priority::Express | Priority::Urgent) {
        wanted.push(Skill::ExpressDelivery);
    }
    let hour = chrono::Timelike::hour(&order.expected_delivery_time);
    if !(6..22).contains(&hour) {
        wanted.push(Skill::Overnight);
    }
    wanted
}

/// `x` rounded to three decimals.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Scores every suitable driver, best first (ties: nearer, then lower id).
pub fn rank(
    order: &Order,
    drivers: &[Driver],
    legs: &Legs,
    recent: &HashMap<String, i64>,
    now: DateTime<Utc>,
) -> (Vec<DriverScore>, RuledOut) {
    let w = weights(order.priority);
    let kg = order.weight_kg.unwrap_or(0.0);
    let wanted = wanted_skills(order);
    let due = rules::due(order);
    let mut scores = Vec::new();
    let mut ruled_out = Vec::new();
    for d in drivers {
        if let Some(why) = unsuitable(order, d) {
            ruled_out.push(why);
            continue;
        }
        let leg = leg_of(order, d, legs);
        let km = leg.distance_meters / 1000.0;
        let distance = 1.0 / (1.0 + km / 10.0);
        let vehicle = vehicle_fit(d.vehicle_type, kg);
        let capacity = (1.0 - kg / d.capacity_kg).clamp(0.0, 1.0);
        let skills = if wanted.is_empty() {
            1.0
        } else {
            wanted.iter().filter(|s| d.skills.contains(s)).count() as f64 / wanted.len() as f64
        };
        let n = recent.get(&d.driver_id).copied().unwrap_or(0);
        let workload = 1.0 / (1.0 + n as f64);
        let eta = rules::later_by_seconds(now, leg.duration_seconds);
        let slack = (due - eta).num_minutes();
        let urgency = (slack as f64 / 30.0).clamp(0.0, 1.0);
        let total = w.distance * distance
            + w.vehicle * vehicle
            + w.capacity * capacity
            + w.skills * skills
            + w.workload * workload
            + w.urgency * urgency;
        scores.push(DriverScore {
            driver_id: d.driver_id.clone(),
            name: d.name.clone(),
            total: round3(total),
            distance_km: round3(km),
            duration_seconds: leg.duration_seconds,
            distance: round3(distance),
            vehicle: round3(vehicle),
            capacity: round3(capacity),
            skills: round3(skills),
            workload: round3(workload),
            urgency: round3(urgency),
            slack_minutes: slack,
            recent_assignments: n,
        });
    }
    scores.sort_by(|a, b| {
        b.total
            .total_cmp(&a.total)
            .then(a.distance_km.total_cmp(&b.distance_km))
            .then_with(|| a.driver_id.cmp(&b.driver_id))
    });
    (scores, ruled_out)
}

/// A sentence or two on why `best` (the first of the ranking) won over
/// `runner_up` (the second, if any).
pub fn explain(
    order: &Order,
    best: &DriverScore,
    runner_up: Option<&DriverScore>,
    ruled_out: usize,
) -> String {
    let w = weights(order.priority);
    let wanted = wanted_skills(order);
    let skills = if wanted.is_empty() {
        "no special skills needed".to_owned()
    } else {
        format!(
            "{:.0}% of the wanted skills ({})",
            best.skills * 100.0,
            wanted
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let timing = if best.slack_minutes >= 0 {
        format!(
            "arrives about {} min before the promised time",
            best.slack_minutes
        )
    } else {
        format!(
            "arrives about {} min after the promised time",
            -best.slack_minutes
        )
    };
    let mut text = format!(
        "Chose {} ({}) with score {:.3}: {:.1} km away, vehicle fit {:.2}, capacity headroom {:.2}, {skills}, \
         {} assignment(s) in the last 24 h, {timing}. Weights for a {} order: distance {}, vehicle {}, \
         capacity {}, skills {}, workload {}, urgency {}.",
        best.name,
        best.driver_id,
        best.total,
        best.distance_km,
        best.vehicle,
        best.capacity,
        best.recent_assignments,
        order.priority,
        w.distance,
        w.vehicle,
        w.capacity,
        w.skills,
        w.workload,
        w.urgency
    );
    if let Some(next) = runner_up {
        text.push_str(&format!(
            " Runner-up: {} ({}) with {:.3}.",
            next.name, next.driver_id, next.total
        ));
    }
    if ruled_out > 0 {
        text.push_str(&format!(
            " {ruled_out} driver(s) could not carry the order."
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A driver as `create_driver` makes one (what is left out takes its
    /// default, so a new optional field needs no change here), at `t`.
    fn driver(id: &str, lat: f64, vehicle: VehicleType, skills: Vec<Skill>) -> Driver {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let new: NewDriver = serde_json::from_value(serde_json::json!({
            "name": id,
            "vehicle_type": vehicle,
            "current_address": "x",
            "current_lat": lat,
            "current_lng": 0.0,
            "skills": skills,
        }))
        .unwrap();
        Driver {
            driver_id: id.into(),
            ..rules::new_driver(new, t).unwrap()
        }
    }

    /// An order as `create_order` makes one (what is left out takes its
    /// default, so a new optional field needs no change here), at `t`.
    fn order(fragile: bool, kg: f64) -> Order {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let new: NewOrder = serde_json::from_value(serde_json::json!({
            "customer_name": "c",
            "delivery_address": "a",
            "delivery_lat": 0.0,
            "delivery_lng": 0.0,
            "expected_delivery_time": (t + chrono::Duration::hours(3)).to_rfc3339(),
            "weight_kg": kg,
            "is_fragile": fragile,
        }))
        .unwrap();
        Order {
            order_id: "ORD-1".into(),
            ..rules::new_order(new, t).unwrap()
        }
    }

    #[test]
    fn rank_survives_times_at_the_ends_of_chronos_range() {
        // Rows stored before times were checked may hold such values; the
        // ranking once panicked on them (issue 9).
        let drivers = vec![driver("DRV-A", 0.01, VehicleType::Van, vec![])];
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        for (due, grace, urgency) in [
            (DateTime::<Utc>::MAX_UTC, 15, 1.0),
            (DateTime::<Utc>::MIN_UTC, 15, 0.0),
            (now, i64::MAX, 1.0),
            (now, i64::MIN, 0.0),
        ] {
            let mut o = order(false, 1.0);
            o.expected_delivery_time = due;
            o.sla_grace_period_minutes = grace;
            let (ranking, _) = rank(&o, &drivers, &Legs::new(), &HashMap::new(), now);
            assert_eq!(ranking.len(), 1);
            assert_eq!(ranking[0].urgency, urgency, "{due} + {grace} min");
        }
    }

    #[test]
    fn nearest_breaks_ties_by_id_and_skips_the_unsuitable() {
        let mut small = driver("DRV-A", 0.01, VehicleType::Van, vec![]);
        small.capacity_kg = 5.0;
        let drivers = vec![
            small,
            driver("DRV-C", 0.02, VehicleType::Van, vec![]),
            driver("DRV-B", 0.02, VehicleType::Van, vec![]),
        ];
        let (best, out) = nearest(&order(false, 10.0), &drivers, &Legs::new());
        assert_eq!(best.map(|(d, _)| d.driver_id.as_str()), Some("DRV-B"));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn skills_and_workload_can_outweigh_a_little_distance() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let near = driver("DRV-NEAR", 0.010, VehicleType::Van, vec![]);
        let skilled = driver(
            "DRV-SKILLED",
            0.012,
            VehicleType::Van,
            vec![Skill::FragileHandler],
        );
        let recent = HashMap::from([("DRV-NEAR".to_owned(), 3)]);
        let (ranking, _) = rank(
            &order(true, 50.0),
            &[near, skilled],
            &Legs::new(),
            &recent,
            now,
        );
        assert_eq!(ranking[0].driver_id, "DRV-SKILLED");
        let text = explain(&order(true, 50.0), &ranking[0], ranking.get(1), 0);
        assert!(
            text.contains("DRV-SKILLED") && text.contains("Runner-up: DRV-NEAR"),
            "{text}"
        );
        // The same input gives the same answer.
        let (again, _) = rank(
            &order(true, 50.0),
            &[
                driver(
                    "DRV-SKILLED",
                    0.012,
                    VehicleType::Van,
                    vec![Skill::FragileHandler],
                ),
                driver("DRV-NEAR", 0.010, VehicleType::Van, vec![]),
            ],
            &Legs::new(),
            &recent,
            now,
        );
        assert_eq!(again[0].driver_id, "DRV-SKILLED");
    }

    #[test]
    fn a_measured_leg_beats_the_straight_line_unless_the_driver_moved() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        // By the straight line A (1.1 km) is nearer than B (2.2 km); by
        // road A is 9 km away (a river between), B 3 km.
        let drivers = vec![
            driver("DRV-A", 0.01, VehicleType::Van, vec![]),
            driver("DRV-B", -0.02, VehicleType::Van, vec![]),
        ];
        let o = order(false, 10.0);
        let road = |d: &Driver, m: f64| Leg {
            from_lat: d.current_lat,
            from_lng: d.current_lng,
            distance_meters: m,
            duration_seconds: (m / 10.0) as i64,
            summary: "by road".into(),
        };
        let (best, _) = nearest(&o, &drivers, &Legs::new());
        assert_eq!(best.map(|(d, _)| d.driver_id.as_str()), Some("DRV-A"));
        let legs = Legs::from([
            ("DRV-A".to_owned(), road(&drivers[0], 9000.0)),
            ("DRV-B".to_owned(), road(&drivers[1], 3000.0)),
        ]);
        let (best, _) = nearest(&o, &drivers, &legs);
        let (d, leg) = best.unwrap();
        assert_eq!(
            (d.driver_id.as_str(), leg.distance_meters),
            ("DRV-B", 3000.0)
        );
        let (ranking, _) = rank(&o, &drivers, &legs, &HashMap::new(), now);
        assert_eq!(ranking[0].driver_id, "DRV-B");
        assert_eq!(
            (ranking[0].distance_km, ranking[0].duration_seconds),
            (3.0, 300)
        );
        let all: Vec<&Driver> = drivers.iter().collect();
        assert_eq!(by_leg(&o, &all, &Legs::new()), ["DRV-A", "DRV-B"]);
        assert_eq!(by_leg(&o, &all, &legs), ["DRV-B", "DRV-A"]);

        // B moved (11 km out) since its leg was measured: its leg is
        // stale, and the straight line stands in for it.
        let mut moved = drivers.clone();
        moved[1].current_lat = -0.1;
        let (best, _) = nearest(&o, &moved, &legs);
        assert_eq!(best.map(|(d, _)| d.driver_id.as_str()), Some("DRV-A"));
    }
}

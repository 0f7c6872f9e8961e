//! Choosing a driver for an order, deterministically and without any
//! network: `auto_assign_order` takes the nearest suitable driver;
//! `intelligent_assign_order` weighs distance, vehicle, capacity, skills,
//! workload and urgency and explains the result.

use super::rules::{self, haversine_km, unsuitable};
use super::types::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// Drivers who cannot take the order, and why.
pub type RuledOut = Vec<String>;

/// The nearest active driver who can carry the order (ties: lower id).
pub fn nearest<'a>(order: &Order, drivers: &'a [Driver]) -> (Option<(&'a Driver, f64)>, RuledOut) {
    let mut best: Option<(&Driver, f64)> = None;
    let mut ruled_out = Vec::new();
    for driver in drivers {
        if let Some(why) = unsuitable(order, driver) {
            ruled_out.push(why);
            continue;
        }
        let km = distance_km(order, driver);
        let better = match best {
            None => true,
            Some((b, bkm)) => km < bkm || (km == bkm && driver.driver_id < b.driver_id),
        };
        if better {
            best = Some((driver, km));
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
    pub distance_km: f64,
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
        let km = distance_km(order, d);
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
        let minutes = km / d.vehicle_type.speed_kmh() * 60.0;
        let eta = rules::later_by_seconds(now, (minutes * 60.0).round() as i64);
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

    fn driver(id: &str, lat: f64, vehicle: VehicleType, skills: Vec<Skill>) -> Driver {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        Driver {
            driver_id: id.into(),
            name: id.into(),
            phone: None,
            email: None,
            status: DriverStatus::Active,
            vehicle_type: vehicle,
            vehicle_plate: None,
            capacity_kg: 1000.0,
            capacity_m3: 12.0,
            skills,
            current_address: "x".into(),
            current_lat: lat,
            current_lng: 0.0,
            last_location_update: t,
            created_at: t,
            updated_at: t,
        }
    }

    fn order(fragile: bool, kg: f64) -> Order {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        Order {
            order_id: "ORD-1".into(),
            customer_name: "c".into(),
            customer_phone: None,
            customer_email: None,
            delivery_address: "a".into(),
            delivery_lat: 0.0,
            delivery_lng: 0.0,
            time_window_start: None,
            time_window_end: None,
            expected_delivery_time: t + chrono::Duration::hours(3),
            priority: Priority::Standard,
            weight_kg: Some(kg),
            volume_m3: None,
            special_instructions: None,
            order_value: None,
            payment_status: PaymentStatus::Pending,
            requires_signature: false,
            is_fragile: fragile,
            requires_cold_storage: false,
            status: OrderStatus::Pending,
            assigned_driver_id: None,
            delivery_status: None,
            sla_grace_period_minutes: 15,
            created_at: t,
            updated_at: t,
            delivered_at: None,
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
            let (ranking, _) = rank(&o, &drivers, &HashMap::new(), now);
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
        let (best, out) = nearest(&order(false, 10.0), &drivers);
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
        let (ranking, _) = rank(&order(true, 50.0), &[near, skilled], &recent, now);
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
            &recent,
            now,
        );
        assert_eq!(again[0].driver_id, "DRV-SKILLED");
    }
}

//! How far drivers are from an order, for the assignment tools: by road
//! through the routing engine when one is configured, else (and when it is
//! slow, down or silent) the embedded estimate, marked. The engine calls
//! are made here; the fleet domain scores the resulting legs without I/O.
//!
//! Bounded: only the few most promising drivers ([`BY_ROAD`]) are asked
//! about by road, all at once, so a round waits at most one engine
//! timeout whatever the fleet's size; a second round only if a driver not
//! asked about came out ahead on the estimate, and none after a failure. One `/route` per driver rather than one
//! matrix call (`/sources_to_targets`): each driver is routed with their
//! own vehicle's costing (a truck's road differs from a car's), the
//! answers share calculate_route's cache, and five concurrent requests on
//! a local engine cost no more time than one.

use crate::fleet::choose::{Leg, Legs};
use crate::fleet::{Driver, Order};
use crate::routing::{Engine, Point, Route, RouteError, RouteQuery, Routing, estimate};
use rmcp::schemars;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How many drivers are measured by road for one assignment.
const BY_ROAD: usize = 5;

/// The way the chosen driver has to the order, as calculate_route
/// answers it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Way {
    pub distance_meters: f64,
    pub duration_seconds: i64,
    pub summary: String,
    pub engine: Engine,
    /// True when the numbers are the embedded estimate, not a road route.
    pub estimated: bool,
    /// Why the estimate stands in for the configured road engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// The drivers' ways to one order.
pub(super) struct Measured {
    /// Each driver's way: by road when measured so, else the estimate.
    ways: HashMap<String, Route>,
    estimates: HashMap<String, Route>,
    /// Why the estimate stands in for the road engine (for every driver:
    /// road and estimated distances are not compared with each other).
    fallback: Option<String>,
    /// Drivers the engine found no road from (they keep the estimate, for
    /// an assignment made by hand).
    no_road: Vec<String>,
    /// Where each driver was when measured.
    from: HashMap<String, Point>,
    /// Whether a road engine is configured.
    engine: bool,
}

impl Measured {
    /// The legs to score the drivers by.
    pub fn legs(&self) -> Legs {
        self.ways
            .iter()
            .filter_map(|(id, route)| {
                let from = self.from.get(id)?;
                Some((
                    id.clone(),
                    Leg {
                        from_lat: from.lat,
                        from_lng: from.lng,
                        distance_meters: route.distance_meters,
                        duration_seconds: route.duration_seconds,
                        summary: route.summary.clone(),
                    },
                ))
            })
            .collect()
    }

    /// Whether the engine found no road from this driver to the order.
    pub fn unreachable(&self, driver_id: &str) -> bool {
        self.no_road.iter().any(|id| id == driver_id)
    }

    /// Why the unreachable drivers were left out.
    pub fn ruled_out(&self) -> impl Iterator<Item = String> + '_ {
        self.no_road.iter().map(|id| {
            format!("{id}: the road engine found no road from the driver to the delivery point")
        })
    }

    /// How `leg` (the one the chosen driver was scored by) was measured.
    pub fn way(&self, driver_id: &str, leg: &Leg) -> Way {
        let route = self.ways.get(driver_id);
        let fallback_reason = if self.unreachable(driver_id) {
            Some("the road engine found no road from the driver to the delivery point; this is the estimate".into())
        } else if self.fallback.is_none() && self.engine && !self.is_by_road(driver_id) {
            Some(format!(
                "this driver was not among the {BY_ROAD} (at most {}) most promising drivers \
                 routed by road; this is the estimate",
                2 * BY_ROAD
            ))
        } else {
            self.fallback.clone()
        };
        Way {
            distance_meters: leg.distance_meters,
            duration_seconds: leg.duration_seconds,
            summary: leg.summary.clone(),
            engine: route.map_or(Engine::Estimate, |r| r.engine),
            estimated: route.is_none_or(|r| r.estimated),
            fallback_reason,
        }
    }
}

fn point_of(driver: &Driver) -> Point {
    Point::new(driver.current_lat, driver.current_lng)
}

fn delivery_point(order: &Order) -> Point {
    Point::new(order.delivery_lat, order.delivery_lng)
}

/// Every driver of `all` measured by the estimate, and those of `by_road`
/// (at most [`BY_ROAD`] of them) by the road engine if there is one.
pub(super) async fn measure(
    routing: &Arc<Routing>,
    order: &Order,
    all: &[&Driver],
    by_road: &[&Driver],
) -> Measured {
    let to = delivery_point(order);
    let estimates: HashMap<String, Route> = all
        .iter()
        .map(|d| {
            let travel = crate::routing::Travel::Driving(d.vehicle_type);
            (
                d.driver_id.clone(),
                estimate::route(point_of(d), to, travel),
            )
        })
        .collect();
    let mut measured = Measured {
        ways: estimates.clone(),
        estimates,
        fallback: None,
        no_road: Vec::new(),
        from: all
            .iter()
            .map(|d| (d.driver_id.clone(), point_of(d)))
            .collect(),
        engine: routing.has_road_engine(),
    };
    measured.by_road(routing, order, by_road).await;
    measured
}

/// The drivers of `fit` measured for a choice: the leading few (by
/// `ranked`, best first, from the legs so far) by road; if one not asked
/// about then comes out ahead on the estimate, the next few once more. At
/// most two rounds of [`BY_ROAD`] calls.
pub(super) async fn measure_leaders(
    routing: &Arc<Routing>,
    order: &Order,
    fit: &[&Driver],
    ranked: impl Fn(&Legs) -> Vec<String>,
) -> Measured {
    let mut measured = measure(routing, order, fit, &[]).await;
    for _ in 0..2 {
        let ids = ranked(&measured.legs());
        let leader = ids.iter().find(|id| !measured.unreachable(id));
        if leader.is_none_or(|id| measured.is_by_road(id)) || !measured.can_ask(routing) {
            break;
        }
        let next: Vec<&Driver> = ids
            .iter()
            .filter_map(|id| fit.iter().find(|d| &d.driver_id == id).copied())
            .collect();
        measured.by_road(routing, order, &next).await;
    }
    measured
}

impl Measured {
    /// Whether this driver's way is a road engine's.
    pub fn is_by_road(&self, driver_id: &str) -> bool {
        self.ways.get(driver_id).is_some_and(|r| !r.estimated)
    }

    /// Whether more drivers can be measured by road (an engine is
    /// configured and has not failed this call).
    pub fn can_ask(&self, routing: &Routing) -> bool {
        routing.has_road_engine() && self.fallback.is_none()
    }

    /// Measures by road those of `drivers` (the first [`BY_ROAD`] not yet
    /// asked about), all at once. If any of them gets no answer in time,
    /// every driver falls back to the estimate.
    pub async fn by_road(&mut self, routing: &Arc<Routing>, order: &Order, drivers: &[&Driver]) {
        if !self.can_ask(routing) {
            return;
        }
        let to = delivery_point(order);
        let mut calls = JoinSet::new();
        let fresh = drivers
            .iter()
            .filter(|d| !self.is_by_road(&d.driver_id) && !self.unreachable(&d.driver_id))
            .take(BY_ROAD);
        for d in fresh {
            let routing = routing.clone();
            let query = RouteQuery::driving(point_of(d), to, d.vehicle_type);
            let id = d.driver_id.clone();
            calls.spawn(async move { (id, routing.route(&query).await) });
        }
        let asked = calls.len();
        if asked == 0 {
            return;
        }
        let mut answers = Vec::new();
        // Each call is bounded by the engine timeout; this bounds the lot,
        // in case a task is starved.
        let deadline = tokio::time::Instant::now() + routing.timeout() + Duration::from_secs(1);
        let mut late = false;
        while !calls.is_empty() {
            match tokio::time::timeout_at(deadline, calls.join_next()).await {
                Ok(Some(Ok(answer))) => answers.push(answer),
                Ok(Some(Err(_))) | Ok(None) => {}
                Err(_) => {
                    late = true;
                    break;
                }
            }
        }
        calls.abort_all();
        let mut roads = HashMap::new();
        let mut no_road = Vec::new();
        let mut fallback = None;
        for (id, answer) in answers {
            match answer {
                Ok(a) if a.fallback.is_some() => fallback = fallback.or(a.fallback),
                Ok(a) => {
                    roads.insert(id, a.route);
                }
                Err(RouteError::NoRoute(_)) => no_road.push(id),
            }
        }
        if late || roads.len() + no_road.len() < asked {
            fallback = fallback.or(Some(
                "the road engine did not answer in time; this is the estimate".to_owned(),
            ));
        }
        if fallback.is_some() {
            // Some of those asked about were not measured by road: every
            // driver keeps the estimate, so that like is compared with like.
            self.ways = self.estimates.clone();
            self.no_road.clear();
            self.fallback = fallback;
            return;
        }
        self.no_road.extend(no_road);
        self.ways.extend(roads);
    }
}

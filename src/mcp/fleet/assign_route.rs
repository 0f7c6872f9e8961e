//! How far drivers are from an order, for the assignment tools: by road
//! through the routing engine when one is configured, else (and when it is
//! slow, down or silent) the embedded estimate, marked. The engine calls
//! are made here; the fleet domain scores the resulting legs without I/O.
//!
//! Bounded: only the few most promising drivers ([`BY_ROAD`]) are asked
//! about by road, all at once, so a call waits at most one engine timeout
//! whatever the fleet's size. One `/route` per driver rather than one
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
pub(super) const BY_ROAD: usize = 5;

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
    ways: HashMap<String, Route>,
    /// Why the estimate stands in for the road engine (for every driver:
    /// road and estimated distances are not compared with each other).
    fallback: Option<String>,
    /// Drivers the engine found no road from (they keep the estimate, for
    /// an assignment made by hand).
    no_road: Vec<String>,
    /// Where each driver was when measured.
    from: HashMap<String, Point>,
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
    let estimate_of = |d: &Driver| {
        estimate::route(
            point_of(d),
            to,
            crate::routing::Travel::Driving(d.vehicle_type),
        )
    };
    let mut measured = Measured {
        ways: all
            .iter()
            .map(|d| (d.driver_id.clone(), estimate_of(d)))
            .collect(),
        fallback: None,
        no_road: Vec::new(),
        from: all
            .iter()
            .map(|d| (d.driver_id.clone(), point_of(d)))
            .collect(),
    };
    if !routing.has_road_engine() || by_road.is_empty() {
        return measured;
    }
    let mut calls = JoinSet::new();
    for d in by_road.iter().take(BY_ROAD) {
        let routing = routing.clone();
        let query = RouteQuery::driving(point_of(d), to, d.vehicle_type);
        let id = d.driver_id.clone();
        calls.spawn(async move { (id, routing.route(&query).await) });
    }
    let mut answers = Vec::new();
    // Each call is bounded by the engine timeout; this bounds the lot, in
    // case a task is starved.
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
    let asked = by_road.len().min(BY_ROAD);
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
        measured.fallback = fallback;
        return measured;
    }
    measured.no_road = no_road;
    measured.ways.extend(roads);
    measured
}

//! Valhalla's `/route` API. Valhalla was chosen over OSRM because one
//! server answers for every vehicle (costing is chosen per request, OSRM
//! needs one prepared graph per profile) and honours toll, highway and
//! ferry preferences per request; and because its PyPI wheel ships the
//! tile builder and the server, so the tests run the real engine.

use super::{Engine, EngineError, Route, RouteAnswer, RouteQuery, Step, Travel};
use crate::fleet::types::VehicleType;
use serde::Deserialize;
use serde_json::json;

pub(super) struct Valhalla {
    http: reqwest::Client,
    route_url: reqwest::Url,
}

/// Valhalla's codes for "no route": no road near a location (170, 171),
/// no path (442, 443).
const NO_ROUTE_CODES: [i64; 4] = [170, 171, 442, 443];

impl Valhalla {
    pub(super) fn new(http: reqwest::Client, base: reqwest::Url) -> Self {
        Self {
            http,
            route_url: super::endpoint(&base, "route"),
        }
    }

    pub(super) async fn route(&self, query: &RouteQuery) -> Result<RouteAnswer, EngineError> {
        let costing = costing(query.travel);
        let mut body = json!({
            "locations": [
                {"lat": query.from.lat, "lon": query.from.lng},
                {"lat": query.to.lat, "lon": query.to.lng},
            ],
            "costing": costing,
            "units": "kilometers",
            "directions_type": if query.steps { "instructions" } else { "none" },
        });
        if query.alternatives {
            body["alternates"] = json!(2);
        }
        // Valhalla's use_* run from 0 (avoid) to 1 (prefer).
        let avoid = |yes: bool| if yes { 0.0 } else { 0.5 };
        body["costing_options"] = json!({ costing: {
            "use_tolls": avoid(query.avoid.tolls),
            "use_highways": avoid(query.avoid.highways),
            "use_ferry": avoid(query.avoid.ferries),
        }});
        let response = self
            .http
            .post(self.route_url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| EngineError::Unavailable(format!("valhalla: {}", e.without_url())))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| EngineError::Unavailable(format!("valhalla: {}", e.without_url())))?;
        if !status.is_success() {
            let failure: Failure = serde_json::from_slice(&bytes).unwrap_or_default();
            if NO_ROUTE_CODES.contains(&failure.error_code) {
                return Err(EngineError::NoRoute(failure.error));
            }
            return Err(EngineError::Unavailable(format!(
                "valhalla answered {status}: {}",
                failure.error.chars().take(200).collect::<String>()
            )));
        }
        let answer: Answer = serde_json::from_slice(&bytes)
            .map_err(|e| EngineError::Unavailable(format!("valhalla's answer: {e}")))?;
        let mut not_honoured = Vec::new();
        if query.alternatives && answer.alternates.is_empty() {
            not_honoured.push("alternatives: the engine found no other reasonable route".into());
        }
        if matches!(query.travel, Travel::Driving(VehicleType::Van)) {
            not_honoured
                .push("vehicle_type van: routed as a car (the engine has no van profile)".into());
        }
        Ok(RouteAnswer {
            route: answer.trip.route(query.steps),
            alternatives: answer
                .alternates
                .into_iter()
                .map(|alt| alt.trip.route(query.steps))
                .collect(),
            not_honoured,
            fallback: None,
        })
    }
}

fn costing(travel: Travel) -> &'static str {
    match travel {
        Travel::Driving(VehicleType::Car | VehicleType::Van) => "auto",
        Travel::Driving(VehicleType::Truck) => "truck",
        Travel::Driving(VehicleType::Motorcycle) => "motorcycle",
        Travel::Walking => "pedestrian",
        Travel::Cycling => "bicycle",
    }
}

#[derive(Deserialize, Default)]
struct Failure {
    #[serde(default)]
    error_code: i64,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct Answer {
    trip: Trip,
    #[serde(default)]
    alternates: Vec<Alternate>,
}

#[derive(Deserialize)]
struct Alternate {
    trip: Trip,
}

#[derive(Deserialize)]
struct Trip {
    summary: Summary,
    #[serde(default)]
    legs: Vec<Leg>,
}

#[derive(Deserialize)]
struct Summary {
    /// Kilometres (we ask for them).
    length: f64,
    /// Seconds.
    time: f64,
}

#[derive(Deserialize)]
struct Leg {
    #[serde(default)]
    maneuvers: Vec<Maneuver>,
}

#[derive(Deserialize)]
struct Maneuver {
    instruction: String,
    length: f64,
    time: f64,
    #[serde(default)]
    street_names: Vec<String>,
}

impl Trip {
    fn route(self, with_steps: bool) -> Route {
        let maneuvers: Vec<Maneuver> = self.legs.into_iter().flat_map(|l| l.maneuvers).collect();
        let mut streets: Vec<&str> = Vec::new();
        for m in &maneuvers {
            for name in &m.street_names {
                if !streets.contains(&name.as_str()) {
                    streets.push(name);
                }
            }
        }
        let km = self.summary.length;
        let summary = if streets.is_empty() {
            format!("{km:.1} km by road")
        } else {
            format!("{km:.1} km by road via {}", streets.join(", "))
        };
        Route {
            distance_meters: (km * 1000.0).round(),
            duration_seconds: self.summary.time.round() as i64,
            summary,
            engine: Engine::Valhalla,
            estimated: false,
            steps: if with_steps {
                maneuvers
                    .into_iter()
                    .map(|m| Step {
                        instruction: m.instruction,
                        distance_meters: (m.length * 1000.0).round(),
                        duration_seconds: m.time,
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

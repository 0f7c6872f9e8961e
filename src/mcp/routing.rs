//! The routing tools: geocoding, routes (by road when an engine is
//! configured, else the marked estimate) and the tenant's saved places,
//! which every origin, destination and address may name.

use super::args::parse;
use super::error::ToolError;
use crate::auth::Caller;
use crate::fleet::types::VehicleType;
use crate::mcp::json::Json;
use crate::mcp::{FleetMind, input_schema, truncate};
use crate::routing::{
    Avoid, Engine, GeocodeError, Geocoded, Point, Route, RouteAnswer, RouteError, RouteQuery, Step,
    Travel,
};
use crate::store::places::{NewPlace, Place};
use crate::tenant::UserId;
use rmcp::model::JsonObject;
use rmcp::{schemars, tool, tool_router};
use serde::{Deserialize, Serialize};

/// Longest place name and address.
const NAME_MAX: usize = 100;
const ADDRESS_MAX: usize = 500;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct GeocodeArgs {
    /// An address, a saved place's name, or "lat,lng".
    address: String,
}

/// How the trip is made.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Driving,
    Walking,
    Bicycling,
    /// Not available here: answered with the driving route, and said so.
    Transit,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RouteArgs {
    /// Where from: an address, a saved place's name, or "lat,lng".
    origin: String,
    /// Where to: an address, a saved place's name, or "lat,lng".
    destination: String,
    /// driving (default), walking, bicycling; transit is not available.
    mode: Option<Mode>,
    /// For driving: car (default), van, truck or motorcycle.
    vehicle_type: Option<VehicleType>,
    /// Also return up to two other routes (road engine only).
    alternatives: Option<bool>,
    /// Return the turn-by-turn steps (road engine only).
    include_steps: Option<bool>,
    avoid_tolls: Option<bool>,
    avoid_highways: Option<bool>,
    avoid_ferries: Option<bool>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct IntelligentRouteArgs {
    /// Where from: an address, a saved place's name, or "lat,lng".
    origin: String,
    /// Where to: an address, a saved place's name, or "lat,lng".
    destination: String,
    /// car (default), van, truck or motorcycle.
    vehicle_type: Option<VehicleType>,
    /// Default true.
    consider_weather: Option<bool>,
    /// Default true.
    consider_traffic: Option<bool>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SavePlaceArgs {
    /// Unique per account, whatever the case; at most 100 characters, not "lat,lng".
    name: String,
    /// The address: geocoded unless lat and lng are given (then it is a label).
    address: Option<String>,
    #[schemars(range(min = -90, max = 90))]
    lat: Option<f64>,
    #[schemars(range(min = -180, max = 180))]
    lng: Option<f64>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PlaceNameArgs {
    /// The saved place's name (any case).
    name: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// Where a point came from.
#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Coordinates,
    SavedPlace,
    Geocoder,
}

/// A geocoded address.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct GeocodeResult {
    pub success: bool,
    pub lat: f64,
    pub lng: f64,
    pub formatted_address: String,
    pub confidence: f64,
    pub source: Source,
    pub engine: Engine,
    /// Always false: a point is looked up, not estimated.
    pub estimated: bool,
}

/// One end of a route, as resolved.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Endpoint {
    pub lat: f64,
    pub lng: f64,
    pub label: String,
    pub source: Source,
}

/// A route and how it was made.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RouteResult {
    pub success: bool,
    pub origin: Endpoint,
    pub destination: Endpoint,
    pub distance_meters: f64,
    pub duration_seconds: i64,
    pub summary: String,
    pub engine: Engine,
    /// True when the numbers are the embedded estimate, not a road route.
    pub estimated: bool,
    /// driving, walking or bicycling.
    pub mode: String,
    /// Turn by turn, when asked for and a road engine answered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Route>,
    /// Options asked for that this answer does not honour, and why.
    pub not_honoured: Vec<String>,
    /// Why the estimate stands in for the configured road engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// A route with what was, and was not, taken into account.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct IntelligentRouteResult {
    #[serde(flatten)]
    pub route: RouteResult,
    /// Changes made to the route's time (none without a weather or traffic source).
    pub adjustments: Vec<String>,
    /// What could not be considered, and why.
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PlaceResult {
    pub success: bool,
    pub place: Place,
    pub message: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PlaceList {
    pub success: bool,
    pub count: usize,
    pub places: Vec<Place>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PlaceDeleted {
    pub success: bool,
    pub message: String,
}

#[tool_router(router = routing_router, vis = "pub(crate)")]
impl FleetMind {
    #[tool(
        description = "Find the point of an address: \"lat,lng\" as is, then the account's saved places (by name), then the configured geocoder. Returns lat, lng, formatted_address, confidence and where it came from.",
        input_schema = input_schema::<GeocodeArgs>(),
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn geocode_address(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<GeocodeResult>, ToolError> {
        let a: GeocodeArgs = parse(args)?;
        let address = text("address", &a.address, ADDRESS_MAX)?;
        let (found, source) = self.locate(&caller.user_id, "address", &address).await?;
        Ok(Json(GeocodeResult {
            success: true,
            lat: found.lat,
            lng: found.lng,
            formatted_address: found.formatted_address,
            confidence: found.confidence,
            source,
            engine: found.engine,
            estimated: false,
        }))
    }

    #[tool(
        description = "Route between two places (addresses, saved place names or \"lat,lng\"): distance in metres, duration in seconds, summary. By road when the server has a routing engine; otherwise, or when it is slow, the straight-line estimate, marked estimated: true. Options the answer cannot honour are listed in not_honoured.",
        input_schema = input_schema::<RouteArgs>(),
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn calculate_route(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<RouteResult>, ToolError> {
        let a: RouteArgs = parse(args)?;
        let mut not_honoured = Vec::new();
        let travel = match a.mode.unwrap_or(Mode::Driving) {
            Mode::Driving => Travel::Driving(a.vehicle_type.unwrap_or(VehicleType::Car)),
            Mode::Transit => {
                not_honoured.push(
                    "mode transit: no transit data on this server; this is the driving route"
                        .into(),
                );
                Travel::Driving(a.vehicle_type.unwrap_or(VehicleType::Car))
            }
            other => {
                if a.vehicle_type.is_some() {
                    not_honoured.push("vehicle_type: only used for driving".into());
                }
                if other == Mode::Walking {
                    Travel::Walking
                } else {
                    Travel::Cycling
                }
            }
        };
        let avoid = Avoid {
            tolls: a.avoid_tolls.unwrap_or(false),
            highways: a.avoid_highways.unwrap_or(false),
            ferries: a.avoid_ferries.unwrap_or(false),
        };
        let (origin, destination) = self
            .ends(&caller.user_id, &a.origin, &a.destination)
            .await?;
        let query = RouteQuery {
            from: Point::new(origin.lat, origin.lng),
            to: Point::new(destination.lat, destination.lng),
            travel,
            avoid,
            alternatives: a.alternatives.unwrap_or(false),
            steps: a.include_steps.unwrap_or(false),
        };
        let answer = self.routing.route(&query).await.map_err(no_route)?;
        Ok(Json(route_result(
            origin,
            destination,
            travel,
            answer,
            not_honoured,
        )))
    }

    #[tool(
        description = "Route for a vehicle with the adjustments the server can make for weather and traffic. This server has no weather or live-traffic source: it says so in notes and changes nothing (the duration is the road engine's free-flow time, or the marked estimate).",
        input_schema = input_schema::<IntelligentRouteArgs>(),
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn calculate_intelligent_route(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<IntelligentRouteResult>, ToolError> {
        let a: IntelligentRouteArgs = parse(args)?;
        let vehicle = a.vehicle_type.unwrap_or(VehicleType::Car);
        let (origin, destination) = self
            .ends(&caller.user_id, &a.origin, &a.destination)
            .await?;
        let query = RouteQuery::driving(
            Point::new(origin.lat, origin.lng),
            Point::new(destination.lat, destination.lng),
            vehicle,
        );
        let answer = self.routing.route(&query).await.map_err(no_route)?;
        let route = route_result(
            origin,
            destination,
            Travel::Driving(vehicle),
            answer,
            Vec::new(),
        );
        let mut notes = Vec::new();
        if a.consider_weather.unwrap_or(true) {
            notes.push(
                "weather: no weather source is configured on this server; no adjustment made"
                    .into(),
            );
        }
        if a.consider_traffic.unwrap_or(true) {
            notes.push(if route.estimated {
                "traffic: no live traffic source; the duration is the estimate at average town speed".into()
            } else {
                "traffic: no live traffic source; the duration is the road engine's free-flow time".into()
            });
        }
        Ok(Json(IntelligentRouteResult {
            route,
            adjustments: Vec::new(),
            notes,
        }))
    }

    #[tool(
        description = "Save a named place (a depot, a regular customer) for this account, from lat and lng or by geocoding its address; a place of the same name (any case) is replaced. Routes and geocoding accept the name.",
        input_schema = input_schema::<SavePlaceArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn save_place(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<PlaceResult>, ToolError> {
        let a: SavePlaceArgs = parse(args)?;
        let name = text("name", &a.name, NAME_MAX)?;
        if Point::parse(&name).is_some() {
            return Err(ToolError::Refused(
                "name: must not look like \"lat,lng\" (it would be read as a point)".into(),
            ));
        }
        let address = match &a.address {
            Some(address) => Some(text("address", address, ADDRESS_MAX)?),
            None => None,
        };
        let (address, point) = match (a.lat, a.lng, address) {
            (Some(lat), Some(lng), address) => {
                let point = Point::checked(lat, lng)
                    .map_err(|e| ToolError::Refused(format!("lat, lng: {e}")))?;
                (address.unwrap_or_else(|| point.to_string()), point)
            }
            (None, None, Some(address)) => {
                let (found, _) = self.locate(&caller.user_id, "address", &address).await?;
                (address, Point::new(found.lat, found.lng))
            }
            (None, None, None) => {
                return Err(ToolError::Refused("give an address, or lat and lng".into()));
            }
            _ => {
                return Err(ToolError::Refused(
                    "give both lat and lng, or neither".into(),
                ));
            }
        };
        let place = self
            .db
            .save_place(
                &caller.user_id,
                NewPlace {
                    name,
                    address,
                    lat: point.lat,
                    lng: point.lng,
                },
                self.clock.now(),
            )
            .await?;
        let message = format!("place '{}' saved at {point}", place.name);
        Ok(Json(PlaceResult {
            success: true,
            place,
            message,
        }))
    }

    #[tool(
        description = "The account's saved places, by name.",
        input_schema = input_schema::<NoArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_places(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<PlaceList>, ToolError> {
        let _: NoArgs = parse(args)?;
        let places = self.db.places(&caller.user_id).await?;
        Ok(Json(PlaceList {
            success: true,
            count: places.len(),
            places,
        }))
    }

    #[tool(
        description = "Delete one of the account's saved places by name.",
        input_schema = input_schema::<PlaceNameArgs>(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn delete_place(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<PlaceDeleted>, ToolError> {
        let a: PlaceNameArgs = parse(args)?;
        let name = text("name", &a.name, NAME_MAX)?;
        if !self.db.delete_place(&caller.user_id, &name).await? {
            return Err(ToolError::Refused(format!(
                "place '{}' not found",
                truncate(&name)
            )));
        }
        Ok(Json(PlaceDeleted {
            success: true,
            message: format!("place '{}' deleted", truncate(&name)),
        }))
    }
}

impl FleetMind {
    /// The point `text` names: "lat,lng", a saved place, or what the
    /// geocoder finds.
    async fn locate(
        &self,
        user: &UserId,
        field: &str,
        text: &str,
    ) -> Result<(Geocoded, Source), ToolError> {
        if let Some(point) = Point::parse(text) {
            let point = point.map_err(|e| ToolError::Refused(format!("{field}: {e}")))?;
            return Ok((
                Geocoded {
                    lat: point.lat,
                    lng: point.lng,
                    formatted_address: point.to_string(),
                    confidence: 1.0,
                    engine: Engine::Estimate,
                },
                Source::Coordinates,
            ));
        }
        if let Some(place) = self.db.place(user, text).await? {
            return Ok((
                Geocoded {
                    lat: place.lat,
                    lng: place.lng,
                    formatted_address: place.address,
                    confidence: 1.0,
                    engine: Engine::Estimate,
                },
                Source::SavedPlace,
            ));
        }
        match self.routing.geocode(text).await {
            Ok(found) => Ok((found, Source::Geocoder)),
            Err(GeocodeError::NotFound) => Err(ToolError::Refused(format!(
                "{field}: no place found for '{}' (not a saved place, and the geocoder does not know it)",
                truncate(text)
            ))),
            Err(err) => Err(ToolError::Refused(format!("{field}: {err}"))),
        }
    }

    /// Both ends of a route.
    async fn ends(
        &self,
        user: &UserId,
        origin: &str,
        destination: &str,
    ) -> Result<(Endpoint, Endpoint), ToolError> {
        let origin = text("origin", origin, ADDRESS_MAX)?;
        let destination = text("destination", destination, ADDRESS_MAX)?;
        let (from, from_source) = self.locate(user, "origin", &origin).await?;
        let (to, to_source) = self.locate(user, "destination", &destination).await?;
        let end = |g: Geocoded, source| Endpoint {
            lat: g.lat,
            lng: g.lng,
            label: g.formatted_address,
            source,
        };
        Ok((end(from, from_source), end(to, to_source)))
    }
}

fn route_result(
    origin: Endpoint,
    destination: Endpoint,
    travel: Travel,
    answer: RouteAnswer,
    mut not_honoured: Vec<String>,
) -> RouteResult {
    not_honoured.extend(answer.not_honoured);
    let mode = match travel {
        Travel::Driving(_) => "driving",
        Travel::Walking => "walking",
        Travel::Cycling => "bicycling",
    };
    RouteResult {
        success: true,
        origin,
        destination,
        distance_meters: answer.route.distance_meters,
        duration_seconds: answer.route.duration_seconds,
        summary: answer.route.summary,
        engine: answer.route.engine,
        estimated: answer.route.estimated,
        mode: mode.into(),
        steps: answer.route.steps,
        alternatives: answer.alternatives,
        not_honoured,
        fallback_reason: answer.fallback,
    }
}

fn no_route(err: RouteError) -> ToolError {
    match err {
        RouteError::NoRoute(_) => ToolError::Refused(
            "no road route joins these two points (one may be too far from any road)".into(),
        ),
    }
}

/// A required text argument: trimmed, non-empty, at most `max` characters,
/// no control characters.
fn text(field: &str, value: &str, max: usize) -> Result<String, ToolError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ToolError::Refused(format!("{field}: must not be empty")));
    }
    if value.chars().count() > max {
        return Err(ToolError::Refused(format!(
            "{field}: at most {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ToolError::Refused(format!(
            "{field}: must not contain control characters"
        )));
    }
    Ok(value.to_owned())
}

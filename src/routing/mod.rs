//! Routes and addresses: the embedded estimate by default, a road engine
//! (Valhalla) and a geocoder (Nominatim) when the operator runs them.
//!
//! A tool never waits on an engine longer than [`RoutingOptions::timeout`]:
//! a slow or down road engine gives way to the estimate (marked
//! `estimated: true`, with the reason), a slow geocoder to a clear tool
//! error. Engine URLs and engine error text go to the log only.

pub mod estimate;
mod nominatim;
mod valhalla;

use crate::fleet::types::VehicleType;
use moka::sync::Cache;
use rmcp::schemars;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A point on the map, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Point {
    pub lat: f64,
    pub lng: f64,
}

impl Point {
    pub fn new(lat: f64, lng: f64) -> Self {
        Self { lat, lng }
    }

    /// Reads `"lat,lng"`; `None` when the text is not two numbers, an error
    /// when it is but they are off the map.
    pub fn parse(text: &str) -> Option<Result<Point, String>> {
        let (lat, lng) = text.split_once(',')?;
        let lat: f64 = lat.trim().parse().ok()?;
        let lng: f64 = lng.trim().parse().ok()?;
        Some(Point::checked(lat, lng))
    }

    /// The point, if both numbers are on the map.
    pub fn checked(lat: f64, lng: f64) -> Result<Point, String> {
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lng) {
            return Err(format!(
                "'{lat},{lng}' is off the map (lat within -90..90, lng within -180..180)"
            ));
        }
        Ok(Point { lat, lng })
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6},{:.6}", self.lat, self.lng)
    }
}

/// Which engine gave an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// The embedded estimate (see [`estimate`]).
    Estimate,
    Valhalla,
    Nominatim,
}

/// How the trip is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Travel {
    Driving(VehicleType),
    Walking,
    Cycling,
}

impl Travel {
    /// Average speed, for the estimate.
    pub fn speed_kmh(self) -> f64 {
        match self {
            Travel::Driving(vehicle) => vehicle.speed_kmh(),
            Travel::Walking => 5.0,
            Travel::Cycling => 15.0,
        }
    }
}

impl fmt::Display for Travel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Travel::Driving(vehicle) => write!(f, "{vehicle}"),
            Travel::Walking => f.write_str("walking"),
            Travel::Cycling => f.write_str("bicycle"),
        }
    }
}

/// One manoeuvre of a route.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Step {
    pub instruction: String,
    pub distance_meters: f64,
    pub duration_seconds: f64,
}

/// A route's length and time.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Route {
    pub distance_meters: f64,
    pub duration_seconds: i64,
    pub summary: String,
    pub engine: Engine,
    /// True when the numbers are the embedded estimate, not a road route.
    pub estimated: bool,
    /// Turn by turn (only when asked for, and only from a road engine).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

/// What a route should avoid (a road engine takes these as strong
/// preferences; the estimate cannot honour them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Avoid {
    pub tolls: bool,
    pub highways: bool,
    pub ferries: bool,
}

impl Avoid {
    fn named(self) -> Vec<&'static str> {
        let mut named = Vec::new();
        if self.tolls {
            named.push("avoid_tolls");
        }
        if self.highways {
            named.push("avoid_highways");
        }
        if self.ferries {
            named.push("avoid_ferries");
        }
        named
    }
}

/// A route request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteQuery {
    pub from: Point,
    pub to: Point,
    pub travel: Travel,
    pub avoid: Avoid,
    pub alternatives: bool,
    pub steps: bool,
}

impl RouteQuery {
    /// A plain driving route, as the assignment tools need.
    pub fn driving(from: Point, to: Point, vehicle: VehicleType) -> Self {
        Self {
            from,
            to,
            travel: Travel::Driving(vehicle),
            avoid: Avoid::default(),
            alternatives: false,
            steps: false,
        }
    }

    fn cache_key(&self) -> String {
        format!("{self:?}")
    }
}

/// The answer to a route request.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteAnswer {
    pub route: Route,
    pub alternatives: Vec<Route>,
    /// Options asked for that this answer does not honour, with why.
    pub not_honoured: Vec<String>,
    /// Why the estimate stands in for the configured road engine.
    pub fallback: Option<String>,
}

/// Why there is no route at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The road engine knows both ends and no road joins them (or one end
    /// is too far from any road).
    #[error("the road engine found no route between these points: {0}")]
    NoRoute(String),
}

/// A geocoded address.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Geocoded {
    pub lat: f64,
    pub lng: f64,
    pub formatted_address: String,
    /// From 0 to 1: 1 for coordinates and saved places, the geocoder's own
    /// ranking otherwise.
    pub confidence: f64,
    pub engine: Engine,
}

/// Why an address has no point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeocodeError {
    #[error(
        "no geocoder is configured on this server: give the point as \"lat,lng\" or the name of a saved place (save_place)"
    )]
    NotConfigured,
    #[error("the geocoder found no place for this address")]
    NotFound,
    #[error(
        "the geocoder did not answer; try again shortly, or give the point as \"lat,lng\" or a saved place"
    )]
    Unavailable,
}

/// A failure talking to an engine, for the log only.
#[derive(Debug, thiserror::Error)]
enum EngineError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    NoRoute(String),
    #[error("no result")]
    NotFound,
}

/// What the operator configured.
#[derive(Debug, Clone)]
pub struct RoutingOptions {
    /// Valhalla's base URL (`http://host:8002`); none: the estimate only.
    pub routing_url: Option<String>,
    /// Nominatim's base URL; none: coordinates and saved places only.
    pub geocoder_url: Option<String>,
    /// The longest an engine call may take, connecting included.
    pub timeout: Duration,
}

impl Default for RoutingOptions {
    fn default() -> Self {
        Self {
            routing_url: None,
            geocoder_url: None,
            timeout: Duration::from_secs(3),
        }
    }
}

/// Answers kept, so repeated questions do not reach the engines.
const CACHE_ENTRIES: u64 = 10_000;
const CACHE_TTL: Duration = Duration::from_secs(600);

/// The engines of one server.
pub struct Routing {
    road: Option<valhalla::Valhalla>,
    geocoder: Option<nominatim::Nominatim>,
    routes: Cache<String, Arc<RouteAnswer>>,
    places: Cache<String, Arc<Geocoded>>,
    timeout: Duration,
}

impl fmt::Debug for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No URL: they may carry credentials.
        f.debug_struct("Routing")
            .field("road_engine", &self.road.is_some())
            .field("geocoder", &self.geocoder.is_some())
            .finish()
    }
}

impl Routing {
    /// Checks the URLs (http:// only: the engines run next to the server).
    pub fn new(options: &RoutingOptions) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("fleetmind/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        let road = match &options.routing_url {
            Some(url) => Some(valhalla::Valhalla::new(
                http.clone(),
                base_url("--routing-url", url)?,
            )),
            None => None,
        };
        let geocoder = match &options.geocoder_url {
            Some(url) => Some(nominatim::Nominatim::new(
                http,
                base_url("--geocoder-url", url)?,
            )),
            None => None,
        };
        Ok(Self::with_engines(road, geocoder, options.timeout))
    }

    /// The estimate only, no network (and so no HTTP client to set up,
    /// nothing that can fail).
    pub fn embedded() -> Self {
        Self::with_engines(None, None, RoutingOptions::default().timeout)
    }

    fn with_engines(
        road: Option<valhalla::Valhalla>,
        geocoder: Option<nominatim::Nominatim>,
        timeout: Duration,
    ) -> Self {
        Self {
            road,
            geocoder,
            timeout,
            routes: Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(CACHE_TTL)
                .build(),
            places: Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(CACHE_TTL)
                .build(),
        }
    }

    /// The longest one engine call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn has_road_engine(&self) -> bool {
        self.road.is_some()
    }

    pub fn has_geocoder(&self) -> bool {
        self.geocoder.is_some()
    }

    /// The route by road when an engine is configured and answers in time,
    /// else the estimate (saying why).
    pub async fn route(&self, query: &RouteQuery) -> Result<RouteAnswer, RouteError> {
        let Some(road) = &self.road else {
            return Ok(estimated(query, None));
        };
        let key = query.cache_key();
        if let Some(hit) = self.routes.get(&key) {
            return Ok((*hit).clone());
        }
        match road.route(query).await {
            Ok(answer) => {
                self.routes.insert(key, Arc::new(answer.clone()));
                Ok(answer)
            }
            Err(EngineError::NoRoute(why)) => Err(RouteError::NoRoute(why)),
            Err(err) => {
                tracing::warn!(error = %err, "road engine failed; answering with the estimate");
                Ok(estimated(
                    query,
                    Some("the road engine did not answer in time; this is the estimate".into()),
                ))
            }
        }
    }

    /// The point of an address through the geocoder (coordinates and saved
    /// places are the caller's to try first).
    pub async fn geocode(&self, address: &str) -> Result<Geocoded, GeocodeError> {
        let Some(geocoder) = &self.geocoder else {
            return Err(GeocodeError::NotConfigured);
        };
        let key = address.trim().to_lowercase();
        if let Some(hit) = self.places.get(&key) {
            return Ok((*hit).clone());
        }
        match geocoder.search(address.trim()).await {
            Ok(found) => {
                self.places.insert(key, Arc::new(found.clone()));
                Ok(found)
            }
            Err(EngineError::NotFound) => Err(GeocodeError::NotFound),
            Err(err) => {
                tracing::warn!(error = %err, "geocoder failed");
                Err(GeocodeError::Unavailable)
            }
        }
    }
}

/// The estimate for `query`, with what it cannot honour.
fn estimated(query: &RouteQuery, fallback: Option<String>) -> RouteAnswer {
    let mut not_honoured: Vec<String> = query
        .avoid
        .named()
        .into_iter()
        .map(|option| format!("{option}: the estimate knows no roads"))
        .collect();
    if query.alternatives {
        not_honoured.push("alternatives: the estimate knows no roads".into());
    }
    if query.steps {
        not_honoured.push("include_steps: the estimate knows no roads".into());
    }
    RouteAnswer {
        route: estimate::route(query.from, query.to, query.travel),
        alternatives: Vec::new(),
        not_honoured,
        fallback,
    }
}

/// `base` (which may have a path, e.g. behind a proxy) with `name` after it.
fn endpoint(base: &reqwest::Url, name: &str) -> reqwest::Url {
    let mut url = base.clone();
    url.set_path(&format!("{}/{name}", base.path().trim_end_matches('/')));
    url
}

/// A configured base URL.
fn base_url(flag: &str, url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| format!("{flag}: not a URL (e.g. http://127.0.0.1:8002)"))?;
    if parsed.scheme() != "http" || parsed.host().is_none() {
        return Err(format!(
            "{flag}: must be an http:// URL of an engine next to the server"
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_go_after_the_base_path() {
        for (base, want) in [
            ("http://127.0.0.1:8002", "http://127.0.0.1:8002/route"),
            ("http://127.0.0.1:8002/", "http://127.0.0.1:8002/route"),
            ("http://h/valhalla/", "http://h/valhalla/route"),
            ("http://h/valhalla", "http://h/valhalla/route"),
        ] {
            let base = base_url("--routing-url", base).unwrap();
            assert_eq!(endpoint(&base, "route").as_str(), want);
        }
        for bad in ["https://h", "h:8002", "ftp://h", "http://"] {
            assert!(base_url("--routing-url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn points_are_read_and_checked() {
        assert_eq!(
            Point::parse(" 52.5 , 13.4"),
            Some(Ok(Point::new(52.5, 13.4)))
        );
        assert!(Point::parse("91,0").unwrap().is_err());
        assert_eq!(Point::parse("Main Street"), None);
        assert_eq!(Point::parse("1,2,3"), None);
    }
}

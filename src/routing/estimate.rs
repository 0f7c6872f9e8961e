//! The embedded estimator: no network, always answers. Every distance and
//! time the server estimates without a road engine comes from here.

use super::{Engine, Point, Route, Travel};
use crate::fleet::rules;

/// Roads are longer than the straight line between their ends. 1.3 is the
/// usual circuity of urban road networks (studies of US and European cities
/// find 1.2 to 1.4); one number for every place, so it is an estimate, and
/// every answer built on it says `estimated: true`.
pub const DETOUR_FACTOR: f64 = 1.3;

/// Great-circle distance in kilometres (the fleet's own, used for the
/// driver choice, so that both estimates agree).
pub fn haversine_km(a: Point, b: Point) -> f64 {
    rules::haversine_km(a.lat, a.lng, b.lat, b.lng)
}

/// The estimated route: straight line × [`DETOUR_FACTOR`], at
/// the speed of [`Travel::speed_kmh`].
pub fn route(from: Point, to: Point, travel: Travel) -> Route {
    let km = haversine_km(from, to) * DETOUR_FACTOR;
    let speed = travel.speed_kmh();
    let duration_seconds = (km / speed * 3600.0).round() as i64;
    Route {
        distance_meters: (km * 1000.0).round(),
        duration_seconds,
        summary: format!(
            "estimate: {km:.1} km (straight line × {DETOUR_FACTOR}), about {} min by {travel} at {speed} km/h",
            (duration_seconds + 59) / 60,
        ),
        engine: Engine::Estimate,
        estimated: true,
        steps: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::types::VehicleType;

    #[test]
    fn paris_to_london_is_about_344_km_straight() {
        let km = haversine_km(Point::new(48.8566, 2.3522), Point::new(51.5074, -0.1278));
        assert!((km - 343.5).abs() < 1.0, "{km}");
        let here = Point::new(10.0, 10.0);
        assert_eq!(haversine_km(here, here), 0.0);
    }

    #[test]
    fn the_estimate_is_the_straight_line_times_the_detour_factor() {
        let (a, b) = (Point::new(52.5, 13.4), Point::new(52.51, 13.4));
        let r = route(a, b, Travel::Driving(VehicleType::Car));
        let straight_m = haversine_km(a, b) * 1000.0;
        assert!((r.distance_meters - straight_m * DETOUR_FACTOR).abs() <= 1.0);
        // 1.446 km at 45 km/h: 116 s.
        assert_eq!(
            r.duration_seconds,
            (r.distance_meters / 1000.0 / 45.0 * 3600.0).round() as i64
        );
        assert!(r.estimated);
        assert_eq!(r.engine, Engine::Estimate);
    }
}

//! Nominatim's `/search` API (format jsonv2): the first match of a
//! free-text address.
//!
//! Checked against a real Nominatim 5.3 (tests/it/geocoder.rs): a house
//! comes back with an `importance` of about 0.00001 (importance is how
//! prominent a place is, from Wikipedia links, not how well it matched), so
//! the confidence is taken from how precise the match is (`place_rank`: 30
//! a house, 26 a street, 18 a town, 16 a city, 4 a country).

use super::{Engine, EngineError, Geocoded};
use serde::Deserialize;

pub(super) struct Nominatim {
    http: reqwest::Client,
    search_url: reqwest::Url,
}

impl Nominatim {
    pub(super) fn new(http: reqwest::Client, base: reqwest::Url) -> Self {
        Self {
            http,
            search_url: super::endpoint(&base, "search"),
        }
    }

    pub(super) async fn search(&self, address: &str) -> Result<Geocoded, EngineError> {
        let mut url = self.search_url.clone();
        url.query_pairs_mut()
            .append_pair("q", address)
            .append_pair("format", "jsonv2")
            .append_pair("limit", "1");
        let unavailable =
            |e: reqwest::Error| EngineError::Unavailable(format!("nominatim: {}", e.without_url()));
        let response = self.http.get(url).send().await.map_err(unavailable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(EngineError::Unavailable(format!(
                "nominatim answered {status}"
            )));
        }
        let bytes = response.bytes().await.map_err(unavailable)?;
        let found: Vec<Found> = serde_json::from_slice(&bytes)
            .map_err(|e| EngineError::Unavailable(format!("nominatim's answer: {e}")))?;
        let first = found.into_iter().next().ok_or(EngineError::NotFound)?;
        let (lat, lng) = match (first.lat.parse::<f64>(), first.lon.parse::<f64>()) {
            (Ok(lat), Ok(lng)) => (lat, lng),
            _ => {
                return Err(EngineError::Unavailable(
                    "nominatim: a point that is not numbers".into(),
                ));
            }
        };
        Ok(Geocoded {
            lat,
            lng,
            formatted_address: first.display_name,
            confidence: confidence(first.place_rank),
            engine: Engine::Nominatim,
        })
    }
}

/// How sure the answer is to be the door asked for, by how precise the
/// place found is: a query with a house number that Nominatim does not know
/// comes back as the street, a town's name as the town.
fn confidence(place_rank: Option<u8>) -> f64 {
    match place_rank {
        Some(28..) => 0.9,
        Some(26..=27) => 0.7,
        Some(17..=25) => 0.5,
        Some(13..=16) => 0.4,
        Some(_) => 0.2,
        None => 0.5,
    }
}

/// Nominatim sends coordinates as strings.
#[derive(Deserialize)]
struct Found {
    lat: String,
    lon: String,
    display_name: String,
    /// 0 to 30: continent, country, ..., town, ..., street, house.
    place_rank: Option<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a real answer (Nominatim 5.3.3, the test network's house).
    #[test]
    fn a_house_is_found_with_high_confidence() {
        let answer = r#"[{"place_id":100004,"licence":"Data © OpenStreetMap contributors, ODbL 1.0. http://osm.org/copyright","osm_type":"node","osm_id":11,"lat":"52.5051000","lon":"13.4040000","category":"place","type":"house","place_rank":30,"importance":9.99999999995449e-06,"addresstype":"place","name":"","display_name":"12, Second Street, Testville, 10999, Deutschland","boundingbox":["52.5050500","52.5051500","13.4039500","13.4040500"]}]"#;
        let found: Vec<Found> = serde_json::from_str(answer).unwrap();
        assert_eq!(found[0].lat, "52.5051000");
        assert_eq!(confidence(found[0].place_rank), 0.9);
        assert!(confidence(Some(26)) < confidence(Some(30)));
        assert!(confidence(Some(18)) < confidence(Some(26)));
        assert!(confidence(Some(16)) < confidence(Some(18)));
        assert!(confidence(Some(4)) < confidence(Some(16)));
    }
}

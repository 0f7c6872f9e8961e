//! Nominatim's `/search` API (format jsonv2): the first match of a
//! free-text address.

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
            confidence: first.importance.unwrap_or(0.5).clamp(0.0, 1.0),
            engine: Engine::Nominatim,
        })
    }
}

/// Nominatim sends coordinates as strings.
#[derive(Deserialize)]
struct Found {
    lat: String,
    lon: String,
    display_name: String,
    importance: Option<f64>,
}

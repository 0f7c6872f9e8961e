//! `orders://all` and `drivers://all`: the caller's own orders and drivers
//! as JSON, for clients that read resources rather than call tools.

use crate::auth::Caller;
use crate::fleet::*;
use crate::mcp::error::ToolError;
use crate::mcp::policy::{self, Denied};
use crate::mcp::{FleetMind, truncate};
use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents};
use serde_json::json;

/// Most rows a resource shows (newest first); the tools page through more.
const MAX_ROWS: i64 = 1000;

fn describe(uri: &str) -> Option<Resource> {
    Some(match uri {
        "orders://all" => Resource::new(uri, "orders")
            .with_title("All orders")
            .with_description("Your orders, newest first (at most 1000), as JSON.")
            .with_mime_type("application/json"),
        "drivers://all" => Resource::new(uri, "drivers")
            .with_title("All drivers")
            .with_description("Your drivers, newest first (at most 1000), as JSON.")
            .with_mime_type("application/json"),
        _ => return None,
    })
}

/// The error for a URI that names no resource.
fn not_found(uri: &str) -> ErrorData {
    ErrorData::resource_not_found(format!("no resource '{}'", truncate(uri)), None)
}

impl FleetMind {
    /// The resources this caller's key may read.
    pub(crate) fn fleet_resources(&self, caller: &Caller) -> Vec<Resource> {
        policy::RESOURCE_ACCESS
            .iter()
            .filter(|(uri, _)| policy::check_resource(caller, uri).is_ok())
            .filter_map(|(uri, _)| describe(uri))
            .collect()
    }

    pub(crate) async fn read_fleet_resource(
        &self,
        caller: &Caller,
        uri: &str,
    ) -> Result<ReadResourceResult, ErrorData> {
        match policy::check_resource(caller, uri) {
            Ok(()) => {}
            Err(Denied::UnknownTool) => return Err(not_found(uri)),
            Err(Denied::MissingScope(scope)) => {
                return Err(ErrorData::invalid_request(
                    format!(
                        "permission denied: reading {uri} needs the '{scope}' scope, which this API key does not have"
                    ),
                    None,
                ));
            }
        }
        let user = &caller.user_id;
        let body = match uri {
            "orders://all" => {
                let query = OrderQuery {
                    filter: OrderFilter::default(),
                    sort: OrderSort::CreatedAt,
                    descending: true,
                    limit: MAX_ROWS,
                    offset: 0,
                };
                let orders = self
                    .db
                    .orders(user, &query)
                    .await
                    .map_err(ToolError::resource)?;
                json!({ "count": orders.len(), "orders": orders })
            }
            "drivers://all" => {
                let query = DriverQuery {
                    filter: DriverFilter::default(),
                    sort: DriverSort::CreatedAt,
                    descending: true,
                    limit: MAX_ROWS,
                    offset: 0,
                };
                let drivers = self
                    .db
                    .drivers(user, &query)
                    .await
                    .map_err(ToolError::resource)?;
                json!({ "count": drivers.len(), "drivers": drivers })
            }
            _ => return Err(not_found(uri)),
        };
        let text = serde_json::to_string(&body)
            .map_err(|_| ErrorData::internal_error("the resource could not be written", None))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri).with_mime_type("application/json"),
        ]))
    }
}

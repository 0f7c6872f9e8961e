//! The fleet tools (orders, drivers, assignments) and the `orders://all`
//! and `drivers://all` resources. Every call acts for the verified caller's
//! tenant only; the scope each tool needs is in `policy.rs`.

mod assignments;
mod drivers;
mod input;
mod orders;
pub(super) mod resources;

use super::truncate;
use crate::fleet::FleetError;
use crate::store::StoreError;
use rmcp::ErrorData;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};

/// Why a fleet tool did nothing.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The request cannot be done as asked (a wrong field, a missing row, a
    /// refused transition); the text says why. A tool error, so the
    /// assistant can read it and correct itself.
    Refused(String),
    /// The database failed; a protocol error without internal details.
    Unavailable,
}

impl Failure {
    /// Turns a store error into what the caller sees, naming the ids the
    /// call was about when a row is not found. Another tenant's row reads
    /// exactly like a row that does not exist.
    pub(crate) fn store(err: StoreError, ids: &[(&str, &str)]) -> Self {
        match err {
            StoreError::NotFound(kind) => {
                let id = ids
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .map(|(_, id)| truncate(id));
                Failure::Refused(match id {
                    Some(id) => format!("{kind} '{id}' not found"),
                    None => format!("{kind} not found"),
                })
            }
            StoreError::Fleet(refused) => Failure::from(refused),
            StoreError::Conflict(message) => Failure::Refused(message),
            other => Failure::unavailable(&other, "fleet tool"),
        }
    }

    /// Logs a failed store call with its cause (for the operator only);
    /// the caller learns nothing of it.
    fn unavailable(err: &StoreError, during: &str) -> Self {
        tracing::error!(
            error = %err,
            cause = ?std::error::Error::source(err).map(ToString::to_string),
            "{during}: store failed"
        );
        Failure::Unavailable
    }

    /// The protocol error of a resource read whose store call failed: a
    /// resource has no arguments to get wrong, so every store error is
    /// [`Failure::Unavailable`] there.
    pub(crate) fn resource(err: StoreError) -> ErrorData {
        Failure::unavailable(&err, "fleet resource");
        database_unavailable()
    }
}

/// What the caller sees of [`Failure::Unavailable`]: no internal details.
/// A tool's answer travels in a JSON-RPC body (HTTP 200), so the "retry"
/// that a 503 says with `Retry-After` is said in `data`, with the same
/// machine code as the HTTP refusals (`unavailable`).
fn database_unavailable() -> ErrorData {
    ErrorData::internal_error(
        "the database is unavailable; try again shortly",
        Some(unavailable_data()),
    )
}

/// `error.data` of an answer the store could not give: retry in 5 s, like
/// the key check's 503.
pub(crate) fn unavailable_data() -> serde_json::Value {
    serde_json::json!({"error": "unavailable", "retry_after_secs": 5})
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::store(err, &[])
    }
}

impl From<FleetError> for Failure {
    fn from(refused: FleetError) -> Self {
        Failure::Refused(refused.to_string())
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Refused(message)
    }
}

impl IntoCallToolResult for Failure {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        match self {
            Failure::Refused(message) => {
                Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into())
            }
            Failure::Unavailable => Err(database_unavailable()),
        }
    }
}

/// How many rows there are, per status.
#[derive(Debug, serde::Serialize, rmcp::schemars::JsonSchema)]
pub struct Counted {
    pub success: bool,
    pub total: i64,
    /// Count per status (statuses with no rows are left out).
    pub by_status: std::collections::BTreeMap<String, i64>,
}

impl From<crate::fleet::StatusCounts> for Counted {
    fn from(counts: crate::fleet::StatusCounts) -> Self {
        Counted {
            success: true,
            total: counts.total,
            by_status: counts.by_status.into_iter().collect(),
        }
    }
}

/// What a delete removed.
#[derive(Debug, serde::Serialize, rmcp::schemars::JsonSchema)]
pub struct Deleted {
    pub success: bool,
    /// How many rows were deleted.
    pub deleted: u64,
    pub message: String,
}

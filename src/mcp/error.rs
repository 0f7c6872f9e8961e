//! Why a tool did nothing: the one error type of every tool (fleet, admin,
//! whoami), mapped to what the caller sees in one place
//! ([`IntoCallToolResult`]). Following rmcp's rule, a call that ran and was
//! refused is a tool result with `isError` (the assistant reads the text and
//! corrects itself); a call the server could not serve is a protocol error.

use super::truncate;
use crate::fleet::FleetError;
use crate::key_admin::KeyAdminError;
use crate::store::StoreError;
use rmcp::ErrorData;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};

/// Why a tool did nothing.
#[derive(Debug)]
pub(crate) enum ToolError {
    /// The request cannot be done as asked (a wrong field, a missing row, a
    /// refused transition); the text says why.
    Refused(String),
    /// A store failed; the caller learns which one, never the cause (that
    /// is logged for the operator where the error is made).
    Unavailable(Unavailable),
}

/// Which store a tool could not reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// The fleet tables (orders, drivers, assignments).
    Database,
    /// The API keys, for the admin tools: they say that nothing was changed.
    KeyStore,
}

impl ToolError {
    /// Turns a fleet store error into what the caller sees, naming the ids
    /// the call was about when a row is not found. Another tenant's row
    /// reads exactly like a row that does not exist.
    pub(crate) fn store(err: StoreError, ids: &[(&str, &str)]) -> Self {
        match err {
            StoreError::NotFound(kind) => {
                let id = ids
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .map(|(_, id)| truncate(id));
                ToolError::Refused(match id {
                    Some(id) => format!("{kind} '{id}' not found"),
                    None => format!("{kind} not found"),
                })
            }
            StoreError::Fleet(refused) => ToolError::from(refused),
            StoreError::Conflict(message) => ToolError::Refused(message),
            other => {
                logged(&other, "fleet tool: store failed");
                ToolError::Unavailable(Unavailable::Database)
            }
        }
    }

    /// A failed key store call of an admin tool: every store error is the
    /// server's (the admin tools check their input before they write).
    pub(crate) fn key_store(err: StoreError) -> Self {
        logged(&err, "admin tool: key store failed");
        ToolError::Unavailable(Unavailable::KeyStore)
    }

    /// The protocol error of a resource read whose store call failed: a
    /// resource has no arguments to get wrong, so every store error is the
    /// server's there.
    pub(crate) fn resource(err: StoreError) -> ErrorData {
        logged(&err, "fleet resource: store failed");
        Unavailable::Database.into_error()
    }
}

/// Logs a failed store call with its cause, for the operator only.
fn logged(err: &StoreError, what: &str) {
    tracing::error!(
        error = %err,
        cause = ?std::error::Error::source(err).map(ToString::to_string),
        "{what}"
    );
}

impl Unavailable {
    /// What the caller sees: no internal details. A tool's answer travels
    /// in a JSON-RPC body (HTTP 200), so the "retry" that a 503 says with
    /// `Retry-After` is said in `data`, with the same machine code as the
    /// HTTP refusals (`unavailable`): retry in 5 s, like the key check's 503.
    fn into_error(self) -> ErrorData {
        let message = match self {
            Unavailable::Database => "the database is unavailable; try again shortly",
            Unavailable::KeyStore => {
                "the key store is unavailable; nothing was changed, try again shortly"
            }
        };
        ErrorData::internal_error(
            message,
            Some(serde_json::json!({"error": "unavailable", "retry_after_secs": 5})),
        )
    }
}

impl From<StoreError> for ToolError {
    fn from(err: StoreError) -> Self {
        ToolError::store(err, &[])
    }
}

impl From<FleetError> for ToolError {
    fn from(refused: FleetError) -> Self {
        ToolError::Refused(refused.to_string())
    }
}

impl From<String> for ToolError {
    fn from(message: String) -> Self {
        ToolError::Refused(message)
    }
}

impl From<KeyAdminError> for ToolError {
    fn from(err: KeyAdminError) -> Self {
        match err {
            KeyAdminError::Invalid(message) => ToolError::Refused(message),
            KeyAdminError::Escalation(names) => ToolError::Refused(format!(
                "scopes: cannot grant {names}: a key can only grant scopes its issuer holds"
            )),
            KeyAdminError::Store(err) => ToolError::key_store(err),
            KeyAdminError::KeyGen(err) => {
                tracing::error!(error = %err, "admin tool: key generation failed");
                ToolError::Unavailable(Unavailable::KeyStore)
            }
        }
    }
}

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        match self {
            ToolError::Refused(message) => {
                Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into())
            }
            ToolError::Unavailable(store) => Err(store.into_error()),
        }
    }
}

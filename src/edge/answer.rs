//! The one shape of every refusal the HTTP edge and the auth layer make: a
//! JSON-RPC error, because that is what every MCP client shows to a person
//! (the Python SDK replaces any other non-2xx body with "Server returned an
//! error response"; the TypeScript SDK prints the body as it is).

use axum::body::Body;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use serde_json::Value;

/// JSON-RPC: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: JSON, but not a request this server takes (a batch, a bare value).
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: a known method with parameters of the wrong shape.
pub const INVALID_PARAMS: i64 = -32602;
/// Implementation-defined server error: the request took too long.
pub const TIMED_OUT: i64 = -32000;
/// Implementation-defined server error: refused before any work (key, Host,
/// Origin); the HTTP status carries the meaning.
pub const REFUSED: i64 = -32001;

/// A JSON-RPC error answer with `status`. `id` is the request's id when it
/// could be read, else `null`; `data` is left out when it is `null`.
pub fn json_rpc_error(
    status: StatusCode,
    id: Value,
    code: i64,
    message: &str,
    data: Value,
) -> Response<Body> {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if !data.is_null() {
        error["data"] = data;
    }
    let body = serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": error });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

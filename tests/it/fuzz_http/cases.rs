//! What the fuzz generates: the parts of a request, and the values it
//! draws from.

use serde_json::Value;

pub const GOOD_ACCEPT: &str = "application/json, text/event-stream";
// What is generated.

#[derive(Debug, Clone)]
pub enum Key {
    None,
    /// Tenant A's key (the fuzzing tenant).
    Good,
    Malformed(String),
    Unknown,
    Revoked,
    Expired,
    /// A good key in the header and another one in the query.
    Conflicting,
    /// An `Authorization` header too large for any server to take.
    Huge(usize),
}

#[derive(Debug, Clone, Copy)]
pub enum Place {
    Header,
    Query,
    /// The same key in both places.
    Both,
    /// `bearer` in lower case.
    LowerScheme,
}

#[derive(Debug, Clone)]
pub enum Host {
    /// 127.0.0.1:port
    Loopback,
    Localhost,
    /// A host the server must refuse.
    Foreign(String),
    /// The request line names a foreign host (absolute form), `Host` is fine.
    AbsoluteForeign(String),
    /// The request line names the server itself (absolute form).
    AbsoluteSelf,
    Missing,
    /// Odd values whose answer is only required not to be a server error.
    Odd(String),
}

#[derive(Debug, Clone)]
pub enum Path {
    Mcp,
    /// `/mcp` with extra query parameters.
    McpQuery(String),
    Other(String),
    Healthz,
}

#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    /// A well-formed JSON-RPC message.
    Message(Message),
    /// Bytes that are not JSON.
    Malformed(Vec<u8>),
    /// A proper prefix of a JSON object.
    Truncated(String),
    Batch(Vec<Value>),
    /// `params.arguments` nested this deep.
    Nested(usize),
}

#[derive(Debug, Clone)]
pub enum Message {
    /// `tools/call` of a known tool with fuzzed arguments.
    Tool {
        name: String,
        arguments: Value,
    },
    /// `create_order` with a date outside every year a server can accept.
    FarDate {
        field: &'static str,
        value: String,
    },
    UnknownTool(String),
    UnknownMethod(String),
    /// `tools/call` whose `arguments` is not an object.
    ArgumentsNotObject(Value),
    /// `tools/call` whose `params` is not an object.
    ParamsWrong(Value),
    Plain(&'static str),
    /// A notification (no id).
    Notification,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub method: String,
    pub path: Path,
    pub host: Host,
    pub key: Key,
    pub place: Place,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub protocol_version: Option<String>,
    pub body: Body,
    /// Announce more body than is sent, then shut the write side.
    pub short_body: bool,
}

impl Case {
    /// A request whose every part but `key`/`body` is what a client sends.
    pub fn well_formed(key: Key, body: Body) -> Self {
        Case {
            method: "POST".into(),
            path: Path::Mcp,
            host: Host::Loopback,
            key,
            place: Place::Header,
            content_type: Some("application/json".into()),
            accept: Some(GOOD_ACCEPT.into()),
            protocol_version: Some("2025-11-25".into()),
            body,
            short_body: false,
        }
    }
}

pub const TOOLS: &[&str] = &[
    "whoami",
    "create_order",
    "count_orders",
    "fetch_orders",
    "get_order_details",
    "search_orders",
    "get_incomplete_orders",
    "update_order",
    "delete_order",
    "create_driver",
    "count_drivers",
    "fetch_drivers",
    "get_driver_details",
    "search_drivers",
    "get_available_drivers",
    "update_driver",
    "delete_driver",
    "create_assignment",
    "auto_assign_order",
    "intelligent_assign_order",
    "get_assignment_details",
    "update_assignment",
    "unassign_order",
    "complete_delivery",
    "fail_delivery",
    // Admin tools: the fuzzing key lacks the admin scope.
    "admin_create_api_key",
    "admin_list_api_keys",
    "admin_revoke_api_key",
    "admin_rotate_api_key",
    "admin_key_usage",
    // Usage reports (issue 13).
    "my_usage",
];

/// Argument names the fuzzed calls draw from (the tools' own, and some of
/// other tools'). `delete_all_*` are not fuzzed: they would empty the pool of
/// ids the other cases use, so the run calls them once at the end.
pub const FIELDS: &[&str] = &[
    "since",
    "order_id",
    "driver_id",
    "assignment_id",
    "customer_name",
    "delivery_address",
    "delivery_lat",
    "delivery_lng",
    "expected_delivery_time",
    "time_window_start",
    "time_window_end",
    "actual_arrival",
    "priority",
    "weight_kg",
    "volume_m3",
    "status",
    "limit",
    "offset",
    "sort_by",
    "sort_order",
    "search_term",
    "name",
    "vehicle_type",
    "current_address",
    "current_lat",
    "current_lng",
    "capacity_kg",
    "skills",
    "confirm",
    "failure_reason",
    "notes",
    "email",
    "scopes",
    "key_id",
    "sla_grace_period_minutes",
];

pub const TIME_FIELDS: &[&str] = &[
    "expected_delivery_time",
    "time_window_start",
    "time_window_end",
];

/// Ids of rows that exist: tenant A's and tenant B's (A's key must find
/// B's as "not found").
#[derive(Debug, Clone, Default)]
pub struct Ids {
    pub orders: Vec<String>,
    pub drivers: Vec<String>,
    pub assignments: Vec<String>,
}

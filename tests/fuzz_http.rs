//! A property-based HTTP fuzz of the auth layer and the JSON-RPC envelope,
//! against the real server on 127.0.0.1, on SQLite and on Postgres (issue 9,
//! "A fuzz and soak suite in the project").
//!
//! Requests are written byte for byte on raw TCP (odd methods, targets,
//! `Host` headers, keys in header and query, content types, malformed,
//! truncated, batched and deeply nested bodies, wrong-typed `params` and
//! `arguments`, unknown methods and tools, tool calls with fuzzed arguments:
//! far dates, unicode, control characters, huge numbers and strings). For
//! every one of them:
//!
//! - an answer arrives within [`DEADLINE`] (no hang);
//! - its status is below 500, or 503;
//! - the server panics nowhere (a panic hook counts panics on the server's
//!   threads, caught ones included);
//! - refusals have the shape issue 9 asks for (403 for a foreign `Host` before
//!   any key check, 401 for a missing or bad key, 400/-32700 for malformed
//!   JSON, -32600 for a batch, -32602 naming `arguments`, a tool error naming
//!   the field for a date outside the accepted years);
//! - a refused request writes nothing: every table's rows are hashed through
//!   a connection of the test's own before and after a batch of refusals;
//! - tenant A's key never sees tenant B's rows, and B's rows are untouched
//!   whatever A sends.
//!
//! All violations are collected and reported together with the seed. Rerun
//! one with `FLEETMIND_FUZZ_SEED=<seed>`; `FLEETMIND_FUZZ_CASES=<n>` changes
//! the number of general cases (default 300 per backend).

mod common;

use common::*;
use fleetmind::keys::ApiKey;
use fleetmind::scopes::Scopes;
use fleetmind::store::{NewKey, RevokeTarget};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Longest any one request may take to be answered. Generous for a loaded
/// 2-core machine; a hang (issue 9, finding 1) is unbounded.
const DEADLINE: Duration = Duration::from_secs(10);

const GOOD_ACCEPT: &str = "application/json, text/event-stream";

// ---------------------------------------------------------------------------
// Panics on the server's threads.

/// Every panic in this process: (thread name, message).
fn panics() -> &'static Mutex<Vec<(String, String)>> {
    static PANICS: OnceLock<Mutex<Vec<(String, String)>>> = OnceLock::new();
    PANICS.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or("?").to_owned();
            let message = info.to_string();
            if let Ok(mut list) = panics().lock() {
                list.push((thread, message));
            }
            previous(info);
        }));
        Mutex::new(Vec::new())
    })
}

/// The server of each test runs on a runtime whose threads carry the
/// backend's name, so its panics can be told from the other test's.
fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn fuzz_http_on_sqlite() {
    let _ = panics();
    runtime("fuzz-sqlite").block_on(async {
        fuzz(sqlite_db().await, "fuzz-sqlite").await;
    });
}

#[test]
fn fuzz_http_on_postgres() {
    let _ = panics();
    runtime("fuzz-postgres").block_on(async {
        let Some(t) = pg_db().await else { return };
        fuzz(t, "fuzz-postgres").await;
    });
}

// ---------------------------------------------------------------------------
// What is generated.

#[derive(Debug, Clone)]
enum Key {
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
enum Place {
    Header,
    Query,
    /// The same key in both places.
    Both,
    /// `bearer` in lower case.
    LowerScheme,
}

#[derive(Debug, Clone)]
enum Host {
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
enum Path {
    Mcp,
    /// `/mcp` with extra query parameters.
    McpQuery(String),
    Other(String),
    Healthz,
}

#[derive(Debug, Clone)]
enum Body {
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
enum Message {
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
struct Case {
    method: String,
    path: Path,
    host: Host,
    key: Key,
    place: Place,
    content_type: Option<String>,
    accept: Option<String>,
    protocol_version: Option<String>,
    body: Body,
    /// Announce more body than is sent, then shut the write side.
    short_body: bool,
}

impl Case {
    /// A request whose every part but `key`/`body` is what a client sends.
    fn well_formed(key: Key, body: Body) -> Self {
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

const TOOLS: &[&str] = &[
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
];

/// Tools that change nothing, or change only the fuzzing tenant's rows in
/// ways later cases can live with (`delete_all_*` would empty the pool of
/// ids the other cases use, so they are called once at the end).
const FIELDS: &[&str] = &[
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

const TIME_FIELDS: &[&str] = &[
    "expected_delivery_time",
    "time_window_start",
    "time_window_end",
];

/// Ids of rows that exist: tenant A's and tenant B's (A's key must find
/// B's as "not found").
#[derive(Debug, Clone, Default)]
struct Ids {
    orders: Vec<String>,
    drivers: Vec<String>,
    assignments: Vec<String>,
}

fn fuzz_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 _%-]{0,24}",
        2 => any::<String>().prop_map(|s| s.chars().take(40).collect()),
        // Control characters, bidi overrides, NUL, SQL-looking text.
        2 => prop::sample::select(vec![
            "\u{0}", "\u{1b}[31m", "a\u{202e}b", "\u{2066}x\u{2069}", "\r\n", "' OR 1=1 --",
            "%", "_", "\\", "🚚📦", "\u{feff}", "ORD-", "\"", "null",
        ])
        .prop_map(str::to_owned),
        1 => (1usize..300_000).prop_map(|n| "x".repeat(n)),
    ]
    .boxed()
}

/// Times in every shape: RFC 3339 across the whole range chrono parses,
/// naive forms, nonsense.
fn fuzz_time() -> BoxedStrategy<String> {
    prop_oneof![
        3 => (-262_143i64..=262_142, 1u32..=12, 1u32..=28, 0u32..24, offset())
            .prop_map(|(y, m, d, h, o)| format_year(y, m, d, h, o)),
        3 => (1970i64..=9999, 1u32..=12, 1u32..=28, 0u32..24)
            .prop_map(|(y, m, d, h)| format_year(y, m, d, h, "+14:00")),
        1 => (1970i64..=2100, 1u32..=12, 1u32..=28, 0u32..24)
            .prop_map(|(y, m, d, h)| format!("{y:04}-{m:02}-{d:02}T{h:02}:00:00")),
        1 => prop::sample::select(vec![
            "+262142-12-31T23:59:59", "-262143-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z", "2024-13-45T99:99:99", "", "now", "tomorrow",
            "2024-02-30T00:00:00Z", "0000-01-01T00:00:00Z",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

/// Offsets, none included (a naive time is UTC, and the naive parser takes
/// years chrono's RFC 3339 parser refuses).
fn offset() -> BoxedStrategy<&'static str> {
    prop::sample::select(vec!["Z", "", "+14:00", "-12:00", "+00:00"]).boxed()
}

/// `year` in RFC 3339 (a sign and six digits outside 0..=9999, as chrono
/// writes and reads it).
fn format_year(year: i64, month: u32, day: u32, hour: u32, offset: &str) -> String {
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        format!("{year:+07}")
    };
    format!("{year}-{month:02}-{day:02}T{hour:02}:30:00{offset}")
}

fn fuzz_number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        (-200.0f64..200.0).prop_map(Value::from),
        prop::sample::select(vec![
            json!(0),
            json!(-1),
            json!(1e308),
            json!(-1e308),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(90.000001),
            json!(5e-324),
        ]),
    ]
    .boxed()
}

fn fuzz_value(ids: &Ids) -> BoxedStrategy<Value> {
    let id = any_id(ids);
    let leaf = prop_oneof![
        3 => fuzz_string().prop_map(Value::from),
        2 => fuzz_number(),
        2 => fuzz_time().prop_map(Value::from),
        2 => id.prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

fn any_id(ids: &Ids) -> BoxedStrategy<String> {
    let mut all: Vec<String> = ids
        .orders
        .iter()
        .chain(&ids.drivers)
        .chain(&ids.assignments)
        .cloned()
        .collect();
    all.extend([
        "ORD-000000000000".to_owned(),
        "DRV-zzz".to_owned(),
        String::new(),
    ]);
    prop::sample::select(all).boxed()
}

/// Arguments: a plausible object for the tool with some fields fuzzed, or
/// a random object.
fn fuzz_arguments(ids: &Ids) -> BoxedStrategy<Value> {
    let plausible = (
        prop::sample::subsequence(FIELDS.to_vec(), 0..6),
        prop::collection::vec(fuzz_value(ids), 6),
        any_id(ids),
        any_id(ids),
    )
        .prop_map(|(fields, values, order, driver)| {
            let mut map = serde_json::Map::new();
            map.insert("order_id".into(), order.into());
            map.insert("driver_id".into(), driver.into());
            map.insert("confirm".into(), true.into());
            for (field, value) in fields.into_iter().zip(values) {
                map.insert(field.into(), value);
            }
            Value::Object(map)
        });
    prop_oneof![
        3 => plausible,
        1 => (fuzz_value(ids)).prop_map(|v| match v {
            Value::Object(_) => v,
            other => json!({ "value": other }),
        }),
        1 => create_order_strategy(),
    ]
    .boxed()
}

fn create_order_strategy() -> BoxedStrategy<Value> {
    (
        fuzz_time(),
        fuzz_time(),
        fuzz_string(),
        fuzz_number(),
        any::<bool>(),
    )
        .prop_map(|(expected, window, name, lat, fragile)| {
            json!({
                "customer_name": format!("fuzz {}", name.chars().take(100).collect::<String>()),
                "delivery_address": "1 Fuzz Street",
                "delivery_lat": lat,
                "delivery_lng": 2.35,
                "expected_delivery_time": expected,
                "time_window_start": window,
                "is_fragile": fragile,
            })
        })
        .boxed()
}

/// A date whose year no server can accept (issue 9: 1970..=9999 "or a range
/// you document"; any documented range stays within 1..=9999).
fn far_date() -> BoxedStrategy<(&'static str, String)> {
    (
        prop::sample::select(TIME_FIELDS.to_vec()),
        prop_oneof![(10_000i64..=262_142), (-262_143i64..=0)],
        1u32..=12,
        offset(),
    )
        .prop_map(|(field, year, month, offset)| (field, format_year(year, month, 15, 12, offset)))
        .boxed()
}

fn message(ids: &Ids) -> BoxedStrategy<Message> {
    prop_oneof![
        6 => (prop::sample::select(TOOLS.to_vec()), fuzz_arguments(ids))
            .prop_map(|(name, arguments)| Message::Tool { name: name.into(), arguments }),
        2 => far_date().prop_map(|(field, value)| Message::FarDate { field, value }),
        1 => fuzz_string().prop_map(Message::UnknownTool),
        1 => prop::sample::select(vec![
            "tools/cal", "resources/delete", "admin/shutdown", "", "rpc.discover", "TOOLS/LIST",
            "initialize/", "sampling/createMessage",
        ])
        .prop_map(|m| Message::UnknownMethod(m.into())),
        1 => prop_oneof![
            Just(json!("a string")),
            Just(json!(42)),
            Just(json!([1, 2])),
            Just(json!(true)),
            fuzz_string().prop_map(Value::from),
        ]
        .prop_map(Message::ArgumentsNotObject),
        1 => prop_oneof![
            Just(json!("whoami")),
            Just(json!(7)),
            Just(json!([{"name": "whoami"}])),
            Just(json!({"name": 5})),
            Just(json!({})),
        ]
        .prop_map(Message::ParamsWrong),
        1 => prop::sample::select(vec!["initialize", "tools/list", "ping", "resources/list",
            "prompts/list", "resources/read"])
            .prop_map(Message::Plain),
        1 => Just(Message::Notification),
    ]
    .boxed()
}

fn body(ids: &Ids) -> BoxedStrategy<Body> {
    prop_oneof![
        8 => message(ids).prop_map(Body::Message),
        2 => prop_oneof![
            Just(b"{".to_vec()),
            Just(b"{\"jsonrpc\":\"2.0\",\"id\":1,".to_vec()),
            Just(b"not json".to_vec()),
            Just(b"{'jsonrpc':'2.0'}".to_vec()),
            Just(b"\xff\xfe{}".to_vec()),
            Just(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}}".to_vec()),
            Just(b"\x00\x00\x00".to_vec()),
            prop::collection::vec(any::<u8>(), 1..200)
                .prop_filter("not JSON", |b| serde_json::from_slice::<Value>(b).is_err()),
        ]
        .prop_map(Body::Malformed),
        1 => (1usize..200).prop_map(|cut| {
            let full = tool_call_text("whoami", &json!({"note": "x".repeat(200)}), 9);
            Body::Truncated(full[..cut.min(full.len() - 1)].to_owned())
        }),
        1 => prop::collection::vec(message(ids), 0..4).prop_map(|messages| {
            Body::Batch(messages.iter().enumerate().map(|(i, m)| envelope(m, i as u64 + 1)).collect())
        }),
        1 => (129usize..20_000).prop_map(Body::Nested),
        1 => Just(Body::Empty),
    ]
    .boxed()
}

fn key() -> BoxedStrategy<Key> {
    prop_oneof![
        6 => Just(Key::Good),
        1 => Just(Key::None),
        2 => prop_oneof![
            "[ -~]{0,60}",
            "fm_[A-Za-z0-9_-]{42}[+/.=]",
            "fm_[A-Za-z0-9_-]{0,42}",
            "fm_[A-Za-z0-9_-]{44,80}",
            Just("fm_ünïcödé".to_owned()),
        ]
        .prop_map(Key::Malformed),
        1 => Just(Key::Unknown),
        1 => Just(Key::Revoked),
        1 => Just(Key::Expired),
        1 => Just(Key::Conflicting),
        1 => (20_000usize..120_000).prop_map(Key::Huge),
    ]
    .boxed()
}

fn place() -> BoxedStrategy<Place> {
    prop_oneof![
        4 => Just(Place::Header),
        2 => Just(Place::Query),
        1 => Just(Place::Both),
        1 => Just(Place::LowerScheme),
    ]
    .boxed()
}

fn foreign_host() -> BoxedStrategy<String> {
    prop::sample::select(vec![
        "evil.example",
        "evil.example:80",
        "127.0.0.1.evil.example",
        "localhost.attacker.test:8787",
        "10.0.0.1",
        "attacker.test",
    ])
    .prop_map(str::to_owned)
    .boxed()
}

fn host() -> BoxedStrategy<Host> {
    prop_oneof![
        10 => Just(Host::Loopback),
        2 => Just(Host::Localhost),
        3 => foreign_host().prop_map(Host::Foreign),
        2 => foreign_host().prop_map(Host::AbsoluteForeign),
        1 => Just(Host::AbsoluteSelf),
        1 => Just(Host::Missing),
        1 => prop::sample::select(vec![
            "", "LOCALHOST", "[::1", "localhost:99999", "ünïcödé.test", "a b", "::1",
            "127.0.0.1:0", "localhost.", "[::1]:1",
        ])
        .prop_map(|h| Host::Odd(h.into())),
    ]
    .boxed()
}

fn path() -> BoxedStrategy<Path> {
    prop_oneof![
        12 => Just(Path::Mcp),
        2 => prop::sample::select(vec!["x=1", "api_key", "api_key=", "a=%zz", "&&&", "api_key=fm_x&api_key=fm_y"])
            .prop_map(|q| Path::McpQuery(q.into())),
        1 => Just(Path::Healthz),
        2 => prop::sample::select(vec![
            "/", "/mcp/", "/MCP", "//mcp", "/mcp/../mcp", "/%6dcp", "/mcp%00", "/.well-known/oauth-authorization-server",
            "/register", "/healthz/", "/.env", "/mcp;x",
        ])
        .prop_map(|p| Path::Other(p.into())),
        1 => (1000usize..9000).prop_map(|n| Path::Other(format!("/{}", "a".repeat(n)))),
    ]
    .boxed()
}

fn case(ids: &Ids) -> BoxedStrategy<Case> {
    let method = prop_oneof![
        14 => Just("POST".to_owned()),
        2 => Just("GET".to_owned()),
        1 => prop::sample::select(vec!["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "FOO", "post"])
            .prop_map(str::to_owned),
    ];
    let content_type = prop_oneof![
        10 => Just(Some("application/json".to_owned())),
        2 => Just(Some("application/json; charset=utf-8".to_owned())),
        1 => Just(None),
        1 => prop::sample::select(vec!["text/plain", "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x", "APPLICATION/JSON", "application/jsonx", "*/*"])
            .prop_map(|c| Some(c.to_owned())),
    ];
    let accept = prop_oneof![
        10 => Just(Some(GOOD_ACCEPT.to_owned())),
        1 => Just(None),
        1 => prop::sample::select(vec!["*/*", "text/html", "application/json", "text/event-stream"])
            .prop_map(|a| Some(a.to_owned())),
    ];
    let protocol_version = prop_oneof![
        8 => Just(Some("2025-11-25".to_owned())),
        2 => Just(None),
        1 => prop::sample::select(vec!["1999-01-01", "", "2025-03-26", "latest"])
            .prop_map(|v| Some(v.to_owned())),
    ];
    (
        (method, path(), host(), key(), place()),
        (
            content_type,
            accept,
            protocol_version,
            body(ids),
            prop::bool::weighted(0.03),
        ),
    )
        .prop_map(
            |(
                (method, path, host, key, place),
                (content_type, accept, protocol_version, body, short_body),
            )| Case {
                method,
                path,
                host,
                key,
                place,
                content_type,
                accept,
                protocol_version,
                body,
                short_body,
            },
        )
        .boxed()
}

/// Requests refused by the auth layer or the `Host` check (no good key
/// gets through).
fn refused_at_the_door() -> BoxedStrategy<Case> {
    let ids = Ids::default();
    (
        prop_oneof![
            Just(Key::None),
            "[ -~]{0,60}".prop_map(Key::Malformed),
            Just(Key::Unknown),
            Just(Key::Revoked),
            Just(Key::Expired),
            Just(Key::Conflicting),
        ],
        place(),
        message(&ids),
        prop::bool::weighted(0.3),
        foreign_host(),
    )
        .prop_map(|(key, place, message, foreign, host)| {
            // A foreign Host is refused even with a good key.
            let key = if foreign { Key::Good } else { key };
            let mut case = Case::well_formed(key, Body::Message(message));
            case.place = place;
            if foreign {
                case.host = Host::Foreign(host);
            }
            case
        })
        .boxed()
}

/// Requests with a good key that the envelope or the tool must refuse.
fn refused_with_a_good_key() -> BoxedStrategy<Case> {
    prop_oneof![
        prop_oneof![
            Just(b"{".to_vec()),
            Just(b"not json".to_vec()),
            Just(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"create_order\"".to_vec()),
        ]
        .prop_map(Body::Malformed),
        (1usize..150).prop_map(|cut| {
            let full = tool_call_text("create_order", &valid_order("truncated", "2030-01-01T10:00:00Z"), 3);
            Body::Truncated(full[..cut].to_owned())
        }),
        prop::collection::vec(
            (0u64..3).prop_map(|i| envelope(&Message::Tool {
                name: "create_order".into(),
                arguments: valid_order("batched", "2030-01-01T10:00:00Z")
            }, i + 1)),
            1..3
        )
        .prop_map(Body::Batch),
        (129usize..5000).prop_map(Body::Nested),
        far_date().prop_map(|(field, value)| Body::Message(Message::FarDate { field, value })),
        prop_oneof![Just(json!("x")), Just(json!(1)), Just(json!([valid_order("array", "2030-01-01T10:00:00Z")]))]
            .prop_map(|a| Body::Message(Message::ArgumentsNotObject(a))),
        prop::sample::select(vec!["tools/cal", "orders/create", "admin/shutdown"])
            .prop_map(|m| Body::Message(Message::UnknownMethod(m.into()))),
        "[a-z_]{1,20}".prop_map(|t| Body::Message(Message::UnknownTool(format!("no_such_{t}")))),
        // Tool arguments the tool must refuse: bad coordinates and types.
        prop_oneof![
            Just(json!({"delivery_lat": 91.0})),
            Just(json!({"delivery_lat": 1e308})),
            Just(json!({"delivery_lng": "east"})),
            Just(json!({"weight_kg": -1})),
            Just(json!({"priority": "yesterday"})),
            Just(json!({"customer_name": ""})),
            Just(json!({"unknown_field": 1})),
        ]
        .prop_map(|patch| {
            let mut arguments = valid_order("refused", "2030-01-01T10:00:00Z");
            if let (Value::Object(map), Value::Object(patch)) = (&mut arguments, patch) {
                map.extend(patch);
            }
            Body::Message(Message::Tool { name: "create_order".into(), arguments })
        }),
    ]
    .prop_map(|body| Case::well_formed(Key::Good, body))
    .boxed()
}

// ---------------------------------------------------------------------------
// Writing requests.

fn tool_call_text(name: &str, arguments: &Value, id: u64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
    .to_string()
}

fn envelope(message: &Message, id: u64) -> Value {
    let call = |params: Value| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    match message {
        Message::Tool { name, arguments } => call(json!({"name": name, "arguments": arguments})),
        Message::FarDate { field, value } => {
            let mut arguments = valid_order("far date", "2030-01-01T10:00:00Z");
            arguments[*field] = json!(value);
            call(json!({"name": "create_order", "arguments": arguments}))
        }
        Message::UnknownTool(name) => call(json!({"name": name, "arguments": {}})),
        Message::UnknownMethod(method) => {
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {}})
        }
        Message::ArgumentsNotObject(arguments) => {
            call(json!({"name": "whoami", "arguments": arguments}))
        }
        Message::ParamsWrong(params) => call(params.clone()),
        Message::Plain("initialize") => json!({"jsonrpc": "2.0", "id": id, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "fuzz", "version": "1"}}}),
        Message::Plain("resources/read") => {
            json!({"jsonrpc": "2.0", "id": id, "method": "resources/read",
            "params": {"uri": "orders://all"}})
        }
        Message::Plain(method) => {
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {}})
        }
        Message::Notification => json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    }
}

fn valid_order(name: &str, expected: &str) -> Value {
    json!({
        "customer_name": name,
        "delivery_address": "1 Fuzz Street",
        "delivery_lat": 48.85,
        "delivery_lng": 2.35,
        "expected_delivery_time": expected,
        "weight_kg": 2.0,
    })
}

fn body_bytes(body: &Body, id: u64) -> Vec<u8> {
    match body {
        Body::Empty => Vec::new(),
        Body::Message(message) => envelope(message, id).to_string().into_bytes(),
        Body::Malformed(bytes) => bytes.clone(),
        Body::Truncated(text) => text.clone().into_bytes(),
        Body::Batch(items) => Value::from(items.clone()).to_string().into_bytes(),
        Body::Nested(depth) => {
            let open = "[".repeat(*depth);
            let close = "]".repeat(*depth);
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"whoami","arguments":{{"deep":{open}{close}}}}}}}"#
            )
            .into_bytes()
        }
    }
}

/// The keys a run uses.
struct Keys {
    good: String,
    other: String,
    unknown: String,
    revoked: String,
    expired: String,
}

fn key_text(key: &Key, keys: &Keys) -> Option<String> {
    Some(match key {
        Key::None => return None,
        Key::Good | Key::Conflicting => keys.good.clone(),
        Key::Malformed(text) => text.clone(),
        Key::Unknown => keys.unknown.clone(),
        Key::Revoked => keys.revoked.clone(),
        Key::Expired => keys.expired.clone(),
        Key::Huge(n) => format!("fm_{}", "A".repeat(*n)),
    })
}

/// No CR, LF or other control byte may reach a header line (that would be
/// a different request, not an odd value).
fn header_safe(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

fn percent(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn request_bytes(case: &Case, keys: &Keys, addr: SocketAddr, id: u64) -> Vec<u8> {
    let key = key_text(&case.key, keys);
    let mut query = Vec::new();
    if let Path::McpQuery(extra) = &case.path {
        query.push(extra.clone());
    }
    let mut authorization = None;
    if let Some(key) = &key {
        match case.place {
            Place::Header => authorization = Some(format!("Bearer {}", header_safe(key))),
            Place::LowerScheme => authorization = Some(format!("bearer {}", header_safe(key))),
            Place::Query => query.push(format!("api_key={}", percent(key))),
            Place::Both => {
                authorization = Some(format!("Bearer {}", header_safe(key)));
                query.push(format!("api_key={}", percent(key)));
            }
        }
    }
    if matches!(case.key, Key::Conflicting) {
        authorization = Some(format!("Bearer {}", keys.good));
        query.retain(|q| !q.starts_with("api_key="));
        query.push(format!("api_key={}", keys.other));
    }
    let path = match &case.path {
        Path::Mcp | Path::McpQuery(_) => "/mcp".to_owned(),
        Path::Healthz => "/healthz".to_owned(),
        Path::Other(p) => p.clone(),
    };
    let mut target = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    match &case.host {
        Host::AbsoluteForeign(host) => target = format!("http://{host}{target}"),
        Host::AbsoluteSelf => target = format!("http://{addr}{target}"),
        _ => {}
    }
    let body = body_bytes(&case.body, id);
    let mut head = format!("{} {target} HTTP/1.1\r\n", case.method);
    match &case.host {
        Host::Loopback | Host::AbsoluteForeign(_) | Host::AbsoluteSelf => {
            head.push_str(&format!("Host: {addr}\r\n"))
        }
        Host::Localhost => head.push_str(&format!("Host: localhost:{}\r\n", addr.port())),
        Host::Foreign(host) => head.push_str(&format!("Host: {host}\r\n")),
        Host::Odd(host) => head.push_str(&format!("Host: {}\r\n", header_safe(host))),
        Host::Missing => {}
    }
    if let Some(value) = authorization {
        head.push_str(&format!("Authorization: {value}\r\n"));
    }
    if let Some(value) = &case.content_type {
        head.push_str(&format!("Content-Type: {value}\r\n"));
    }
    if let Some(value) = &case.accept {
        head.push_str(&format!("Accept: {value}\r\n"));
    }
    if let Some(value) = &case.protocol_version {
        head.push_str(&format!("MCP-Protocol-Version: {value}\r\n"));
    }
    let announced = if case.short_body {
        body.len() + 100
    } else {
        body.len()
    };
    head.push_str(&format!(
        "Content-Length: {announced}\r\nConnection: close\r\n\r\n"
    ));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

// ---------------------------------------------------------------------------
// What must hold.

/// Findings of one run, grouped by what was violated.
#[derive(Default)]
struct Findings {
    by_rule: std::collections::BTreeMap<String, (usize, String)>,
}

impl Findings {
    fn add(&mut self, rule: &str, example: impl FnOnce() -> String) {
        let entry = self
            .by_rule
            .entry(rule.to_owned())
            .or_insert_with(|| (0, String::new()));
        if entry.0 == 0 {
            entry.1 = example();
        }
        entry.0 += 1;
    }
}

fn describe(case: &Case, outcome: &RawOutcome) -> String {
    let mut case = format!("{case:?}");
    if case.len() > 600 {
        case = format!("{}…", case.chars().take(600).collect::<String>());
    }
    let answer = match outcome {
        RawOutcome::Answered(a) => {
            let text = a.text();
            format!(
                "HTTP {} {}",
                a.status,
                text.chars().take(400).collect::<String>()
            )
        }
        RawOutcome::Closed(why) => format!("closed: {why}"),
        RawOutcome::TimedOut => "no answer".to_owned(),
    };
    format!("{case}\n      -> {answer}")
}

fn is_mcp(path: &Path) -> bool {
    matches!(path, Path::Mcp | Path::McpQuery(_))
}

fn json_rpc_error(answer: &RawAnswer) -> Option<(i64, String)> {
    let body = answer.json()?;
    let error = body.get("error")?;
    Some((
        error.get("code")?.as_i64()?,
        error.get("message")?.as_str()?.to_owned(),
    ))
}

/// The tool result of an answer: (text of the whole result, isError).
fn tool_result(answer: &RawAnswer) -> Option<(String, bool)> {
    let body = answer.json()?;
    let result = body.get("result")?;
    Some((
        result.to_string(),
        result.get("isError").and_then(Value::as_bool) == Some(true),
    ))
}

/// Checks one answer against what issue 9 asks for.
fn check(case: &Case, outcome: &RawOutcome, markers: &Markers, findings: &mut Findings) {
    let answer = match outcome {
        RawOutcome::Answered(answer) => answer,
        RawOutcome::TimedOut => {
            return findings.add("no answer within the deadline (hang)", || {
                describe(case, outcome)
            });
        }
        RawOutcome::Closed(_) => {
            // Only a client that stopped sending mid-body may be hung up on;
            // a huge header may be answered and reset before it is read.
            if !case.short_body && !matches!(case.key, Key::Huge(_)) {
                findings.add("connection closed without an answer", || {
                    describe(case, outcome)
                });
            }
            return;
        }
    };
    let status = answer.status;
    if status >= 500 && status != 503 {
        findings.add("5xx other than 503", || describe(case, outcome));
    }
    let text = answer.text();
    if text.contains(&markers.other) {
        findings.add("tenant A's key saw tenant B's rows", || {
            describe(case, outcome)
        });
    }
    if text.contains("panicked") || text.contains("overflow") {
        findings.add("internal text in an answer", || describe(case, outcome));
    }
    if !is_mcp(&case.path) {
        if matches!(case.path, Path::Healthz)
            && case.method == "GET"
            && matches!(case.host, Host::Loopback)
            && status != 200
        {
            findings.add("/healthz not 200 with the database up", || {
                describe(case, outcome)
            });
        }
        return;
    }
    // /mcp: the Host check comes first, whatever the key.
    let foreign = match &case.host {
        Host::Foreign(h) | Host::AbsoluteForeign(h) => Some(h.split(':').next().unwrap_or(h)),
        _ => None,
    };
    if let Some(host) = foreign {
        let named = json_rpc_error(answer).is_some_and(|(_, m)| {
            m.contains(host)
                && (m.contains("allowed-hosts") || m.contains("FLEETMIND_ALLOWED_HOSTS"))
        });
        if status != 403 || !named {
            findings.add(
                "foreign Host not refused first with 403 and a JSON-RPC error naming the host and --allowed-hosts",
                || describe(case, outcome),
            );
        }
        return;
    }
    if !matches!(
        case.host,
        Host::Loopback | Host::Localhost | Host::AbsoluteSelf
    ) {
        return;
    }
    let refusal = |code: &str| {
        answer
            .json()
            .is_some_and(|b| b["jsonrpc"] == "2.0" && b["error"]["data"]["error"] == code)
    };
    match &case.key {
        Key::None => {
            // `?api_key` with an empty or malformed value is a bad key, not
            // a missing one.
            let in_query = matches!(case.path, Path::McpQuery(ref q) if q.contains("api_key"));
            let code = if in_query {
                "invalid_api_key"
            } else {
                "missing_api_key"
            };
            if status != 401 || !refusal(code) {
                findings.add("no key: not 401 missing_api_key", || {
                    describe(case, outcome)
                });
            }
            return;
        }
        Key::Malformed(_) | Key::Revoked | Key::Expired | Key::Conflicting => {
            if status != 401 || !refusal("invalid_api_key") {
                findings.add("bad key: not 401 invalid_api_key", || {
                    describe(case, outcome)
                });
            }
            return;
        }
        Key::Unknown => {
            if !(status == 401 && refusal("invalid_api_key") || status == 429) {
                findings.add("unknown key: not 401 (or 429)", || describe(case, outcome));
            }
            return;
        }
        Key::Huge(_) => {
            if !(400..500).contains(&status) {
                findings.add("huge Authorization header: not a 4xx", || {
                    describe(case, outcome)
                });
            }
            return;
        }
        Key::Good => {}
    }
    if matches!(case.path, Path::McpQuery(ref q) if q.contains("api_key")) {
        // A second api_key in the query: refused or used, never a 5xx.
        return;
    }
    if status == 401 || status == 429 {
        findings.add("good key refused", || describe(case, outcome));
        return;
    }
    if case.method == "GET" {
        if status != 405 {
            findings.add("keyed GET /mcp not 405", || describe(case, outcome));
        }
        return;
    }
    let envelope_ok = case.method == "POST"
        && case
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json"))
        && case.accept.as_deref() == Some(GOOD_ACCEPT)
        && case
            .protocol_version
            .as_deref()
            .is_none_or(|v| v == "2025-11-25")
        && !case.short_body;
    if !envelope_ok {
        return;
    }
    let error = json_rpc_error(answer);
    match &case.body {
        Body::Malformed(_) | Body::Truncated(_) => {
            if status != 400 || error.as_ref().map(|e| e.0) != Some(-32700) {
                findings.add("malformed JSON: not HTTP 400 with JSON-RPC -32700", || {
                    describe(case, outcome)
                });
            }
        }
        Body::Nested(_) => {
            if status != 400 || !matches!(error.as_ref().map(|e| e.0), Some(-32700 | -32600)) {
                findings.add(
                    "deeply nested JSON: not HTTP 400 with JSON-RPC -32700/-32600",
                    || describe(case, outcome),
                );
            }
        }
        Body::Batch(_) => {
            let said = error.as_ref().is_some_and(|(code, message)| {
                *code == -32600 && message.to_ascii_lowercase().contains("batch")
            });
            if !said {
                findings.add(
                    "batch: not JSON-RPC -32600 saying batches are not supported",
                    || describe(case, outcome),
                );
            }
        }
        Body::Empty => {
            if !(400..500).contains(&status) {
                findings.add("empty body: not a 4xx", || describe(case, outcome));
            }
        }
        Body::Message(message) => check_message(case, message, answer, error, findings, outcome),
    }
}

fn check_message(
    case: &Case,
    message: &Message,
    answer: &RawAnswer,
    error: Option<(i64, String)>,
    findings: &mut Findings,
    outcome: &RawOutcome,
) {
    let result = tool_result(answer);
    match message {
        Message::ArgumentsNotObject(_) => {
            let said = error
                .as_ref()
                .is_some_and(|(code, message)| *code == -32602 && message.contains("arguments"));
            if !said {
                findings.add(
                    "arguments not an object: not -32602 naming arguments",
                    || describe(case, outcome),
                );
            }
        }
        Message::UnknownMethod(_) => {
            if error.as_ref().map(|e| e.0) != Some(-32601) {
                findings.add("unknown method: not -32601", || describe(case, outcome));
            }
        }
        Message::UnknownTool(_) => {
            let refused = error.is_some() || result.as_ref().is_some_and(|r| r.1);
            if !refused {
                findings.add("unknown tool: not refused as JSON-RPC", || {
                    describe(case, outcome)
                });
            }
        }
        Message::ParamsWrong(_) => {
            // Valid JSON that is not a valid request: a JSON-RPC error like
            // every other refusal, not a text body.
            if error.is_none() && !result.as_ref().is_some_and(|r| r.1) {
                findings.add("wrong-typed params: not a JSON-RPC error", || {
                    describe(case, outcome)
                });
            }
        }
        Message::FarDate { field, .. } => {
            let named = result
                .as_ref()
                .is_some_and(|(text, is_error)| *is_error && text.contains(field))
                || error.as_ref().is_some_and(|(_, m)| m.contains(field));
            if !named {
                findings.add(
                    "date outside the accepted years: not a tool error naming the field",
                    || describe(case, outcome),
                );
            }
        }
        Message::Tool { .. } | Message::Plain(_) => {
            if answer.status != 200
                || (error.is_none() && result.is_none() && !matches!(message, Message::Plain(_)))
            {
                findings.add("tool call: not a 200 JSON-RPC answer", || {
                    describe(case, outcome)
                });
            }
        }
        Message::Notification => {}
    }
}

/// Text only tenant B's rows hold.
struct Markers {
    other: String,
}

// ---------------------------------------------------------------------------
// The run.

struct Server {
    addr: SocketAddr,
    good: String,
}

impl Server {
    /// A tool call by tenant A, answered as (result or error JSON, isError).
    async fn tool(&self, name: &str, arguments: Value, key: &str) -> Result<(Value, bool), String> {
        let case = Case::well_formed(
            Key::Good,
            Body::Message(Message::Tool {
                name: name.into(),
                arguments,
            }),
        );
        let keys = Keys {
            good: key.to_owned(),
            other: String::new(),
            unknown: String::new(),
            revoked: String::new(),
            expired: String::new(),
        };
        let request = request_bytes(&case, &keys, self.addr, 1);
        match raw_http(self.addr, request, false, DEADLINE).await {
            RawOutcome::Answered(answer) => {
                let body = answer
                    .json()
                    .ok_or_else(|| format!("{name}: HTTP {} {}", answer.status, answer.text()))?;
                if let Some(result) = body.get("result") {
                    let is_error = result["isError"] == true;
                    Ok((
                        result
                            .get("structuredContent")
                            .cloned()
                            .unwrap_or_else(|| result.clone()),
                        is_error,
                    ))
                } else {
                    Ok((body["error"].clone(), true))
                }
            }
            RawOutcome::TimedOut => Err(format!("{name}: no answer within {DEADLINE:?}")),
            RawOutcome::Closed(why) => Err(format!("{name}: closed without an answer: {why}")),
        }
    }
}

async fn fuzz(t: TestDb, thread_prefix: &'static str) {
    let started = Instant::now();
    let seed: u64 = std::env::var("FLEETMIND_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let cases: usize = std::env::var("FLEETMIND_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    eprintln!(
        "{thread_prefix}: seed {seed} (FLEETMIND_FUZZ_SEED={seed} reruns it), {cases} general cases"
    );
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );

    // Two tenants; A fuzzes, B is the one A must never reach.
    let a = issue_key(&t.db, "fuzz-a@example.com", None).await;
    let b = issue_key(&t.db, "fuzz-b@example.com", None).await;
    let revoked = issue_key(&t.db, "fuzz-revoked@example.com", None).await;
    t.db.revoke_keys(&RevokeTarget::KeyId(revoked.record.key_id), "cli")
        .await
        .expect("revoke");
    let expired = ApiKey::generate().expect("key");
    t.db.insert_key(&NewKey {
        user_id: "user_fuzzexpired0".into(),
        email: "fuzz-expired@example.com".into(),
        name: None,
        hash: expired.hash(),
        prefix: expired.display_prefix(),
        scopes: Scopes::PREDECESSOR_DEFAULT,
        expires_at: Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
        created_by: "cli".into(),
    })
    .await
    .expect("expired key");
    let keys = Keys {
        good: a.api_key.expose().to_owned(),
        other: b.api_key.expose().to_owned(),
        unknown: ApiKey::generate().expect("key").expose().to_owned(),
        revoked: revoked.api_key.expose().to_owned(),
        expired: expired.expose().to_owned(),
    };
    // A short usage flush, so a refused request that counted as key use
    // would show in the snapshots.
    let options = fleetmind::app::ServeOptions {
        usage_flush_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let running = start_server_with(t.db.clone(), options).await;
    let server = Server {
        addr: running.addr,
        good: keys.good.clone(),
    };

    let marker_a = format!("tenant-a-marker-{seed}");
    let marker_b = format!("tenant-b-marker-{seed}");
    let ids = seed_tenant(&server, &keys.good, &marker_a).await;
    let ids_b = seed_tenant(&server, &keys.other, &marker_b).await;
    let all_ids = Ids {
        orders: [ids.orders.clone(), ids_b.orders.clone()].concat(),
        drivers: [ids.drivers.clone(), ids_b.drivers.clone()].concat(),
        assignments: [ids.assignments.clone(), ids_b.assignments.clone()].concat(),
    };
    let markers = Markers {
        other: marker_b.clone(),
    };
    let mut findings = Findings::default();
    let pause = Duration::from_millis(300);
    let settle = Duration::from_secs(5);
    let b_user = b.record.user_id.clone();
    let b_before = settled_snapshot(&t.url, t.backend, Some(&b_user), &[], pause, settle).await;

    // 1. Refused at the door (no good key, or a foreign Host): nothing at
    //    all may change, key usage included.
    let before = settled_snapshot(&t.url, t.backend, None, &[], pause, settle).await;
    let door = refused_at_the_door();
    for i in 0..120u64 {
        let case = door.new_tree(&mut runner).expect("case").current();
        let outcome = send(&case, &keys, server.addr, i).await;
        check(&case, &outcome, &markers, &mut findings);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = db_snapshot(&t.url, t.backend, None, &[]).await;
    for diff in snapshot_diff(&before, &after) {
        findings.add(
            "a request refused at the door wrote to the database",
            || diff.clone(),
        );
    }

    // 2. A good key, refused by the envelope or the tool: nothing may change
    //    but the key's last use (the key itself was good).
    let ignore = [("api_keys", "last_used_at")];
    let before = settled_snapshot(&t.url, t.backend, None, &ignore, pause, settle).await;
    let envelope_refusals = refused_with_a_good_key();
    for i in 0..120u64 {
        let case = envelope_refusals
            .new_tree(&mut runner)
            .expect("case")
            .current();
        let outcome = send(&case, &keys, server.addr, i).await;
        check(&case, &outcome, &markers, &mut findings);
        if let RawOutcome::Answered(answer) = &outcome
            && tool_result(answer).is_some_and(|(_, is_error)| !is_error)
        {
            findings.add("a request that must be refused was accepted", || {
                describe(&case, &outcome)
            });
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = db_snapshot(&t.url, t.backend, None, &ignore).await;
    for diff in snapshot_diff(&before, &after) {
        findings.add(
            "a refused request with a good key wrote to the database",
            || diff.clone(),
        );
    }

    // 3. Everything at once, and deliveries through far dates.
    let general = case(&all_ids);
    for i in 0..cases as u64 {
        let case = general.new_tree(&mut runner).expect("case").current();
        let outcome = send(&case, &keys, server.addr, i).await;
        check(&case, &outcome, &markers, &mut findings);
    }
    let dates = (fuzz_time(), fuzz_time());
    for round in 0..12 {
        let (mut expected, arrival) = dates.new_tree(&mut runner).expect("dates").current();
        if round == 0 {
            // The value of issue 9, finding 1, every run.
            expected = "+262142-12-31T23:59:59".into();
        }
        if let Err(problem) = deliver(&server, round, &expected, &arrival).await {
            findings.add(
                "a delivery through a date the server accepted did not finish",
                || problem,
            );
        }
    }
    let (_, is_error) = server
        .tool(
            "get_order_details",
            json!({"order_id": ids_b.orders[0]}),
            &keys.good,
        )
        .await
        .unwrap_or((Value::Null, false));
    if !is_error {
        findings.add("tenant A's key found tenant B's order", || {
            ids_b.orders[0].clone()
        });
    }
    for tool in ["delete_all_drivers", "delete_all_orders"] {
        if let Err(problem) = server
            .tool(tool, json!({"confirm": true}), &keys.good)
            .await
        {
            findings.add("delete_all by tenant A did not answer", || problem);
        }
    }
    let b_after = settled_snapshot(&t.url, t.backend, Some(&b_user), &[], pause, settle).await;
    for diff in snapshot_diff(&b_before, &b_after) {
        findings.add(
            "tenant B's rows changed while only A's key was used",
            || diff.clone(),
        );
    }

    // No panic on this server's threads (or on threads of no test).
    let other_prefix = if thread_prefix == "fuzz-sqlite" {
        "fuzz-postgres"
    } else {
        "fuzz-sqlite"
    };
    let server_panics: Vec<(String, String)> = panics()
        .lock()
        .map(|list| list.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(thread, _)| {
            !thread.starts_with(other_prefix) && !thread.starts_with("fuzz_http_on_")
        })
        .collect();
    for (thread, message) in &server_panics {
        findings.add("the server panicked", || format!("{thread}: {message}"));
    }
    running.stop().await;

    eprintln!(
        "{thread_prefix}: {} requests in {:.1} s",
        240 + cases + 12 * 6,
        started.elapsed().as_secs_f64()
    );
    if !findings.by_rule.is_empty() {
        let mut report = format!("{thread_prefix} (seed {seed}): issue 9 violated:\n");
        for (rule, (count, example)) in &findings.by_rule {
            report.push_str(&format!("  {count} × {rule}\n      e.g. {example}\n"));
        }
        panic!("{report}");
    }
}

async fn send(case: &Case, keys: &Keys, addr: SocketAddr, id: u64) -> RawOutcome {
    let request = request_bytes(case, keys, addr, id + 1);
    raw_http(addr, request, case.short_body, DEADLINE).await
}

/// Two drivers, two orders and one assignment for the key's tenant, every
/// one carrying `marker`.
async fn seed_tenant(server: &Server, key: &str, marker: &str) -> Ids {
    let mut ids = Ids::default();
    let created = |what: &str, answer: Result<(Value, bool), String>, field: &str| -> String {
        match answer {
            Ok((value, false)) => value
                .pointer(field)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("seed {what}: no {field} in {value}"))
                .to_owned(),
            other => panic!("seed {what}: {other:?}"),
        }
    };
    for n in 0..2 {
        let driver = server
            .tool(
                "create_driver",
                json!({"name": format!("{marker} driver {n}"), "vehicle_type": "van",
                       "current_address": format!("{marker} depot"), "current_lat": 48.85, "current_lng": 2.35}),
                key,
            )
            .await;
        ids.drivers
            .push(created("driver", driver, "/driver/driver_id"));
        let order = server
            .tool(
                "create_order",
                valid_order(&format!("{marker} customer {n}"), "2030-01-01T10:00:00Z"),
                key,
            )
            .await;
        ids.orders.push(created("order", order, "/order/order_id"));
    }
    let assignment = server
        .tool(
            "create_assignment",
            json!({"order_id": ids.orders[0], "driver_id": ids.drivers[0]}),
            key,
        )
        .await;
    ids.assignments.push(created(
        "assignment",
        assignment,
        "/assignment/assignment_id",
    ));
    ids
}

/// Creates an order due at `expected` (and a driver for it); if the server
/// accepts the date, the order must be assignable and finishable: assign,
/// start, arrive at `arrival`, complete or fail. Every step must answer.
async fn deliver(server: &Server, round: u32, expected: &str, arrival: &str) -> Result<(), String> {
    let key = server.good.as_str();
    let driver = server
        .tool(
            "create_driver",
            json!({"name": format!("delivery driver {round}"), "vehicle_type": "truck",
                   "current_address": "depot", "current_lat": 48.85, "current_lng": 2.35,
                   "skills": ["fragile_handler", "express_delivery", "overnight"]}),
            key,
        )
        .await?;
    if driver.1 {
        return Err(format!("create_driver refused: {}", driver.0));
    }
    let mut order = valid_order(&format!("delivery {round}"), expected);
    order["priority"] = json!(if round % 2 == 0 { "urgent" } else { "standard" });
    order["time_window_end"] = json!(expected);
    let (order, refused) = server.tool("create_order", order, key).await?;
    if refused {
        return Ok(());
    }
    let order_id = order["order"]["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let assign = if round % 3 == 0 {
        "auto_assign_order"
    } else {
        "intelligent_assign_order"
    };
    let (assigned, refused) = server
        .tool(assign, json!({"order_id": order_id}), key)
        .await?;
    if refused {
        return Err(format!(
            "{assign} refused an order due {expected}: {assigned}"
        ));
    }
    let assignment_id = assigned
        .pointer("/assignment/assignment_id")
        .or_else(|| assigned.pointer("/assignment_id"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{assign}: no assignment id in {assigned}"))?
        .to_owned();
    let (_, refused) = server
        .tool("update_assignment", json!({"assignment_id": assignment_id, "status": "in_progress", "actual_arrival": arrival}), key)
        .await?;
    let _ = refused; // a refused arrival time is fine; finishing must still work
    let (finished, refused) = if round % 2 == 0 {
        server
            .tool(
                "complete_delivery",
                json!({"assignment_id": assignment_id, "confirm": true}),
                key,
            )
            .await?
    } else {
        server
            .tool(
                "fail_delivery",
                json!({"assignment_id": assignment_id, "current_address": "kerb", "current_lat": 48.86,
                       "current_lng": 2.36, "failure_reason": "customer_not_available", "confirm": true}),
                key,
            )
            .await?
    };
    if refused {
        return Err(format!(
            "an order due {expected} could not be finished: {finished}"
        ));
    }
    Ok(())
}

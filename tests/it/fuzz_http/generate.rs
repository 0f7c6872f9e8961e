//! The proptest strategies: every part of a request, from plausible to
//! hostile.

use super::cases::*;
use super::request::{envelope, tool_call_text, valid_order};
use proptest::prelude::*;
use serde_json::{Value, json};

pub fn fuzz_string() -> BoxedStrategy<String> {
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
pub fn fuzz_time() -> BoxedStrategy<String> {
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
pub fn offset() -> BoxedStrategy<&'static str> {
    prop::sample::select(vec!["Z", "", "+14:00", "-12:00", "+00:00"]).boxed()
}

/// `year` in RFC 3339 (a sign and six digits outside 0..=9999, as chrono
/// writes and reads it).
pub fn format_year(year: i64, month: u32, day: u32, hour: u32, offset: &str) -> String {
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        format!("{year:+07}")
    };
    format!("{year}-{month:02}-{day:02}T{hour:02}:30:00{offset}")
}

pub fn fuzz_number() -> BoxedStrategy<Value> {
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

pub fn fuzz_value(ids: &Ids) -> BoxedStrategy<Value> {
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

pub fn any_id(ids: &Ids) -> BoxedStrategy<String> {
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
pub fn fuzz_arguments(ids: &Ids) -> BoxedStrategy<Value> {
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

pub fn create_order_strategy() -> BoxedStrategy<Value> {
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
pub fn far_date() -> BoxedStrategy<(&'static str, String)> {
    (
        prop::sample::select(TIME_FIELDS.to_vec()),
        prop_oneof![(10_000i64..=262_142), (-262_143i64..=0)],
        1u32..=12,
        offset(),
    )
        .prop_map(|(field, year, month, offset)| (field, format_year(year, month, 15, 12, offset)))
        .boxed()
}

pub fn message(ids: &Ids) -> BoxedStrategy<Message> {
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

pub fn body(ids: &Ids) -> BoxedStrategy<Body> {
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

pub fn key() -> BoxedStrategy<Key> {
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

pub fn place() -> BoxedStrategy<Place> {
    prop_oneof![
        4 => Just(Place::Header),
        2 => Just(Place::Query),
        1 => Just(Place::Both),
        1 => Just(Place::LowerScheme),
    ]
    .boxed()
}

pub fn foreign_host() -> BoxedStrategy<String> {
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

pub fn host() -> BoxedStrategy<Host> {
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

pub fn path() -> BoxedStrategy<Path> {
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

pub fn case(ids: &Ids) -> BoxedStrategy<Case> {
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
pub fn refused_at_the_door() -> BoxedStrategy<Case> {
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
pub fn refused_with_a_good_key() -> BoxedStrategy<Case> {
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

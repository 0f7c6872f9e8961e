//! Writing a generated case as raw HTTP/1.1 bytes.

use super::cases::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
// Writing requests.

pub fn tool_call_text(name: &str, arguments: &Value, id: u64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
    .to_string()
}

pub fn envelope(message: &Message, id: u64) -> Value {
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

pub fn valid_order(name: &str, expected: &str) -> Value {
    json!({
        "customer_name": name,
        "delivery_address": "1 Fuzz Street",
        "delivery_lat": 48.85,
        "delivery_lng": 2.35,
        "expected_delivery_time": expected,
        "weight_kg": 2.0,
    })
}

pub fn body_bytes(body: &Body, id: u64) -> Vec<u8> {
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
pub struct Keys {
    pub good: String,
    pub other: String,
    pub unknown: String,
    pub revoked: String,
    pub expired: String,
}

pub fn key_text(key: &Key, keys: &Keys) -> Option<String> {
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
pub fn header_safe(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

pub fn percent(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub fn request_bytes(case: &Case, keys: &Keys, addr: SocketAddr, id: u64) -> Vec<u8> {
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

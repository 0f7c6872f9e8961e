//! The JSON-RPC envelope of a POST to `/mcp`, looked at before rmcp sees it,
//! so that a body rmcp cannot use gets a JSON-RPC error a client can show
//! (rmcp answers those with HTTP 415 and a text body, and a `tools/call` whose
//! `arguments` is not an object with `-32601` and the message "tools/call").
//!
//! It costs one pass over the body that allocates nothing for a normal
//! request: the fields that matter are read, everything else is skipped.
//!
//! The same pass gives the tool name of a `tools/call`, for the check of
//! per-key limits ([`CallGate`]), so the body is parsed once.

use super::answer::{INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, json_rpc_error};
use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Extensions, HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The largest body taken (rmcp is given the same limit).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A check of each `tools/call`, by its tool name, before rmcp runs it.
/// The auth layer puts a [`CallGate`] in the request's extensions for a key
/// with limits (`crate::limits`); the edge knows nothing of keys.
pub trait CallCheck: Send + Sync {
    /// `Err(answer)` refuses the call with that answer. `id` is the
    /// request's JSON-RPC id.
    fn admit(
        &self,
        extensions: &Extensions,
        tool: &str,
        id: &Value,
    ) -> Result<(), Box<Response<Body>>>;
}

/// The [`CallCheck`] of a request, in its extensions.
#[derive(Clone)]
pub struct CallGate(pub Arc<dyn CallCheck>);

/// The check between the key check and rmcp, as a tower layer (a
/// hand-written service: `axum::middleware::from_fn` and a boxed clone of
/// the inner service cost several allocations on every request).
#[derive(Clone, Copy, Default)]
pub struct EnvelopeLayer;

impl<S> Layer<S> for EnvelopeLayer {
    type Service = EnvelopeCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EnvelopeCheck { inner }
    }
}

/// The service [`EnvelopeLayer`] produces.
#[derive(Clone)]
pub struct EnvelopeCheck<S> {
    inner: S,
}

impl<S, R> Service<Request<Body>> for EnvelopeCheck<S>
where
    S: Service<Request<Body>, Response = Response<R>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: http_body::Body<Data = Bytes> + Send + 'static,
    R::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one that serves this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { Ok(check_envelope(req, inner).await) })
    }
}

async fn run<S, R>(mut inner: S, req: Request<Body>) -> Response<Body>
where
    S: Service<Request<Body>, Response = Response<R>, Error = Infallible>,
    R: http_body::Body<Data = Bytes> + Send + 'static,
    R::Error: Into<axum::BoxError>,
{
    match inner.call(req).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

async fn check_envelope<S, R>(req: Request<Body>, inner: S) -> Response<Body>
where
    S: Service<Request<Body>, Response = Response<R>, Error = Infallible>,
    R: http_body::Body<Data = Bytes> + Send + 'static,
    R::Error: Into<axum::BoxError>,
{
    // Anything else (GET, DELETE, another content type) is rmcp's to answer.
    if req.method() != Method::POST || !is_json(req.headers()) {
        return run(inner, req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            return invalid(
                StatusCode::PAYLOAD_TOO_LARGE,
                Value::Null,
                INVALID_REQUEST,
                format!(
                    "FleetMind: the request body is larger than {} MiB.",
                    MAX_BODY_BYTES / (1024 * 1024)
                ),
            );
        }
        Err(_) => {
            return invalid(
                StatusCode::BAD_REQUEST,
                Value::Null,
                INVALID_REQUEST,
                "FleetMind could not read the whole request body.".to_owned(),
            );
        }
    };
    let call = match inspect(&bytes) {
        Ok(call) => call,
        Err(answer) => return *answer,
    };
    if let Some((id, tool)) = call
        && let Some(CallGate(gate)) = parts.extensions.get::<CallGate>()
        && let Err(answer) = gate.admit(&parts.extensions, &tool, &id)
    {
        return *answer;
    }
    // The bytes read here are rmcp's body: it collects them again, but
    // from memory (a `Bytes` clone is a reference count).
    let response = run(inner, Request::from_parts(parts, Body::from(bytes.clone()))).await;
    // rmcp refuses with 415 a JSON body it cannot read as a message (a shape
    // the cheap look above lets through, such as a wrong "jsonrpc" or values
    // nested deeper than its parser goes).
    if response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return *not_a_message(&bytes);
    }
    response
}

/// `application/json`, with or without parameters (rmcp's rule).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(e, _)| e);
            essence.trim().eq_ignore_ascii_case("application/json")
        })
}

type Refusal = Box<Response<Body>>;

/// The id and tool name of a `tools/call`.
type ToolCall<'a> = (Value, Cow<'a, str>);

/// `Err(answer)` for a body that is not one JSON-RPC message, or a
/// `tools/call` whose parameters have the wrong shape; the call's id and
/// tool name for a `tools/call`.
fn inspect(bytes: &Bytes) -> Result<Option<ToolCall<'_>>, Refusal> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(b'[') => {
            return Err(match serde_json::from_slice::<IgnoredAny>(bytes) {
                Ok(_) => Box::new(invalid(
                    StatusCode::BAD_REQUEST,
                    Value::Null,
                    INVALID_REQUEST,
                    "FleetMind does not support JSON-RPC batches: send one message per \
                     request."
                        .to_owned(),
                )),
                Err(err) => parse_error(&err),
            });
        }
        _ => {
            return Err(match serde_json::from_slice::<IgnoredAny>(bytes) {
                Ok(_) => Box::new(invalid(
                    StatusCode::BAD_REQUEST,
                    Value::Null,
                    INVALID_REQUEST,
                    "FleetMind: the body must be one JSON-RPC message, a JSON object.".to_owned(),
                )),
                Err(err) => parse_error(&err),
            });
        }
    }
    let envelope: Envelope<'_> = match serde_json::from_slice(bytes) {
        Ok(envelope) => envelope,
        Err(err) if err.is_data() => {
            return Err(Box::new(invalid(
                StatusCode::BAD_REQUEST,
                Value::Null,
                INVALID_REQUEST,
                format!("FleetMind: the body is not a valid JSON-RPC message: {err}."),
            )));
        }
        Err(err) => return Err(parse_error(&err)),
    };
    if envelope.method.as_deref() != Some("tools/call") {
        return Ok(None);
    }
    let id = envelope.id.unwrap_or(Value::Null);
    let tool = check_tool_call(&id, envelope.params)?;
    Ok(Some((id, tool)))
}

/// `tools/call` takes `{"name": "...", "arguments": {...}}`; `arguments` may
/// be left out or null.
fn check_tool_call<'a>(id: &Value, params: Option<Params<'a>>) -> Result<Cow<'a, str>, Refusal> {
    let refuse = |message: String| {
        // A well-formed request with bad parameters: a JSON-RPC error for
        // that id, as rmcp answers its own invalid-params errors.
        Err(Box::new(invalid(
            StatusCode::OK,
            id.clone(),
            INVALID_PARAMS,
            message,
        )))
    };
    let Some(params) = params.filter(|p| p.kind == Kind::Object) else {
        return refuse(
            "Invalid params: tools/call needs `params`, an object with the tool's `name` and \
             its `arguments` object."
                .to_owned(),
        );
    };
    let Some(tool) = params.tool else {
        return refuse(
            "Invalid params: tools/call needs `name`, the tool's name as a string.".to_owned(),
        );
    };
    match params.arguments {
        None | Some(Kind::Null) | Some(Kind::Object) => Ok(tool),
        Some(other) => refuse(format!(
            "Invalid params: `arguments` must be a JSON object (got {}); send {{}} for a tool \
             that takes none.",
            other.described()
        )),
    }
}

/// The rare path after rmcp refused a body: say what is wrong with it.
fn not_a_message(bytes: &[u8]) -> Refusal {
    match serde_json::from_slice::<Value>(bytes) {
        Err(err) => parse_error(&err),
        Ok(_) => Box::new(invalid(
            StatusCode::BAD_REQUEST,
            Value::Null,
            INVALID_REQUEST,
            "FleetMind: the body is JSON but not a JSON-RPC 2.0 message this server takes \
             (a request, notification or response with \"jsonrpc\": \"2.0\")."
                .to_owned(),
        )),
    }
}

fn parse_error(err: &serde_json::Error) -> Refusal {
    let what = err.to_string();
    let message = if what.starts_with("recursion limit exceeded") {
        format!("FleetMind: the body is nested too deeply to read (more than 128 levels; {what}).")
    } else {
        format!("FleetMind: the body is not valid JSON ({what}).")
    };
    Box::new(invalid(
        StatusCode::BAD_REQUEST,
        Value::Null,
        PARSE_ERROR,
        message,
    ))
}

fn invalid(status: StatusCode, id: Value, code: i64, message: String) -> Response<Body> {
    json_rpc_error(
        status,
        id,
        code,
        &message,
        serde_json::json!({ "error": "invalid_message" }),
    )
}

/// The parts of a message that are looked at.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    #[serde(borrow)]
    params: Option<Params<'a>>,
}

/// The JSON type of a value, read without keeping the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    fn described(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// `params`: its type and, when it is an object, its `name` when that is a
/// string and the type of `arguments`.
struct Params<'a> {
    kind: Kind,
    tool: Option<Cow<'a, str>>,
    arguments: Option<Kind>,
}

/// A value that is kept only when it is a string (borrowed from the body
/// unless it has escapes).
struct Text<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Text<'a>, A::Error> {
                KindVisitor.visit_seq(seq).map(|_| Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Text<'a>, A::Error> {
                KindVisitor.visit_map(map).map(|_| Text(None))
            }
        }
        d.deserialize_any(TextVisitor(std::marker::PhantomData))
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Kind, E> {
        Ok(Kind::Bool)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Kind, E> {
        Ok(Kind::Number)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Kind, E> {
        Ok(Kind::Number)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Kind, E> {
        Ok(Kind::Number)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Kind, E> {
        Ok(Kind::String)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Kind::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Kind::Object)
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

/// A key of `params`, read without allocating.
enum Field {
    Name,
    Arguments,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
                Ok(match key {
                    "name" => Field::Name,
                    "arguments" => Field::Arguments,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(FieldVisitor)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Params<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ParamsVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ParamsVisitor<'a> {
            type Value = Params<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params<'a>, A::Error> {
                let mut params = Params {
                    kind: Kind::Object,
                    tool: None,
                    arguments: None,
                };
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Name => params.tool = map.next_value::<Text<'a>>()?.0,
                        Field::Arguments => params.arguments = Some(map.next_value()?),
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(params)
            }
            // Every other type: only the type matters.
            fn visit_unit<E: de::Error>(self) -> Result<Params<'a>, E> {
                Ok(Params::other(Kind::Null))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Params<'a>, E> {
                Ok(Params::other(Kind::Bool))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Params<'a>, E> {
                Ok(Params::other(Kind::Number))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Params<'a>, E> {
                Ok(Params::other(Kind::Number))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Params<'a>, E> {
                Ok(Params::other(Kind::Number))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Params<'a>, E> {
                Ok(Params::other(Kind::String))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Params<'a>, A::Error> {
                KindVisitor.visit_seq(seq).map(Params::other)
            }
        }
        d.deserialize_any(ParamsVisitor(std::marker::PhantomData))
    }
}

impl Params<'_> {
    fn other(kind: Kind) -> Self {
        Self {
            kind,
            tool: None,
            arguments: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: &str) -> Option<(u16, Value)> {
        let err = inspect(&Bytes::from(body.to_owned())).err()?;
        let status = err.status().as_u16();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = runtime
            .block_on(axum::body::to_bytes(err.into_body(), 64 * 1024))
            .unwrap();
        Some((status, serde_json::from_slice(&bytes).unwrap()))
    }

    #[test]
    fn normal_messages_pass() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"arguments":null,"name":"whoami"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            r#" {"params":{"name":"x","arguments":{"a":[1,{"b":"\u00e9"}]}},"method":"tools\/call","id":2,"jsonrpc":"2.0"}"#,
        ] {
            assert!(refusal(body).is_none(), "{body}");
        }
    }

    #[test]
    fn a_tool_call_gives_its_id_and_tool_name_once_parsed() {
        let body = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"who\u0061mi"}}"#,
        );
        let (id, tool) = inspect(&body).ok().flatten().unwrap();
        assert_eq!((id, &*tool), (Value::from("x"), "whoami"));
        let body = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert!(inspect(&body).ok().unwrap().is_none());
    }

    #[test]
    fn malformed_batches_and_bare_values_are_refused_with_their_codes() {
        for (body, code) in [
            ("{", PARSE_ERROR),
            ("", PARSE_ERROR),
            ("{\"a\":1}}", PARSE_ERROR),
            (
                "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
                INVALID_REQUEST,
            ),
            ("[1,", PARSE_ERROR),
            ("42", INVALID_REQUEST),
            (r#"{"method":5}"#, INVALID_REQUEST),
        ] {
            let (status, body_json) = refusal(body).expect(body);
            assert_eq!(status, 400, "{body}");
            assert_eq!(body_json["error"]["code"], code, "{body}: {body_json}");
            assert!(body_json["id"].is_null());
        }
        let deep = format!("{{\"id\":{}{}}}", "[".repeat(200), "]".repeat(200));
        let (status, body_json) = refusal(&deep).unwrap();
        assert_eq!(
            (status, body_json["error"]["code"].as_i64()),
            (400, Some(PARSE_ERROR))
        );
        assert!(
            body_json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nested too deeply")
        );
    }

    #[test]
    fn tool_call_arguments_must_be_an_object() {
        for (args, got) in [
            ("\"x\"", "a string"),
            ("[1]", "an array"),
            ("5", "a number"),
            ("true", "a boolean"),
        ] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"whoami","arguments":{args}}}}}"#
            );
            let (status, answer) = refusal(&body).expect(args);
            assert_eq!(status, 200);
            assert_eq!(answer["id"], 7);
            assert_eq!(answer["error"]["code"], INVALID_PARAMS);
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("`arguments`") && message.contains(got),
                "{message}"
            );
        }
        let (_, answer) =
            refusal(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}"#).unwrap();
        assert_eq!(answer["error"]["code"], INVALID_PARAMS);
        let (_, answer) =
            refusal(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":3}}"#)
                .unwrap();
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`name`")
        );
    }
}

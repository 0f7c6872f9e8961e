//! Reading tool arguments, for every tool: one struct per tool gives both
//! its input schema and, through serde, its parser. A mistake (a wrong
//! type, a missing or unknown field, a value out of range) is a tool error
//! that names the field, before anything runs.
//!
//! The field types here ([`Text`], [`Whole`], [`ScopeList`]) word their
//! mistakes the way the admin tools always have (`email must be a string`);
//! serde's own mistakes are worded by serde, after the field's path
//! (`lat: invalid type: …`), as the fleet tools always have.

use super::error::ToolError;
use super::{input_schema, truncate};
use crate::limits::AllowedIps;
use crate::scopes::Scopes;
use rmcp::model::JsonObject;
use serde::de::{self, Deserialize, DeserializeOwned, Deserializer};
use serde_json::Value;
use std::fmt::Display;

/// Starts the message of a field type's own mistake: [`parse`] puts the
/// field's name in its place. Serde's messages start with fixed words, so
/// none starts with this.
const FIELD: char = '\u{0}';

/// A field type's mistake, `rest` following the field's name.
fn field_error<E: de::Error>(rest: impl Display) -> E {
    E::custom(format_args!("{FIELD}{rest}"))
}

/// Parses the arguments into `T`, naming the field of any mistake.
pub(super) fn parse<T: DeserializeOwned>(args: JsonObject) -> Result<T, ToolError> {
    serde_path_to_error::deserialize(Value::Object(args)).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        ToolError::Refused(match inner.strip_prefix(FIELD) {
            Some(rest) => format!("{path}{rest}"),
            None if path == "." => inner,
            None => format!("{path}: {inner}"),
        })
    })
}

/// [`parse`], after refusing a field `T` does not know in the words of the
/// admin tools, which list the fields the tool takes (from its schema): a
/// misspelt optional field (say `expires_days`) must not silently issue a
/// key that never expires.
pub(super) fn parse_listing_fields<T>(args: JsonObject) -> Result<T, ToolError>
where
    T: DeserializeOwned + rmcp::schemars::JsonSchema + 'static,
{
    let schema = input_schema::<T>();
    let known: Vec<&str> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|fields| fields.keys().map(String::as_str).collect())
        .unwrap_or_default();
    refuse_unknown(&args, &known)?;
    parse(args)
}

/// Refuses the first field of `args` that is not in `known`.
pub(super) fn refuse_unknown(args: &JsonObject, known: &[&str]) -> Result<(), ToolError> {
    let Some(unknown) = args.keys().find(|k| !known.contains(&k.as_str())) else {
        return Ok(());
    };
    let takes = if known.is_empty() {
        "this tool takes no arguments".to_owned()
    } else {
        format!("this tool takes: {}", known.join(", "))
    };
    Err(ToolError::Refused(format!(
        "unknown argument '{}' ({takes})",
        truncate(unknown)
    )))
}

/// A field the schema requires; absent or `null` is refused by name (the
/// field is an `Option`, so that serde leaves this message to us).
pub(super) fn required<T>(field: &str, value: Option<T>) -> Result<T, ToolError> {
    value.ok_or_else(|| ToolError::Refused(format!("{field} is required")))
}

/// A string.
#[derive(Debug)]
pub(super) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Text(s)),
            _ => Err(field_error(" must be a string")),
        }
    }
}

/// A whole number within `MIN..=MAX`, checked here, so that a negative or
/// huge number gets the same message as one just out of range.
#[derive(Debug)]
pub(super) struct Whole<const MIN: i64, const MAX: i64>(pub i64);

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Whole<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n.as_i64().filter(|v| (MIN..=MAX).contains(v)),
            _ => None,
        }
        .map(Whole)
        .ok_or_else(|| field_error(format!(" must be a whole number between {MIN} and {MAX}")))
    }
}

/// A non-empty list of scope names; a single string of names separated by
/// commas is accepted too, as assistants often send one.
#[derive(Debug)]
pub(super) struct ScopeList(pub Scopes);

impl<'de> Deserialize<'de> for ScopeList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let not_a_list = || field_error(" must be a list of scope names");
        let names = match Value::deserialize(d)? {
            Value::String(s) => vec![s],
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    _ => Err(not_a_list()),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(not_a_list()),
        };
        let mut scopes = Scopes::empty();
        for name in names {
            let parsed = Scopes::parse_list(&name).map_err(|e| field_error(format!(": {e}")))?;
            scopes = scopes.iter().chain(parsed.iter()).collect();
        }
        if scopes.is_empty() {
            return Err(field_error(" is empty: give at least one scope"));
        }
        Ok(ScopeList(scopes))
    }
}

/// A field that may be set, removed or left as it is: absent (with
/// `#[serde(default)]`) keeps, `null` removes, a value sets. `Option` cannot
/// tell absent from `null`, and for a limit they mean opposite things.
#[derive(Debug, Default)]
pub(super) enum Settable<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T> Settable<T> {
    /// The change it asks for: `None` keeps, `Some(None)` removes.
    pub(super) fn change<U>(self, into: impl FnOnce(T) -> U) -> Option<Option<U>> {
        match self {
            Settable::Keep => None,
            Settable::Clear => Some(None),
            Settable::Set(value) => Some(Some(into(value))),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Settable<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(Settable::Clear),
            value => T::deserialize(value)
                .map(Settable::Set)
                .map_err(de::Error::custom),
        }
    }
}

/// Addresses or CIDR networks (`["10.0.0.0/8", "192.0.2.7"]`); a single
/// string of entries separated by commas is accepted too. The first entry
/// that does not parse is named.
#[derive(Debug)]
pub(super) struct IpList(pub AllowedIps);

impl<'de> Deserialize<'de> for IpList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let not_a_list = || field_error(" must be a list of addresses or CIDR networks");
        let entries = match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    _ => Err(not_a_list()),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => return Err(not_a_list()),
        };
        entries
            .parse()
            .map(IpList)
            .map_err(|e: crate::limits::LimitError| {
                // The limit's message starts with the field's name: the path
                // puts it there already.
                let text = e.to_string();
                let rest = text.strip_prefix("allowed_ips").unwrap_or(&text);
                field_error(rest)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    fn object(v: Value) -> JsonObject {
        v.as_object().cloned().unwrap_or_default()
    }

    fn refused<T: DeserializeOwned + std::fmt::Debug>(v: Value) -> String {
        match parse::<T>(object(v)) {
            Err(ToolError::Refused(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn field_errors_name_the_field() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct A {
            lat: f64,
            name: String,
        }
        let msg = refused::<A>;
        assert!(msg(json!({"lat": "x", "name": "n"})).starts_with("lat: invalid type"));
        assert!(msg(json!({"lat": 1})).contains("missing field `name`"));
        assert!(msg(json!({"lat": 1, "name": "n", "nam": 1})).contains("unknown field `nam`"));
    }

    #[allow(dead_code)]
    #[derive(Deserialize, Debug)]
    struct B {
        email: Option<Text>,
        n: Option<Whole<0, 10>>,
        m: Option<Whole<0, 10>>,
        k: Option<Whole<0, 10>>,
        s: Option<ScopeList>,
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = refuse_unknown(&object(json!({"expires_days": 3})), &["email"]).unwrap_err();
        assert!(
            matches!(&err, ToolError::Refused(m) if m.contains("'expires_days'")),
            "{err:?}"
        );
    }

    #[test]
    fn wrong_types_and_ranges_name_the_field() {
        assert_eq!(refused::<B>(json!({"email": 5})), "email must be a string");
        for field in ["n", "m", "k"] {
            for bad in [json!("ten"), json!(2.5), json!(-1)] {
                let err = refused::<B>(json!({ field: bad }));
                assert!(
                    err.starts_with(field) && err.contains("between 0 and 10"),
                    "{err}"
                );
            }
        }
        assert!(refused::<B>(json!({"s": [1]})).starts_with("s must be"));
        assert!(matches!(
            required::<Text>("missing", None),
            Err(ToolError::Refused(m)) if m == "missing is required"
        ));
    }

    #[allow(dead_code)]
    #[derive(Deserialize, Debug)]
    struct L {
        #[serde(default)]
        rate: Settable<Whole<1, 10>>,
        #[serde(default)]
        ips: Settable<IpList>,
    }

    #[test]
    fn a_settable_field_tells_absent_from_null() {
        let parsed = |v: Value| parse::<L>(object(v)).unwrap();
        assert!(matches!(parsed(json!({})).rate, Settable::Keep));
        assert!(matches!(
            parsed(json!({"rate": null})).rate,
            Settable::Clear
        ));
        assert!(matches!(
            parsed(json!({"rate": 3})).rate,
            Settable::Set(Whole(3))
        ));
        let err = refused::<L>(json!({"rate": 0}));
        assert!(
            err.starts_with("rate") && err.contains("between 1 and 10"),
            "{err}"
        );
        let ips = |v: Value| match parsed(json!({ "ips": v })).ips {
            Settable::Set(IpList(list)) => list.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ips(json!(["10.0.0.0/8", "192.0.2.7"])),
            "10.0.0.0/8,192.0.2.7/32"
        );
        assert_eq!(ips(json!("10.0.0.0/8, ::1")), "10.0.0.0/8,::1/128");
        let err = refused::<L>(json!({"ips": ["10.0.0.0/8", "10.0.0.300"]}));
        assert!(err.starts_with("ips: '10.0.0.300'"), "{err}");
        let err = refused::<L>(json!({"ips": []}));
        assert!(err.starts_with("ips lists no address"), "{err}");
        assert!(refused::<L>(json!({"ips": 5})).starts_with("ips must be a list"));
    }

    #[test]
    fn scopes_from_a_list_or_a_string() {
        let both = Scopes::parse_list("orders:read drivers:write").unwrap();
        let scopes = |v: Value| parse::<B>(object(json!({ "s": v }))).map(|b| b.s.map(|s| s.0));
        assert_eq!(
            scopes(json!(["orders:read", "drivers:write"])).unwrap(),
            Some(both)
        );
        assert_eq!(
            scopes(json!("orders:read, drivers:write")).unwrap(),
            Some(both)
        );
        assert!(refused::<B>(json!({"s": []})).contains("s is empty"));
        assert!(refused::<B>(json!({"s": ["root"]})).contains("unknown scope 'root'"));
    }
}

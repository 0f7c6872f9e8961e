//! Reading tool arguments field by field, so that every mistake (a wrong
//! type, a missing or unknown field) is a tool error that names the field,
//! before anything is written.

use crate::mcp::truncate;
use crate::scopes::Scopes;
use rmcp::model::JsonObject;
use serde_json::Value;
use std::ops::RangeInclusive;

/// The arguments of one call, checked against the fields the tool knows.
pub(super) struct Args(JsonObject);

impl Args {
    /// Refuses fields the tool does not know: a misspelt optional field
    /// (say `expires_days`) must not silently issue a key that never expires.
    pub(super) fn new(args: JsonObject, known: &[&str]) -> Result<Self, String> {
        if let Some(unknown) = args.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!(
                "unknown argument '{}' (this tool takes: {})",
                truncate(unknown),
                known.join(", ")
            ));
        }
        Ok(Self(args))
    }

    /// The value of `field`; JSON `null` counts as absent.
    fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    pub(super) fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    pub(super) fn opt_str(&self, field: &str) -> Result<Option<String>, String> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{field} must be a string")),
        }
    }

    pub(super) fn str(&self, field: &str) -> Result<String, String> {
        self.opt_str(field)?
            .ok_or_else(|| format!("{field} is required"))
    }

    /// A whole number within `range` (checked here, so that a negative or
    /// huge number gets the same message as one just out of range).
    pub(super) fn opt_int(
        &self,
        field: &str,
        range: RangeInclusive<i64>,
    ) -> Result<Option<i64>, String> {
        let out_of_range = || {
            format!(
                "{field} must be a whole number between {} and {}",
                range.start(),
                range.end()
            )
        };
        match self.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) if range.contains(&v) => Ok(Some(v)),
                _ => Err(out_of_range()),
            },
            Some(_) => Err(out_of_range()),
        }
    }

    pub(super) fn int(&self, field: &str, range: RangeInclusive<i64>) -> Result<i64, String> {
        self.opt_int(field, range)?
            .ok_or_else(|| format!("{field} is required"))
    }

    /// A list of scope names; a single string of names separated by commas
    /// is accepted too, as assistants often send one.
    pub(super) fn opt_scopes(&self, field: &str) -> Result<Option<Scopes>, String> {
        let names: Vec<&str> = match self.get(field) {
            None => return Ok(None),
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .ok_or_else(|| format!("{field} must be a list of scope names"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(format!("{field} must be a list of scope names")),
        };
        let mut scopes = Scopes::empty();
        for name in names {
            let parsed = Scopes::parse_list(name).map_err(|e| format!("{field}: {e}"))?;
            scopes = scopes.iter().chain(parsed.iter()).collect();
        }
        if scopes.is_empty() {
            return Err(format!("{field} is empty: give at least one scope"));
        }
        Ok(Some(scopes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value, known: &[&str]) -> Result<Args, String> {
        match v {
            Value::Object(map) => Args::new(map, known),
            _ => unreachable!("tests pass objects"),
        }
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = args(json!({"expires_days": 3}), &["email"]).err().unwrap();
        assert!(err.contains("'expires_days'"), "{err}");
    }

    #[test]
    fn wrong_types_and_ranges_name_the_field() {
        let a = args(
            json!({"email": 5, "n": "ten", "m": 2.5, "k": -1, "s": [1]}),
            &["email", "n", "m", "k", "s"],
        )
        .unwrap();
        assert_eq!(a.str("email").unwrap_err(), "email must be a string");
        for field in ["n", "m", "k"] {
            let err = a.opt_int(field, 0..=10).unwrap_err();
            assert!(
                err.starts_with(field) && err.contains("between 0 and 10"),
                "{err}"
            );
        }
        assert!(a.opt_scopes("s").unwrap_err().starts_with("s must be"));
        assert_eq!(a.str("missing").unwrap_err(), "missing is required");
    }

    #[test]
    fn scopes_from_a_list_or_a_string() {
        let a = args(
            json!({"a": ["orders:read", "drivers:write"], "b": "orders:read, drivers:write", "c": [], "d": ["root"]}),
            &["a", "b", "c", "d"],
        )
        .unwrap();
        let both = Scopes::parse_list("orders:read drivers:write").unwrap();
        assert_eq!(a.opt_scopes("a").unwrap(), Some(both));
        assert_eq!(a.opt_scopes("b").unwrap(), Some(both));
        assert!(a.opt_scopes("c").unwrap_err().contains("c is empty"));
        assert!(
            a.opt_scopes("d")
                .unwrap_err()
                .contains("unknown scope 'root'")
        );
    }
}

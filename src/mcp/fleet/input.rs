//! The fleet tools' argument rules beyond their types (page sizes, ids,
//! times, confirmations), each naming the field of a mistake; the types
//! themselves are read by `mcp::args`.

use crate::fleet::rules;
use crate::mcp::error::ToolError;
use chrono::{DateTime, Utc};
use rmcp::schemars;
use serde::Deserialize;

/// A page size: `default` when absent, else within 1..=`max`.
pub(super) fn limit(value: Option<i64>, default: i64, max: i64) -> Result<i64, ToolError> {
    match value {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(_) => Err(ToolError::Refused(format!(
            "limit: must be between 1 and {max}"
        ))),
    }
}

pub(super) fn offset(value: Option<i64>) -> Result<i64, ToolError> {
    match value {
        None => Ok(0),
        Some(v) if (0..=1_000_000).contains(&v) => Ok(v),
        Some(_) => Err(ToolError::Refused(
            "offset: must be between 0 and 1000000".into(),
        )),
    }
}

/// An id argument (trimmed, non-empty, short, printable).
pub(super) fn id(field: &str, value: &str) -> Result<String, ToolError> {
    rules::id_arg(field, value).map_err(ToolError::from)
}

/// A search term: non-empty and at most [`rules::SEARCH_MAX`] characters.
pub(super) fn search_term(value: &str) -> Result<String, ToolError> {
    rules::required_text("search_term", value, rules::SEARCH_MAX).map_err(ToolError::from)
}

/// A point in time (see [`rules::time_text`]).
pub(super) fn time(field: &str, value: &str) -> Result<DateTime<Utc>, ToolError> {
    rules::time_text(field, value).map_err(ToolError::from)
}

pub(super) fn opt_time(
    field: &str,
    value: Option<&str>,
) -> Result<Option<DateTime<Utc>>, ToolError> {
    value.map(|v| time(field, v)).transpose()
}

/// A destructive call must say `confirm: true`.
pub(super) fn confirmed(confirm: bool, what: &str) -> Result<(), ToolError> {
    if confirm {
        Ok(())
    } else {
        Err(ToolError::Refused(format!(
            "confirm: must be true to {what}; nothing was changed"
        )))
    }
}

/// Sort direction, as the predecessor spelt it (either case accepted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub(super) enum SortOrder {
    #[serde(rename = "ASC", alias = "asc")]
    Asc,
    #[default]
    #[serde(rename = "DESC", alias = "desc")]
    Desc,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_usual_shapes() {
        let t = time("t", "2026-11-26T15:00:00+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-26T14:00:00+00:00");
        assert_eq!(
            time("t", "2026-11-26T15:00:00").unwrap().to_rfc3339(),
            "2026-11-26T15:00:00+00:00"
        );
        assert_eq!(
            time("t", "2026-11-26").unwrap().to_rfc3339(),
            "2026-11-26T00:00:00+00:00"
        );
        let err = match time("expected_delivery_time", "tomorrow") {
            Err(ToolError::Refused(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err.starts_with("expected_delivery_time:"), "{err}");
    }

    #[test]
    fn times_outside_the_years_are_refused_naming_the_field() {
        for ok in [
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "1970-01-01",
        ] {
            assert!(time("t", ok).is_ok(), "{ok}");
        }
        for bad in [
            "+262142-12-31T23:59:59",
            "-5000-01-01T00:00:00",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:30:00+01:00",
            "9999-12-31T23:00:00-05:00",
            "0000-01-01",
        ] {
            match time("time_window_end", bad) {
                Err(ToolError::Refused(m)) => assert!(
                    m.starts_with("time_window_end: must be a time in the years 1970 to 9999"),
                    "{bad}: {m}"
                ),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}

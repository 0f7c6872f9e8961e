//! Reading what callers write into the domain's input values
//! ([`NewOrder`](super::NewOrder), [`OrderPatch`](super::OrderPatch),
//! [`NewDriver`](super::NewDriver), [`DriverPatch`](super::DriverPatch))
//! with serde: ISO 8601 times, and defaults for fields left out or `null`. The
//! messages leave out the field's name: the reader of the arguments puts
//! the field's path in front.

use super::FleetError;
use super::fields::{in_years, invalid};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::de::{Deserialize, Deserializer, Error};

/// Minutes after the expected time that still count as on time, when the
/// caller does not say.
pub const DEFAULT_GRACE_MINUTES: i64 = 15;

/// A point in time: RFC 3339 (`2026-11-26T15:00:00Z`), or a date and time
/// without offset (taken as UTC), or a plain date (midnight UTC); its year
/// (in UTC) within [`TIME_YEARS`](super::rules::TIME_YEARS).
pub fn time_text(field: &str, text: &str) -> Result<DateTime<Utc>, FleetError> {
    read_time(text).map_err(|problem| invalid(field, problem))
}

fn read_time(text: &str) -> Result<DateTime<Utc>, String> {
    let parsed = parse_time(text).ok_or_else(|| {
        format!(
            "'{}' is not an ISO 8601 time (e.g. 2026-11-26T15:00:00Z)",
            text.trim().chars().take(40).collect::<String>()
        )
    })?;
    in_years(parsed)
}

fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
}

/// A required time field (see [`time_text`]).
pub(super) fn time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    read_time(&String::deserialize(d)?).map_err(D::Error::custom)
}

/// An optional time field; `null` is absent.
pub(super) fn opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|text| read_time(&text).map_err(D::Error::custom))
        .transpose()
}

/// A field with a default: `null` means the default, as leaving it out does.
pub(super) fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The grace period, [`DEFAULT_GRACE_MINUTES`] when left out or `null`.
pub(super) fn grace<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(Option::<i64>::deserialize(d)?.unwrap_or(DEFAULT_GRACE_MINUTES))
}

pub(super) fn default_grace() -> i64 {
    DEFAULT_GRACE_MINUTES
}

/// A new driver's payload and cargo space, when the caller does not say.
pub const DEFAULT_CAPACITY_KG: f64 = 1000.0;
pub const DEFAULT_CAPACITY_M3: f64 = 12.0;

/// A driver's payload, [`DEFAULT_CAPACITY_KG`] when left out or `null`.
pub(super) fn capacity_kg<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(DEFAULT_CAPACITY_KG))
}

pub(super) fn default_capacity_kg() -> f64 {
    DEFAULT_CAPACITY_KG
}

/// A driver's cargo space, [`DEFAULT_CAPACITY_M3`] when left out or `null`.
pub(super) fn capacity_m3<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(DEFAULT_CAPACITY_M3))
}

pub(super) fn default_capacity_m3() -> f64 {
    DEFAULT_CAPACITY_M3
}

/// Writes an input type's schema as the tools always showed it: serde
/// applies the defaults here, and schemars would add each as a `default`
/// keyword (the descriptions say them already).
pub(super) fn schema_as_arguments(schema: &mut schemars::Schema) {
    if let Some(fields) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        for field in fields.values_mut() {
            if let Some(field) = field.as_object_mut() {
                field.remove("default");
            }
        }
    }
    // The type's doc is for Rust readers; the tool says what it does.
    if let Some(schema) = schema.as_object_mut() {
        schema.shift_remove("description");
    }
}

#[cfg(test)]
mod tests {
    use super::super::{NewOrder, PaymentStatus, Priority};
    use serde_json::json;

    fn order(extra: serde_json::Value) -> Result<NewOrder, String> {
        crate::fleet::samples::new_order(extra).map_err(|e| e.to_string())
    }

    #[test]
    fn left_out_and_null_take_the_defaults() {
        // Due on a date alone: midnight UTC.
        let due = json!({"expected_delivery_time": "2026-11-26"});
        let nulls = json!({
            "expected_delivery_time": "2026-11-26",
            "priority": null, "payment_status": null, "requires_signature": null,
            "is_fragile": null, "requires_cold_storage": null,
            "sla_grace_period_minutes": null, "time_window_start": null,
        });
        for new in [order(due), order(nulls)] {
            let new = new.unwrap();
            assert_eq!(new.priority, Priority::Standard);
            assert_eq!(new.payment_status, PaymentStatus::Pending);
            assert!(!new.requires_signature && !new.is_fragile && !new.requires_cold_storage);
            assert_eq!(new.sla_grace_period_minutes, 15);
            assert_eq!(new.time_window_start, None);
            assert_eq!(
                new.expected_delivery_time.to_rfc3339(),
                "2026-11-26T00:00:00+00:00"
            );
        }
    }

    #[test]
    fn times_are_read_or_refused_without_the_field_name() {
        let new = order(json!({"time_window_end": "2026-11-26T15:00:00+01:00"})).unwrap();
        assert_eq!(
            new.time_window_end.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-26T14:00:00+00:00")
        );
        assert_eq!(
            order(json!({"time_window_start": "soon"})).unwrap_err(),
            "'soon' is not an ISO 8601 time (e.g. 2026-11-26T15:00:00Z)"
        );
        assert!(
            order(json!({"expected_delivery_time": "0001-01-01"}))
                .unwrap_err()
                .starts_with("must be a time in the years 1970 to 9999")
        );
        assert!(
            order(json!({"gate": 1}))
                .unwrap_err()
                .contains("unknown field `gate`")
        );
    }
}

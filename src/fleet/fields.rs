//! The limits on what callers may store and their checks (texts, phones,
//! emails, coordinates, amounts, times): every message starts with the
//! field's name. Which field has which limit is said once, in
//! `patch_order` and `patch_driver` (`rules.rs`), which new rows go
//! through too.

use super::FleetError;
use super::types::*;
use chrono::{DateTime, Datelike, SubsecRound, Utc};
use std::ops::RangeInclusive;

/// Longest accepted values, in characters.
pub const NAME_MAX: usize = 200;
pub const ADDRESS_MAX: usize = 500;
pub const PHONE_MAX: usize = 40;
pub const EMAIL_MAX: usize = 254;
pub const PLATE_MAX: usize = 20;
pub const TEXT_MAX: usize = 2000;
pub const SEARCH_MAX: usize = 200;
pub const ID_MAX: usize = 64;
/// Largest weight, volume and capacity anyone plausibly means.
pub const WEIGHT_MAX_KG: f64 = 100_000.0;
pub const VOLUME_MAX_M3: f64 = 1_000.0;
pub const VALUE_MAX: f64 = 1e12;
pub const DISTANCE_MAX_M: f64 = 1e8;
pub const GRACE_MAX_MINUTES: i64 = 7 * 24 * 60;
/// The years (in UTC) a time field may name, on both backends alike.
/// Four-digit years sort and compare the same as SQLite text and as
/// Postgres `timestamptz` (which refuses years before 4713 BC and after
/// 294276, while SQLite stored them); and every later sum on them (due time
/// plus grace, an hour late) stays far inside chrono's range, so none can
/// overflow. No delivery was promised before 1970.
pub const TIME_YEARS: RangeInclusive<i32> = 1970..=9999;

pub(super) fn invalid(field: &str, problem: impl std::fmt::Display) -> FleetError {
    FleetError::Invalid(format!("{field}: {problem}"))
}

/// A required text: trimmed, not empty, at most `max` characters, no
/// control characters (Postgres cannot store NUL; others are never meant).
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, FleetError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    checked_text(field, value, max)
}

/// An optional text: empty means absent.
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, FleetError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => checked_text(field, value, max).map(Some),
    }
}

fn checked_text(field: &str, value: &str, max: usize) -> Result<String, FleetError> {
    let len = value.chars().count();
    if len > max {
        return Err(invalid(
            field,
            format!("is {len} characters long; at most {max} are allowed"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

pub fn optional_email(field: &str, value: Option<&str>) -> Result<Option<String>, FleetError> {
    let email = optional_text(field, value, EMAIL_MAX)?;
    if let Some(email) = &email {
        let ok = email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !email.chars().any(char::is_whitespace);
        if !ok {
            return Err(invalid(field, "is not an email address"));
        }
    }
    Ok(email)
}

pub fn optional_phone(field: &str, value: Option<&str>) -> Result<Option<String>, FleetError> {
    let phone = optional_text(field, value, PHONE_MAX)?;
    if let Some(phone) = &phone {
        let ok = phone.chars().any(|c| c.is_ascii_digit())
            && phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
        if !ok {
            return Err(invalid(field, "may hold only digits, spaces and + - ( ) ."));
        }
    }
    Ok(phone)
}

pub fn latitude(field: &str, value: f64) -> Result<f64, FleetError> {
    if value.is_finite() && (-90.0..=90.0).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(field, "must be a latitude between -90 and 90"))
    }
}

pub fn longitude(field: &str, value: f64) -> Result<f64, FleetError> {
    if value.is_finite() && (-180.0..=180.0).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(field, "must be a longitude between -180 and 180"))
    }
}

/// A number in `[min, max]` (or `(0, max]` when `positive`).
pub fn amount(field: &str, value: f64, max: f64, positive: bool) -> Result<f64, FleetError> {
    let ok = value.is_finite() && value <= max && if positive { value > 0.0 } else { value >= 0.0 };
    if ok {
        Ok(value)
    } else if positive {
        Err(invalid(field, format!("must be above 0 and at most {max}")))
    } else {
        Err(invalid(field, format!("must be between 0 and {max}")))
    }
}

pub(super) fn grace(value: i64) -> Result<i64, FleetError> {
    if (0..=GRACE_MAX_MINUTES).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            "sla_grace_period_minutes",
            format!("must be between 0 and {GRACE_MAX_MINUTES}"),
        ))
    }
}

/// A time a caller gives: within [`TIME_YEARS`] (in UTC), at the precision
/// both databases keep (microseconds).
pub fn time(field: &str, value: DateTime<Utc>) -> Result<DateTime<Utc>, FleetError> {
    in_years(value).map_err(|problem| invalid(field, problem))
}

/// [`time`] without the field's name: the time, or what is wrong with it.
pub(super) fn in_years(value: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if TIME_YEARS.contains(&value.year()) {
        Ok(value.trunc_subsecs(6))
    } else {
        Err(format!(
            "must be a time in the years {} to {} (UTC), e.g. 2026-11-26T15:00:00Z",
            TIME_YEARS.start(),
            TIME_YEARS.end()
        ))
    }
}

pub(super) fn window(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<(), FleetError> {
    match (start, end) {
        (Some(start), Some(end)) if start > end => Err(invalid(
            "time_window_end",
            "must not be before time_window_start",
        )),
        _ => Ok(()),
    }
}

/// An id as the caller gave it: short and printable, else it names nothing.
pub fn id_arg(field: &str, value: &str) -> Result<String, FleetError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    checked_text(field, value, ID_MAX)
}

/// Skills sorted and without repeats, so equal sets are stored equally.
pub fn canonical_skills(mut skills: Vec<Skill>) -> Vec<Skill> {
    skills.sort();
    skills.dedup();
    skills
}

/// The stored form of a skill list.
pub fn skills_to_text(skills: &[Skill]) -> String {
    skills
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads a stored skill list; an unknown name means a broken row.
pub fn skills_from_text(text: &str) -> Option<Vec<Skill>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(Skill::parse)
        .collect()
}

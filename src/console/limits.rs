//! The limits fields of the console's forms (issue 13): `rate_limit_per_minute`,
//! `monthly_quota`, `allowed_ips`. A blank field leaves that limit as it is
//! (none, on a new key); `none` removes it. Only an admin sets limits, as
//! with `admin_set_key_limits`; a key issued by a non-admin carries the
//! issuing key's own limits, so a limited key cannot mint an unlimited one.

use super::ConsoleError;
use super::form::Fields;
use super::session::Signed;
use crate::limits::{self, KeyLimits, LimitError, LimitsChange};

/// The limit fields' names, in the order the forms show them.
pub const FIELDS: [&str; 3] = ["rate_limit_per_minute", "monthly_quota", "allowed_ips"];

/// One field: `None` when blank, else its value or `Some(None)` for `none`.
fn field<T>(
    fields: &Fields,
    name: &str,
    parse: impl FnOnce(&str) -> Result<Option<T>, LimitError>,
) -> Result<Option<Option<T>>, ConsoleError> {
    match fields.one(name).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => parse(text)
            .map(Some)
            .map_err(|e| ConsoleError::Invalid(format!("{e}; nothing was changed"))),
    }
}

/// The change the form asks for.
pub fn change_of(fields: &Fields) -> Result<LimitsChange, ConsoleError> {
    Ok(LimitsChange {
        rate_limit_per_minute: field(fields, FIELDS[0], limits::rate_limit_arg)?,
        monthly_quota: field(fields, FIELDS[1], limits::monthly_quota_arg)?,
        allowed_ips: field(fields, FIELDS[2], limits::allowed_ips_arg)?,
    })
}

/// The limits of a key issued from the console.
pub fn of_new_key(signed: &Signed, fields: &Fields) -> Result<KeyLimits, ConsoleError> {
    let change = change_of(fields)?;
    if signed.is_admin() {
        return Ok(change.apply(&KeyLimits::default()));
    }
    if !change.is_empty() {
        return Err(ConsoleError::Forbidden(
            "only a key with the admin scope sets limits; a key you issue gets your \
             key's limits. Nothing was created"
                .into(),
        ));
    }
    Ok(signed.caller.limits.clone())
}

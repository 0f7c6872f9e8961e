//! Listing, issuing, rotating and revoking keys, through `key_admin` (the
//! same rules and audit events as the CLI and the admin tools).

use super::form::Fields;
use super::session::Signed;
use super::{Console, ConsoleError, pages};
use crate::key_admin::{self, CreateKey, MAX_EXPIRES_IN_DAYS, MAX_GRACE_MINUTES};
use crate::keys::normalize_email;
use crate::scopes::{Scope, Scopes};
use crate::store::{KeyRecord, RevokeTarget};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// The `scopes` fields of a form.
pub fn scopes_of(fields: &Fields) -> Result<Scopes, ConsoleError> {
    let mut scopes = Scopes::empty();
    for name in fields.all("scopes") {
        let scope: Scope = name
            .parse()
            .map_err(|e: crate::scopes::UnknownScope| ConsoleError::Invalid(e.to_string()))?;
        scopes.insert(scope);
    }
    Ok(scopes)
}

impl Console {
    /// A signed-in POST: own origin, live session, its CSRF token.
    pub(super) async fn signed_post(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(Signed, Fields), ConsoleError> {
        self.check_origin(headers)?;
        let signed = self.signed_in(headers).await?;
        let fields = Fields::read(body).await?;
        signed.check_csrf(fields.one("csrf"))?;
        Ok((signed, fields))
    }

    /// The email of the caller's own key.
    async fn own_email(&self, signed: &Signed) -> Result<String, ConsoleError> {
        let own = self
            .0
            .db
            .key_by_id(signed.caller.key_id)
            .await?
            .ok_or_else(|| ConsoleError::SignIn("sign in again".into()))?;
        Ok(normalize_email(&own.email))
    }

    /// What the caller may manage: every key for an admin (optionally one
    /// email's), else its own tenant's.
    async fn visible_keys(
        &self,
        signed: &Signed,
        filter: Option<&str>,
    ) -> Result<Vec<KeyRecord>, ConsoleError> {
        if signed.is_admin() {
            return Ok(self.0.db.list_keys(filter).await?);
        }
        // By tenant, never by email: a predecessor's rows may hold the
        // tenant's email spelt otherwise, or its email under another id.
        Ok(self.0.db.tenant_keys(&signed.caller.user_id).await?)
    }

    /// The key `key_id`, if the caller may manage it; another tenant's key
    /// is answered exactly like one that does not exist.
    async fn managed_key(&self, signed: &Signed, key_id: &str) -> Result<KeyRecord, ConsoleError> {
        let missing = || ConsoleError::NotFound("no such key among the keys you manage".into());
        let key_id: i64 = key_id.parse().map_err(|_| missing())?;
        let key = self.0.db.key_by_id(key_id).await?.ok_or_else(missing)?;
        if !signed.is_admin() && key.user_id != signed.caller.user_id.as_str() {
            return Err(missing());
        }
        Ok(key)
    }
}

/// `GET /console/keys[?email=…]`.
pub async fn list(
    State(console): State<Console>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let signed = console.signed_in(&headers).await?;
    let query = Fields::parse(query.unwrap_or_default().as_bytes());
    let filter = query.one("email").map(normalize_email);
    let keys = console.visible_keys(&signed, filter.as_deref()).await?;
    Ok(pages::keys(&signed, &keys, filter.as_deref(), console.0.clock.now()).into_response())
}

/// `POST /console/keys`: issues a key and shows it once.
pub async fn create(
    State(console): State<Console>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConsoleError> {
    let (signed, fields) = console.signed_post(&headers, body).await?;
    let own_email = console.own_email(&signed).await?;
    let email = match fields.one("email") {
        Some(email) if !signed.is_admin() && normalize_email(email) != own_email => {
            return Err(ConsoleError::Forbidden(
                "a key without the admin scope can issue keys only for its own email".into(),
            ));
        }
        Some(email) => email.to_owned(),
        None => own_email,
    };
    let mut scopes = scopes_of(&fields)?;
    if fields.one("admin").is_some() {
        scopes.insert(Scope::Admin);
    }
    let request = CreateKey {
        email,
        name: fields.one("name").map(str::to_owned),
        scopes: Some(scopes),
        expires_in_days: fields.number("expires_in_days", 1..=MAX_EXPIRES_IN_DAYS, None)?,
        created_by: signed.actor(),
        issuer_scopes: Some(signed.caller.scopes),
        limits: super::limits::of_new_key(&signed, &fields)?,
    };
    let db = console.0.db.as_ref();
    let now = console.0.clock.now();
    let issued = if signed.is_admin() {
        key_admin::create_key(db, request, now).await?
    } else {
        // Into the caller's own tenant, never the one its email may name.
        key_admin::create_key_in_tenant(db, request, &signed.caller.user_id, now).await?
    };
    tracing::info!(
        actor.key_id = signed.caller.key_id,
        key.id = issued.record.key_id,
        key.prefix = %issued.record.key_prefix,
        "console: key created"
    );
    let url = console.mcp_url(&headers);
    Ok(pages::key_issued("Key created", Some(&signed), &issued, &url).into_response())
}

/// `POST /console/keys/{key_id}/revoke`.
pub async fn revoke(
    State(console): State<Console>,
    Path(key_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConsoleError> {
    let (signed, _) = console.signed_post(&headers, body).await?;
    let key = console.managed_key(&signed, &key_id).await?;
    let revoked = key_admin::revoke(
        console.0.db.as_ref(),
        RevokeTarget::KeyId(key.key_id),
        &signed.actor(),
        console.0.clock.now(),
    )
    .await?;
    if revoked.is_empty() {
        return Err(ConsoleError::Invalid(format!(
            "key {} is not active; nothing was changed",
            key.key_prefix
        )));
    }
    tracing::info!(
        actor.key_id = signed.caller.key_id,
        key.id = key.key_id,
        key.prefix = %key.key_prefix,
        "console: key revoked"
    );
    Ok((StatusCode::SEE_OTHER, [(LOCATION, "/console/keys")]).into_response())
}

/// `POST /console/keys/{key_id}/rotate` (field `grace_minutes`).
pub async fn rotate(
    State(console): State<Console>,
    Path(key_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConsoleError> {
    let (signed, fields) = console.signed_post(&headers, body).await?;
    let key = console.managed_key(&signed, &key_id).await?;
    let grace = fields
        .number("grace_minutes", 0..=MAX_GRACE_MINUTES, Some(0))?
        .unwrap_or(0);
    let issued = key_admin::rotate_key(
        console.0.db.as_ref(),
        key.key_id,
        grace,
        signed.actor(),
        Some(signed.caller.scopes),
        console.0.clock.now(),
    )
    .await?;
    tracing::info!(
        actor.key_id = signed.caller.key_id,
        key.id = key.key_id,
        successor.id = issued.record.key_id,
        successor.prefix = %issued.record.key_prefix,
        "console: key rotated"
    );
    let url = console.mcp_url(&headers);
    Ok(pages::key_issued("Key rotated", Some(&signed), &issued, &url).into_response())
}

/// `POST /console/keys/{key_id}/limits` (admin only; the limit fields).
pub async fn set_limits(
    State(console): State<Console>,
    Path(key_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConsoleError> {
    let (signed, fields) = console.signed_post(&headers, body).await?;
    if !signed.is_admin() {
        return Err(ConsoleError::Forbidden(
            "only a key with the admin scope changes limits; nothing was changed".into(),
        ));
    }
    let key = console.managed_key(&signed, &key_id).await?;
    let change = super::limits::change_of(&fields)?;
    let update = key_admin::set_limits(
        console.0.db.as_ref(),
        key.key_id,
        &change,
        &signed.actor(),
        console.0.clock.now(),
    )
    .await?;
    tracing::info!(
        actor.key_id = signed.caller.key_id,
        key.id = key.key_id,
        changed = update.set.changed(),
        exhausted = update.exhausted(),
        "console: key limits set"
    );
    Ok((StatusCode::SEE_OTHER, [(LOCATION, "/console/keys")]).into_response())
}

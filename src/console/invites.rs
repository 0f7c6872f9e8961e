//! One-time invitations: an admin creates a link for an email and scopes;
//! whoever opens it claims one key for that email, once, before it expires.

use super::form::Fields;
use super::keys::scopes_of;
use super::session::{random_token, token_hash};
use super::{Console, ConsoleError, pages};
use crate::key_admin::{self, CreateKey};
use crate::keys::{normalize_email, validate_email};
use crate::store::console::{InviteRow, NewInvite};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};

/// Longest an invitation may stay valid: 30 days.
const MAX_EXPIRES_IN_HOURS: u32 = 30 * 24;
const DEFAULT_EXPIRES_IN_HOURS: u32 = 24;

/// `POST /console/invites` (admin only): shows the link once.
pub async fn create(
    State(console): State<Console>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConsoleError> {
    let (signed, fields) = console.signed_post(&headers, body).await?;
    if !signed.is_admin() {
        return Err(ConsoleError::Forbidden(
            "only a key with the admin scope can invite; nothing was created".into(),
        ));
    }
    let email = fields
        .one("email")
        .ok_or_else(|| ConsoleError::Invalid("email is required".into()))?;
    validate_email(email).map_err(|m| ConsoleError::Invalid(m.into()))?;
    let email = normalize_email(email);
    let scopes = scopes_of(&fields)?;
    if scopes.is_empty() {
        return Err(ConsoleError::Invalid(
            "scopes is empty: give at least one scope".into(),
        ));
    }
    key_admin::ungranted(signed.caller.scopes, scopes)?;
    let hours = fields
        .number(
            "expires_in_hours",
            1..=MAX_EXPIRES_IN_HOURS,
            Some(DEFAULT_EXPIRES_IN_HOURS),
        )?
        .unwrap_or(DEFAULT_EXPIRES_IN_HOURS);
    let token = random_token()?;
    let now = console.0.clock.now();
    let at = now.timestamp();
    let invite = NewInvite {
        token_hash: token_hash(&token),
        email,
        scopes,
        invited_by_key_id: signed.caller.key_id,
        invited_by_user: signed.caller.user_id.clone(),
        created_at: at,
        expires_at: at + i64::from(hours) * 3600,
    };
    let invite_id = console
        .0
        .db
        .insert_invite(&invite, &signed.actor(), now)
        .await?;
    tracing::info!(
        actor.key_id = signed.caller.key_id,
        invite.id = invite_id,
        "console: invitation created"
    );
    let base = console.base_url(&headers).unwrap_or_default();
    let link = format!("{base}/console/invite/{token}");
    Ok(
        pages::invite_created(&signed, &link, &invite.email, scopes, invite.expires_at)
            .into_response(),
    )
}

/// The invitation of `token`, if it can still be claimed.
async fn usable(console: &Console, token: &str) -> Result<InviteRow, ConsoleError> {
    let invite = console
        .0
        .db
        .invite(&token_hash(token))
        .await?
        .ok_or_else(|| ConsoleError::NotFound("no such invitation".into()))?;
    if invite.claimed_at.is_some() {
        return Err(ConsoleError::Gone(
            "this invitation has already been used; ask for a new one".into(),
        ));
    }
    if invite.expires_at <= console.now() {
        return Err(ConsoleError::Gone(
            "this invitation has expired; ask for a new one".into(),
        ));
    }
    Ok(invite)
}

/// `GET /console/invite/{token}`.
pub async fn claim_page(
    State(console): State<Console>,
    Path(token): Path<String>,
) -> Result<Response, ConsoleError> {
    let invite = usable(&console, &token).await?;
    let action = format!("/console/invite/{token}");
    Ok(pages::claim(&action, &invite.email, invite.scopes).into_response())
}

/// `POST /console/invite/{token}` (field `name`): issues the key, shows it
/// once, and signs its holder in.
pub async fn claim(
    State(console): State<Console>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConsoleError> {
    console.check_origin(&headers)?;
    let fields = Fields::read(body).await?;
    // Checked before the invitation is spent, so a bad name spends nothing.
    let name = key_admin::check_name(fields.one("name"))?;
    let invite = usable(&console, &token).await?;
    let db = console.0.db.as_ref();
    let actor = format!("invite:{}", invite.invite_id);
    let request = CreateKey {
        email: invite.email,
        name,
        scopes: Some(invite.scopes),
        expires_in_days: None,
        created_by: actor.clone(),
        issuer_scopes: None,
        limits: Default::default(),
    };
    let now = console.0.clock.now();
    let (api_key, new) = key_admin::prepare_key(db, request, now).await?;
    // The claim and the key are one transaction: a key that cannot be
    // stored leaves the invitation claimable.
    let Some(record) = db
        .claim_invite(invite.invite_id, now.timestamp(), &new, &actor)
        .await?
    else {
        return Err(ConsoleError::Gone(
            "this invitation has already been used; ask for a new one".into(),
        ));
    };
    let issued = key_admin::IssuedKey { api_key, record };
    tracing::info!(invite.id = invite.invite_id, key.id = issued.record.key_id, key.prefix = %issued.record.key_prefix, "console: invitation claimed");
    // The key is stored: show it whatever happens to the session, or the
    // invitation would be spent on a key nobody saw.
    let cookie = match console
        .0
        .auth
        .verifier()
        .verify(issued.api_key.expose())
        .await
    {
        Ok(caller) => console
            .open_session(&caller, issued.api_key.hash())
            .await
            .ok(),
        Err(failure) => {
            tracing::warn!(invite.id = invite.invite_id, reason = %failure.description(), "console: the claimed key opened no session");
            None
        }
    };
    let url = console.mcp_url(&headers);
    let page = pages::key_issued("Your key", None, &issued, &url);
    Ok(match cookie {
        Some(cookie) => ([(SET_COOKIE, cookie)], page).into_response(),
        None => page.into_response(),
    })
}

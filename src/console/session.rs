//! Console sessions: a random token in a cookie, stored as its hash with
//! the key it was opened with; the CSRF token each form carries; the check
//! that a POST comes from the console's own origin.

use super::{Console, ConsoleError};
use crate::auth::{AuthFailure, Caller};
use crate::store::console::NewSession;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use http::header::{COOKIE, HOST, ORIGIN};
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const COOKIE_NAME: &str = "fm_console";
/// A session lasts at most this long…
pub const MAX_AGE_SECS: i64 = 12 * 3600;
/// …and ends after this long without a request.
pub const IDLE_SECS: i64 = 30 * 60;
/// `last_seen_at` is written at most this often per session.
const TOUCH_EVERY_SECS: i64 = 60;

/// 256 random bits, base64url: a session or invitation token.
pub fn random_token() -> Result<String, ConsoleError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).map_err(|_| {
        tracing::error!("console: the operating system's random source failed");
        ConsoleError::Internal
    })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// How a token is stored: lowercase hex SHA-256.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The CSRF token of a session: derived from the session token, so only
/// whoever holds the cookie can know it, and nothing more is stored.
fn csrf_of(session_token: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"fleetmind-console-csrf\0");
    digest.update(session_token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.finalize())
}

/// A signed-in console request.
pub struct Signed {
    pub caller: Caller,
    pub token_hash: String,
    /// For the hidden field of every form on the page.
    pub csrf: String,
}

impl Signed {
    pub fn is_admin(&self) -> bool {
        self.caller.scopes.contains(crate::scopes::Scope::Admin)
    }

    /// The actor of audit events: `console:key:<id>`.
    pub fn actor(&self) -> String {
        format!("console:key:{}", self.caller.key_id)
    }

    /// Refuses a POST whose `csrf` field is not this session's token.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), ConsoleError> {
        let ok = sent.is_some_and(|sent| bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes())));
        if ok {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "this form has no valid CSRF token (reload the page and try again); \
                 nothing was changed"
                    .into(),
            ))
        }
    }
}

/// The session token of the request's cookie, if any.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

impl Console {
    /// The session of the request, its key checked now through the verifier
    /// (which follows the change watch): a key revoked, expired or rotated
    /// out since sign-in ends the session here.
    pub async fn signed_in(&self, headers: &HeaderMap) -> Result<Signed, ConsoleError> {
        let Some(token) = cookie_token(headers) else {
            return Err(ConsoleError::SignIn("sign in with your API key".into()));
        };
        let hash = token_hash(token);
        let db = &self.0.db;
        let Some(row) = db.session(&hash).await? else {
            return Err(ConsoleError::SignIn(
                "your session has ended; sign in again".into(),
            ));
        };
        let now = self.now();
        if now - row.created_at >= MAX_AGE_SECS || now - row.last_seen_at >= IDLE_SECS {
            db.delete_session(&hash).await?;
            return Err(ConsoleError::SignIn(
                "your session has expired; sign in again".into(),
            ));
        }
        let caller = match self
            .0
            .auth
            .verifier()
            .verify_hash_from(row.key_hash, || None)
            .await
            .map_err(|refusal| refusal.failure)
        {
            Ok(caller) if caller.key_id == row.key_id && caller.user_id == row.user_id => caller,
            Ok(_) => {
                db.delete_session(&hash).await?;
                return Err(ConsoleError::SignIn("sign in again".into()));
            }
            Err(AuthFailure::Unavailable) => return Err(ConsoleError::Unavailable),
            Err(failure) => {
                db.delete_session(&hash).await?;
                return Err(ConsoleError::Refused(failure));
            }
        };
        if now - row.last_seen_at >= TOUCH_EVERY_SECS {
            db.touch_session(&hash, now).await?;
        }
        Ok(Signed {
            caller,
            token_hash: hash,
            csrf: csrf_of(token),
        })
    }

    /// Opens a session for a verified key; returns the `Set-Cookie` value.
    pub async fn open_session(
        &self,
        caller: &Caller,
        key_hash: crate::keys::KeyHash,
    ) -> Result<String, ConsoleError> {
        let token = random_token()?;
        let at = self.now();
        let session = NewSession {
            token_hash: token_hash(&token),
            key_id: caller.key_id,
            key_hash,
            user_id: caller.user_id.clone(),
            at,
        };
        self.0
            .db
            .insert_session(&session, at - MAX_AGE_SECS)
            .await?;
        Ok(self.cookie(&token, MAX_AGE_SECS))
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn cleared_cookie(&self) -> String {
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: i64) -> String {
        let secure = if self.0.secure_cookie { "; Secure" } else { "" };
        format!(
            "{COOKIE_NAME}={value}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={max_age}{secure}"
        )
    }

    /// Refuses a POST whose `Origin` is not the console's own (a page on
    /// another site posting a form here). A request without `Origin` (not
    /// from a browser) still needs its CSRF token.
    ///
    /// The console's own pages send `Origin: null`: with `Referrer-Policy:
    /// no-referrer`, browsers serialise the origin of a POST as `null`. So
    /// `null` is accepted only when the browser also says the request is
    /// `Sec-Fetch-Site: same-origin`, and any other `Sec-Fetch-Site` is
    /// refused whatever the `Origin`.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), ConsoleError> {
        let refused = || {
            ConsoleError::Forbidden(
                "this form was sent from another site; nothing was changed".into(),
            )
        };
        let fetch_site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
        if fetch_site.is_some_and(|site| site != b"same-origin") {
            return Err(refused());
        }
        let Some(origin) = headers.get(ORIGIN) else {
            return Ok(());
        };
        if origin.as_bytes() == b"null" {
            return if fetch_site == Some(b"same-origin") {
                Ok(())
            } else {
                Err(refused())
            };
        }
        let own = origin
            .to_str()
            .ok()
            .and_then(super::origin_of)
            .is_some_and(|origin| match &self.0.public_origin {
                Some(public) => origin == *public,
                None => self
                    .base_url(headers)
                    .is_some_and(|base| super::origin_of(&base).is_some_and(|b| b == origin)),
            });
        if own { Ok(()) } else { Err(refused()) }
    }

    /// `scheme://host[:port]` that clients use: the public URL's, else
    /// `http://` and the request's `Host` (already checked by the edge).
    pub fn base_url(&self, headers: &HeaderMap) -> Option<String> {
        if let Some(public) = &self.0.public_origin {
            return Some(public.clone());
        }
        let host = headers.get(HOST)?.to_str().ok()?;
        Some(format!("http://{host}"))
    }

    /// The MCP endpoint clients use.
    pub fn mcp_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.0.public_mcp_url {
            return url.clone();
        }
        format!(
            "{}/mcp",
            self.base_url(headers)
                .unwrap_or_else(|| "http://127.0.0.1:8787".into())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_the_csrf_token_is_bound_to_it() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=1; fm_console=tok; b=2".parse().unwrap());
        assert_eq!(cookie_token(&headers), Some("tok"));
        headers.insert(COOKIE, "fm_console=".parse().unwrap());
        assert_eq!(cookie_token(&headers), None);
        assert_ne!(csrf_of("tok"), csrf_of("tok2"));
        assert_eq!(csrf_of("tok"), csrf_of("tok"));
        assert_eq!(token_hash("x").len(), 64);
    }
}

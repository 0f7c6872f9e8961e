//! Turns a presented key into a [`Caller`], or says why not.

use super::{Caller, UsageRecorder, UserId};
use crate::keys::ApiKey;
use crate::store::{Db, KeyState};
use chrono::Utc;

/// Why a request was not authenticated. The first five are the caller's
/// fault (401); `Unavailable` is ours (503), so clients keep good keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Malformed,
    Unknown,
    Revoked,
    Expired,
    /// A header key and a query key that differ.
    Conflicting,
    Unavailable,
}

impl AuthFailure {
    /// A short description for clients and logs (never key material).
    pub fn description(self) -> &'static str {
        match self {
            AuthFailure::Missing => "no API key was sent",
            AuthFailure::Malformed => "the API key is malformed",
            AuthFailure::Unknown => "the API key is not known",
            AuthFailure::Revoked => "the API key has been revoked",
            AuthFailure::Expired => "the API key has expired",
            AuthFailure::Conflicting => {
                "two different API keys were sent (header and query string)"
            }
            AuthFailure::Unavailable => "the key store is unavailable",
        }
    }
}

/// Verifies keys against the store.
pub struct Verifier {
    db: Db,
    usage: UsageRecorder,
}

impl Verifier {
    pub fn new(db: Db, usage: UsageRecorder) -> Self {
        Self { db, usage }
    }

    /// The shape check first (no query for anything that is not a key), then
    /// the lookup by hash, then state and expiry.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn verify(&self, presented: &str) -> Result<Caller, AuthFailure> {
        let key = ApiKey::parse(presented).map_err(|_| AuthFailure::Malformed)?;
        let record = self
            .db
            .key_by_hash(&key.hash())
            .await
            .map_err(|err| {
                tracing::error!(error = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string), "key lookup failed");
                AuthFailure::Unavailable
            })?
            .ok_or(AuthFailure::Unknown)?;
        let now = Utc::now();
        match record.state(now) {
            KeyState::Active => {}
            KeyState::Revoked => return Err(AuthFailure::Revoked),
            KeyState::Expired => return Err(AuthFailure::Expired),
        }
        self.usage.record(record.key_id, now);
        Ok(Caller {
            user_id: UserId::new(record.user_id),
            key_id: record.key_id,
            key_prefix: record.prefix.into(),
            scopes: record.scopes,
            expires_at: record.expires_at,
        })
    }
}

//! The verified identity of a request, and how tools get it.

use crate::limits::KeyLimits;
use crate::scopes::{Scope, Scopes};
use crate::store::KeyRecord;
use crate::tenant::UserId;
use chrono::{DateTime, Utc};
use rmcp::ErrorData;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use std::sync::Arc;

/// Who is calling: the identity of a verified key. One value per key,
/// behind an `Arc`: the verification cache holds it, and a cache hit hands
/// the request a clone of the pointer, which the auth layer puts into the
/// request extensions for the tools.
#[derive(Clone, Debug)]
pub struct Caller(Arc<Identity>);

/// What a verified key says about its caller (its row's other fields stay
/// in the store's `KeyRecord`).
#[derive(Debug)]
pub struct Identity {
    pub user_id: UserId,
    pub key_id: i64,
    /// The key's first 12 characters, safe to show and log.
    pub key_prefix: String,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
    /// The key's rate, quota and allowed addresses, as read with it: the
    /// auth layer reads them as `caller.limits`.
    pub limits: KeyLimits,
}

impl Caller {
    pub fn new(identity: Identity) -> Self {
        Self(Arc::new(identity))
    }

    /// The identity of a key row.
    pub fn of_record(record: KeyRecord) -> Self {
        Self::new(Identity {
            user_id: UserId::new(record.user_id),
            key_id: record.key_id,
            key_prefix: record.prefix,
            scopes: record.scopes,
            expires_at: record.expires_at,
            limits: record.limits,
        })
    }

    /// Whether this caller may do what `scope` guards.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.allows(scope)
    }

    /// The caller of an rmcp request context: the auth layer stored it in the
    /// HTTP request's extensions, which rmcp hands through as `Parts`.
    /// Borrowed, so that a handler that only checks it clones nothing.
    pub fn of_request(
        ctx: &rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<&Self, ErrorData> {
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            // Unreachable behind the auth layer; refuse rather than guess.
            .ok_or_else(|| ErrorData::invalid_request("request is not authenticated", None))
    }
}

impl std::ops::Deref for Caller {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.0
    }
}

/// How a tool takes its caller (`caller: Caller`): the one clone per call.
impl<C: AsRequestContext> FromContextPart<C> for Caller {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        Caller::of_request(context.as_request_context()).cloned()
    }
}

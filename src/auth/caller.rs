//! The verified identity of a request, and how tools get it.

use crate::scopes::{Scope, Scopes};
use crate::tenant::UserId;
use chrono::{DateTime, Utc};
use rmcp::ErrorData;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use std::sync::Arc;

/// Who is calling: put into the request extensions by the auth layer.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: UserId,
    pub key_id: i64,
    /// The key's first 12 characters, safe to show and log.
    pub key_prefix: Arc<str>,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Caller {
    /// Whether this caller may do what `scope` guards.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.allows(scope)
    }

    /// The caller of an rmcp request context: the auth layer stored it in the
    /// HTTP request's extensions, which rmcp hands through as `Parts`.
    pub fn from_request_context(
        ctx: &rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<Self, ErrorData> {
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .cloned()
            // Unreachable behind the auth layer; refuse rather than guess.
            .ok_or_else(|| ErrorData::invalid_request("request is not authenticated", None))
    }
}

impl<C: AsRequestContext> FromContextPart<C> for Caller {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        Caller::from_request_context(context.as_request_context())
    }
}

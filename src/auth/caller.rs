//! The verified identity of a request, and how tools get it.

use crate::scopes::Scope;
pub use crate::store::Identity;
use crate::store::KeyRecord;
use rmcp::ErrorData;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use std::sync::Arc;

/// Who is calling: the identity of a verified key. One value per key,
/// behind an `Arc`: the verification cache holds it, and a cache hit hands
/// the request a clone of the pointer, which the auth layer puts into the
/// request extensions for the tools.
#[derive(Clone, Debug)]
pub struct Caller(Arc<Identity>);

impl Caller {
    pub fn new(identity: Identity) -> Self {
        Self(Arc::new(identity))
    }

    /// The identity of a key row.
    pub fn of_record(record: KeyRecord) -> Self {
        Self::new(record.identity)
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

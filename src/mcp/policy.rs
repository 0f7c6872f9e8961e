//! Which scope each tool needs: declared once here, decided by [`check`].

use crate::auth::Caller;
use crate::scopes::Scope;

/// What a tool requires of the caller's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any valid key.
    AnyKey,
    /// A key whose scopes allow this one (`admin` allows everything).
    Needs(Scope),
}

/// Every tool the server offers and what it needs. A tool missing here is
/// refused to everyone (a test checks that the table and the router agree).
pub const TOOL_ACCESS: &[(&str, Access)] = &[
    ("whoami", Access::AnyKey),
    // Key administration.
    ("admin_create_api_key", Access::Needs(Scope::Admin)),
    ("admin_list_api_keys", Access::Needs(Scope::Admin)),
    ("admin_revoke_api_key", Access::Needs(Scope::Admin)),
    ("admin_rotate_api_key", Access::Needs(Scope::Admin)),
];

/// What `tool` requires, or `None` if the server has no such tool.
pub fn access_for(tool: &str) -> Option<Access> {
    TOOL_ACCESS
        .iter()
        .find(|(name, _)| *name == tool)
        .map(|(_, access)| *access)
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    UnknownTool,
    MissingScope(Scope),
}

/// The one decision: may `caller` call `tool`?
pub fn check(caller: &Caller, tool: &str) -> Result<(), Denied> {
    match access_for(tool) {
        None => Err(Denied::UnknownTool),
        Some(Access::AnyKey) => Ok(()),
        Some(Access::Needs(scope)) if caller.allows(scope) => Ok(()),
        Some(Access::Needs(scope)) => Err(Denied::MissingScope(scope)),
    }
}

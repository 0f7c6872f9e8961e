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
    ("admin_set_key_limits", Access::Needs(Scope::Admin)),
    // Usage reports: any key's (admin), the caller's own tenant's (any key).
    ("admin_key_usage", Access::Needs(Scope::Admin)),
    ("my_usage", Access::AnyKey),
    // Orders.
    ("create_order", Access::Needs(Scope::OrdersWrite)),
    ("count_orders", Access::Needs(Scope::OrdersRead)),
    ("fetch_orders", Access::Needs(Scope::OrdersRead)),
    ("get_order_details", Access::Needs(Scope::OrdersRead)),
    ("search_orders", Access::Needs(Scope::OrdersRead)),
    ("get_incomplete_orders", Access::Needs(Scope::OrdersRead)),
    ("update_order", Access::Needs(Scope::OrdersWrite)),
    ("delete_order", Access::Needs(Scope::OrdersWrite)),
    ("delete_all_orders", Access::Needs(Scope::OrdersWrite)),
    // Drivers.
    ("create_driver", Access::Needs(Scope::DriversWrite)),
    ("count_drivers", Access::Needs(Scope::DriversRead)),
    ("fetch_drivers", Access::Needs(Scope::DriversRead)),
    ("get_driver_details", Access::Needs(Scope::DriversRead)),
    ("search_drivers", Access::Needs(Scope::DriversRead)),
    ("get_available_drivers", Access::Needs(Scope::DriversRead)),
    ("update_driver", Access::Needs(Scope::DriversWrite)),
    ("delete_driver", Access::Needs(Scope::DriversWrite)),
    ("delete_all_drivers", Access::Needs(Scope::DriversWrite)),
    // Assignments.
    ("create_assignment", Access::Needs(Scope::AssignmentsManage)),
    ("auto_assign_order", Access::Needs(Scope::AssignmentsManage)),
    (
        "intelligent_assign_order",
        Access::Needs(Scope::AssignmentsManage),
    ),
    (
        "get_assignment_details",
        Access::Needs(Scope::AssignmentsRead),
    ),
    ("update_assignment", Access::Needs(Scope::AssignmentsManage)),
    ("unassign_order", Access::Needs(Scope::AssignmentsManage)),
    ("complete_delivery", Access::Needs(Scope::AssignmentsManage)),
    ("fail_delivery", Access::Needs(Scope::AssignmentsManage)),
    // Routing and the tenant's saved places.
    ("geocode_address", Access::Needs(Scope::RoutingUse)),
    ("calculate_route", Access::Needs(Scope::RoutingUse)),
    (
        "calculate_intelligent_route",
        Access::Needs(Scope::RoutingUse),
    ),
    ("save_place", Access::Needs(Scope::RoutingUse)),
    ("list_places", Access::Needs(Scope::RoutingUse)),
    ("delete_place", Access::Needs(Scope::RoutingUse)),
];

/// Every resource and what reading it needs.
pub const RESOURCE_ACCESS: &[(&str, Access)] = &[
    ("orders://all", Access::Needs(Scope::OrdersRead)),
    ("drivers://all", Access::Needs(Scope::DriversRead)),
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
    decide(caller, access_for(tool))
}

/// May `caller` read the resource `uri`? (`UnknownTool`: no such resource.)
pub fn check_resource(caller: &Caller, uri: &str) -> Result<(), Denied> {
    let access = RESOURCE_ACCESS
        .iter()
        .find(|(name, _)| *name == uri)
        .map(|(_, access)| *access);
    decide(caller, access)
}

fn decide(caller: &Caller, access: Option<Access>) -> Result<(), Denied> {
    match access {
        None => Err(Denied::UnknownTool),
        Some(Access::AnyKey) => Ok(()),
        Some(Access::Needs(scope)) if caller.allows(scope) => Ok(()),
        Some(Access::Needs(scope)) => Err(Denied::MissingScope(scope)),
    }
}

//! The fleet tools (orders, drivers, assignments) and the `orders://all`
//! and `drivers://all` resources. Every call acts for the verified caller's
//! tenant only; the scope each tool needs is in `policy.rs`.

mod assign_route;
mod assignments;
mod drivers;
mod input;
mod orders;
pub(super) mod resources;
mod update_args;

/// How many rows there are, per status.
#[derive(Debug, serde::Serialize, rmcp::schemars::JsonSchema)]
pub struct Counted {
    pub success: bool,
    pub total: i64,
    /// Count per status (statuses with no rows are left out).
    pub by_status: std::collections::BTreeMap<String, i64>,
}

impl From<crate::fleet::StatusCounts> for Counted {
    fn from(counts: crate::fleet::StatusCounts) -> Self {
        Counted {
            success: true,
            total: counts.total,
            by_status: counts.by_status.into_iter().collect(),
        }
    }
}

/// What a delete removed.
#[derive(Debug, serde::Serialize, rmcp::schemars::JsonSchema)]
pub struct Deleted {
    pub success: bool,
    /// How many rows were deleted.
    pub deleted: u64,
    pub message: String,
}

//! The driver tools.

use super::input::{self, SortOrder};
use super::update_args::UpdateDriverArgs;
use super::{Counted, Deleted};
use crate::auth::Caller;
use crate::fleet::*;
use crate::mcp::args::parse;
use crate::mcp::error::ToolError;
use crate::mcp::json::Json;
use crate::mcp::{FleetMind, input_schema};
use rmcp::model::JsonObject;
use rmcp::{schemars, tool, tool_router};
use serde::{Deserialize, Serialize};

/// One driver.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DriverResult {
    pub success: bool,
    pub driver: Driver,
}

/// A list of drivers.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DriverList {
    pub success: bool,
    /// How many drivers this answer holds.
    pub count: usize,
    pub drivers: Vec<Driver>,
}

impl DriverList {
    fn of(drivers: Vec<Driver>) -> Json<Self> {
        Json(DriverList {
            success: true,
            count: drivers.len(),
            drivers,
        })
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CountDriversArgs {
    status: Option<DriverStatus>,
    vehicle_type: Option<VehicleType>,
}

/// How `fetch_drivers` sorts.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum DriverSortBy {
    CreatedAt,
    Name,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct FetchDriversArgs {
    /// How many drivers (1 to 100, default 10).
    limit: Option<i64>,
    /// How many to skip (default 0).
    offset: Option<i64>,
    status: Option<DriverStatus>,
    vehicle_type: Option<VehicleType>,
    /// created_at (default) or name.
    sort_by: Option<DriverSortBy>,
    /// ASC or DESC (default).
    sort_order: Option<SortOrder>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DriverIdArgs {
    /// The driver's id (DRV-…).
    driver_id: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    /// Text to find in the driver id, name, email, phone or plate (case-insensitive).
    search_term: String,
    /// At most this many results (1 to 100, default 50).
    limit: Option<i64>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct LimitArgs {
    /// At most this many (1 to 100, default 20).
    limit: Option<i64>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DeleteDriverArgs {
    /// The driver to delete (DRV-…).
    driver_id: String,
    /// Must be true.
    confirm: bool,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DeleteAllDriversArgs {
    /// Must be true.
    confirm: bool,
    /// Only drivers of this status; default all.
    status: Option<DriverStatus>,
}

#[tool_router(router = drivers_router, vis = "pub(crate)")]
impl FleetMind {
    #[tool(
        description = "Add a driver. They start 'active' (or the status given) with an id like DRV-1A2B3C4D5E6F.",
        input_schema = input_schema::<NewDriver>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn create_driver(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<DriverResult>, ToolError> {
        let new: NewDriver = parse(args)?;
        let driver = self
            .db
            .create_driver(&caller.user_id, new, self.clock.now())
            .await?;
        Ok(Json(DriverResult {
            success: true,
            driver,
        }))
    }

    #[tool(
        description = "Count your drivers, in total and per status, optionally filtered by status or vehicle_type.",
        input_schema = input_schema::<CountDriversArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn count_drivers(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<Counted>, ToolError> {
        let a: CountDriversArgs = parse(args)?;
        let filter = DriverFilter {
            status: a.status,
            vehicle_type: a.vehicle_type,
        };
        Ok(Json(
            self.db
                .count_drivers(&caller.user_id, &filter)
                .await?
                .into(),
        ))
    }

    #[tool(
        description = "List your drivers, a page at a time (limit 1-100, default 10; offset), optionally filtered by status and vehicle_type, sorted by created_at (default) or name, ASC or DESC (default).",
        input_schema = input_schema::<FetchDriversArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn fetch_drivers(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<DriverList>, ToolError> {
        let a: FetchDriversArgs = parse(args)?;
        let query = DriverQuery {
            filter: DriverFilter {
                status: a.status,
                vehicle_type: a.vehicle_type,
            },
            sort: match a.sort_by {
                None | Some(DriverSortBy::CreatedAt) => DriverSort::CreatedAt,
                Some(DriverSortBy::Name) => DriverSort::Name,
            },
            descending: a.sort_order.unwrap_or_default() == SortOrder::Desc,
            limit: input::limit(a.limit, 10, 100)?,
            offset: input::offset(a.offset)?,
        };
        Ok(DriverList::of(
            self.db.drivers(&caller.user_id, &query).await?,
        ))
    }

    #[tool(
        description = "Show one driver by their id.",
        input_schema = input_schema::<DriverIdArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_driver_details(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<DriverResult>, ToolError> {
        let a: DriverIdArgs = parse(args)?;
        let id = input::id("driver_id", &a.driver_id)?;
        let driver = self
            .db
            .driver(&caller.user_id, &id)
            .await
            .map_err(|e| ToolError::store(e, &[("driver", &id)]))?;
        Ok(Json(DriverResult {
            success: true,
            driver,
        }))
    }

    #[tool(
        description = "Find your drivers whose id, name, email, phone or vehicle plate contain the search term (case-insensitive), newest first.",
        input_schema = input_schema::<SearchArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_drivers(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<DriverList>, ToolError> {
        let a: SearchArgs = parse(args)?;
        let term = input::search_term(&a.search_term)?;
        let limit = input::limit(a.limit, 50, 100)?;
        Ok(DriverList::of(
            self.db
                .search_drivers(&caller.user_id, &term, limit)
                .await?,
        ))
    }

    #[tool(
        description = "List your drivers who can take an order now (status 'active'), by name.",
        input_schema = input_schema::<LimitArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_available_drivers(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<DriverList>, ToolError> {
        let a: LimitArgs = parse(args)?;
        let query = DriverQuery {
            filter: DriverFilter {
                status: Some(DriverStatus::Active),
                vehicle_type: None,
            },
            sort: DriverSort::Name,
            descending: false,
            limit: input::limit(a.limit, 20, 100)?,
            offset: 0,
        };
        Ok(DriverList::of(
            self.db.drivers(&caller.user_id, &query).await?,
        ))
    }

    #[tool(
        description = "Change a driver's fields, location or status (active, offline, unavailable; a busy driver's status follows their assignment).",
        input_schema = input_schema::<UpdateDriverArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn update_driver(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<DriverResult>, ToolError> {
        let a: UpdateDriverArgs = parse(args)?;
        let id = input::id("driver_id", &a.driver_id)?;
        let driver = self
            .db
            .update_driver(&caller.user_id, &id, a.patch, self.clock.now())
            .await
            .map_err(|e| ToolError::store(e, &[("driver", &id)]))?;
        Ok(Json(DriverResult {
            success: true,
            driver,
        }))
    }

    #[tool(
        description = "Delete one driver (and their finished assignments). Needs confirm: true. Refused while the driver has an open assignment.",
        input_schema = input_schema::<DeleteDriverArgs>(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn delete_driver(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<Deleted>, ToolError> {
        let a: DeleteDriverArgs = parse(args)?;
        let id = input::id("driver_id", &a.driver_id)?;
        input::confirmed(a.confirm, "delete the driver")?;
        self.db
            .delete_driver(&caller.user_id, &id)
            .await
            .map_err(|e| ToolError::store(e, &[("driver", &id)]))?;
        Ok(Json(Deleted {
            success: true,
            deleted: 1,
            message: format!("driver {id} deleted"),
        }))
    }

    #[tool(
        description = "Delete all your drivers, or all of one status. Needs confirm: true. Refused while any of them has an open assignment. Touches only your own drivers.",
        input_schema = input_schema::<DeleteAllDriversArgs>(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn delete_all_drivers(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<Deleted>, ToolError> {
        let a: DeleteAllDriversArgs = parse(args)?;
        input::confirmed(a.confirm, "delete drivers")?;
        let deleted = self
            .db
            .delete_all_drivers(&caller.user_id, a.status)
            .await?;
        tracing::info!(user.id = %caller.user_id, deleted, "fleet: all drivers deleted");
        Ok(Json(Deleted {
            success: true,
            deleted,
            message: format!("{deleted} drivers deleted"),
        }))
    }
}

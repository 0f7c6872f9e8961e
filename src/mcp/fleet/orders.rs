//! The order tools.

use super::input::{self, SortOrder};
use super::update_args::UpdateOrderArgs;
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

/// One order.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OrderResult {
    pub success: bool,
    pub order: Order,
}

/// A list of orders.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OrderList {
    pub success: bool,
    /// How many orders this answer holds.
    pub count: usize,
    pub orders: Vec<Order>,
}

impl OrderList {
    fn of(orders: Vec<Order>) -> Json<Self> {
        Json(OrderList {
            success: true,
            count: orders.len(),
            orders,
        })
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CountOrdersArgs {
    status: Option<OrderStatus>,
    priority: Option<Priority>,
    payment_status: Option<PaymentStatus>,
    /// Only orders of this driver.
    assigned_driver_id: Option<String>,
}

/// How `fetch_orders` sorts.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum OrderSortBy {
    CreatedAt,
    Priority,
    TimeWindowStart,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct FetchOrdersArgs {
    /// How many orders (1 to 100, default 10).
    limit: Option<i64>,
    /// How many to skip (default 0).
    offset: Option<i64>,
    status: Option<OrderStatus>,
    priority: Option<Priority>,
    /// created_at (default), priority or time_window_start.
    sort_by: Option<OrderSortBy>,
    /// ASC or DESC (default).
    sort_order: Option<SortOrder>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct OrderIdArgs {
    /// The order's id (ORD-…).
    order_id: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    /// Text to find in the order id, customer name, email or phone (case-insensitive).
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
struct DeleteOrderArgs {
    /// The order to delete (ORD-…).
    order_id: String,
    /// Must be true.
    confirm: bool,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DeleteAllOrdersArgs {
    /// Must be true.
    confirm: bool,
    /// Only orders of this status; default all.
    status: Option<OrderStatus>,
}

#[tool_router(router = orders_router, vis = "pub(crate)")]
impl FleetMind {
    #[tool(
        description = "Create a delivery order. It starts as 'pending' and gets an id like ORD-1A2B3C4D5E6F.",
        input_schema = input_schema::<NewOrder>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn create_order(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<OrderResult>, ToolError> {
        let new: NewOrder = parse(args)?;
        let order = self
            .db
            .create_order(&caller.user_id, new, self.clock.now())
            .await?;
        Ok(Json(OrderResult {
            success: true,
            order,
        }))
    }

    #[tool(
        description = "Count your orders, in total and per status, optionally filtered by status, priority, payment_status or assigned_driver_id.",
        input_schema = input_schema::<CountOrdersArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn count_orders(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<Counted>, ToolError> {
        let a: CountOrdersArgs = parse(args)?;
        let filter = OrderFilter {
            status: a.status,
            priority: a.priority,
            payment_status: a.payment_status,
            assigned_driver_id: a
                .assigned_driver_id
                .map(|id| input::id("assigned_driver_id", &id))
                .transpose()?,
        };
        Ok(Json(
            self.db.count_orders(&caller.user_id, &filter).await?.into(),
        ))
    }

    #[tool(
        description = "List your orders, a page at a time (limit 1-100, default 10; offset), optionally filtered by status and priority, sorted by created_at (default), priority or time_window_start, ASC or DESC (default).",
        input_schema = input_schema::<FetchOrdersArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn fetch_orders(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<OrderList>, ToolError> {
        let a: FetchOrdersArgs = parse(args)?;
        let query = OrderQuery {
            filter: OrderFilter {
                status: a.status,
                priority: a.priority,
                ..Default::default()
            },
            sort: match a.sort_by {
                None | Some(OrderSortBy::CreatedAt) => OrderSort::CreatedAt,
                Some(OrderSortBy::Priority) => OrderSort::Priority,
                Some(OrderSortBy::TimeWindowStart) => OrderSort::TimeWindowStart,
            },
            descending: a.sort_order.unwrap_or_default() == SortOrder::Desc,
            limit: input::limit(a.limit, 10, 100)?,
            offset: input::offset(a.offset)?,
        };
        Ok(OrderList::of(
            self.db.orders(&caller.user_id, &query).await?,
        ))
    }

    #[tool(
        description = "Show one order by its id.",
        input_schema = input_schema::<OrderIdArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_order_details(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<OrderResult>, ToolError> {
        let a: OrderIdArgs = parse(args)?;
        let id = input::id("order_id", &a.order_id)?;
        let order = self
            .db
            .order(&caller.user_id, &id)
            .await
            .map_err(|e| ToolError::store(e, &[("order", &id)]))?;
        Ok(Json(OrderResult {
            success: true,
            order,
        }))
    }

    #[tool(
        description = "Find your orders whose id, customer name, email or phone contain the search term (case-insensitive), newest first.",
        input_schema = input_schema::<SearchArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_orders(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<OrderList>, ToolError> {
        let a: SearchArgs = parse(args)?;
        let term = input::search_term(&a.search_term)?;
        let limit = input::limit(a.limit, 50, 100)?;
        Ok(OrderList::of(
            self.db.search_orders(&caller.user_id, &term, limit).await?,
        ))
    }

    #[tool(
        description = "List your orders that still need delivering (pending, assigned, in_transit), most urgent first, then by expected delivery time.",
        input_schema = input_schema::<LimitArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_incomplete_orders(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<OrderList>, ToolError> {
        let a: LimitArgs = parse(args)?;
        let limit = input::limit(a.limit, 20, 100)?;
        Ok(OrderList::of(
            self.db.open_orders(&caller.user_id, limit).await?,
        ))
    }

    #[tool(
        description = "Change an order's fields. status may be set to 'cancelled' (a pending or failed order) or 'pending' (reopen a cancelled or failed one); assigned, in_transit, delivered and failed follow the assignment tools.",
        input_schema = input_schema::<UpdateOrderArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn update_order(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<OrderResult>, ToolError> {
        let a: UpdateOrderArgs = parse(args)?;
        let id = input::id("order_id", &a.order_id)?;
        let order = self
            .db
            .update_order(&caller.user_id, &id, a.patch, self.clock.now())
            .await
            .map_err(|e| ToolError::store(e, &[("order", &id)]))?;
        Ok(Json(OrderResult {
            success: true,
            order,
        }))
    }

    #[tool(
        description = "Delete one order (and its finished assignments). Needs confirm: true. Refused while the order has an open assignment.",
        input_schema = input_schema::<DeleteOrderArgs>(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn delete_order(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<Deleted>, ToolError> {
        let a: DeleteOrderArgs = parse(args)?;
        let id = input::id("order_id", &a.order_id)?;
        input::confirmed(a.confirm, "delete the order")?;
        self.db
            .delete_order(&caller.user_id, &id)
            .await
            .map_err(|e| ToolError::store(e, &[("order", &id)]))?;
        Ok(Json(Deleted {
            success: true,
            deleted: 1,
            message: format!("order {id} deleted"),
        }))
    }

    #[tool(
        description = "Delete all your orders, or all of one status. Needs confirm: true. Refused while any of them has an open assignment. Touches only your own orders.",
        input_schema = input_schema::<DeleteAllOrdersArgs>(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn delete_all_orders(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<Deleted>, ToolError> {
        let a: DeleteAllOrdersArgs = parse(args)?;
        input::confirmed(a.confirm, "delete orders")?;
        let deleted = self.db.delete_all_orders(&caller.user_id, a.status).await?;
        tracing::info!(user.id = %caller.user_id, deleted, "fleet: all orders deleted");
        Ok(Json(Deleted {
            success: true,
            deleted,
            message: format!("{deleted} orders deleted"),
        }))
    }
}

//! The assignment tools: giving orders to drivers and following the
//! delivery through; every status change cascades to the order and the
//! driver in one transaction (see the store).

use super::input;
use crate::auth::Caller;
use crate::fleet::choose::{self, DriverScore, Weights};
use crate::fleet::*;
use crate::mcp::args::parse;
use crate::mcp::error::ToolError;
use crate::mcp::{FleetMind, input_schema};
use crate::tenant::UserId;
use rmcp::model::JsonObject;
use rmcp::{Json, schemars, tool, tool_router};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// An assignment with its order and driver as they are after the change.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AssignmentResult {
    pub success: bool,
    pub assignment: Assignment,
    pub order: Order,
    pub driver: Driver,
    pub message: String,
}

/// What `auto_assign_order` did and why.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AutoAssigned {
    pub success: bool,
    pub assignment: Assignment,
    pub order: Order,
    pub driver: Driver,
    /// Why this driver.
    pub reason: String,
    pub distance_km: f64,
    pub estimated_duration_minutes: i64,
    /// Active drivers looked at.
    pub candidates: usize,
    /// Active drivers who could not carry the order, and why.
    pub ruled_out: Vec<String>,
}

/// What `intelligent_assign_order` did and why.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct IntelligentlyAssigned {
    pub success: bool,
    pub assignment: Assignment,
    pub order: Order,
    pub driver: Driver,
    /// Why this driver, in words.
    pub explanation: String,
    /// How much each factor counted for this order's priority.
    pub weights: Weights,
    /// The best (at most five) suitable drivers with their scores, best first.
    pub ranking: Vec<DriverScore>,
    /// Active drivers who could not carry the order, and why.
    pub ruled_out: Vec<String>,
}

/// Assignments, newest first.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AssignmentList {
    pub success: bool,
    pub count: usize,
    pub assignments: Vec<Assignment>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateAssignmentArgs {
    /// A pending order (ORD-…).
    order_id: String,
    /// An active driver who can carry it (DRV-…).
    driver_id: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct OrderIdArgs {
    /// A pending order (ORD-…).
    order_id: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DetailsArgs {
    /// One assignment (ASN-…). Give exactly one of assignment_id, order_id, driver_id.
    assignment_id: Option<String>,
    /// Every assignment of this order.
    order_id: Option<String>,
    /// Every assignment of this driver.
    driver_id: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateAssignmentArgs {
    /// The assignment (ASN-…).
    assignment_id: String,
    /// in_progress (driver on the way: order in_transit), completed (as complete_delivery) or cancelled (as unassign_order). For failed use fail_delivery.
    status: Option<AssignmentStatus>,
    /// ISO 8601.
    actual_arrival: Option<String>,
    /// Metres actually driven.
    actual_distance_meters: Option<f64>,
    /// At most 2000 characters.
    notes: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UnassignArgs {
    /// The assignment to take back (ASN-…); it must not be in progress.
    assignment_id: String,
    /// If given, must be true.
    confirm: Option<bool>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CompleteArgs {
    /// The assignment delivered (ASN-…).
    assignment_id: String,
    /// Must be true.
    confirm: bool,
    /// Metres actually driven.
    actual_distance_meters: Option<f64>,
    /// At most 2000 characters.
    notes: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct FailArgs {
    /// The assignment that failed (ASN-…).
    assignment_id: String,
    /// Where the driver is now.
    current_address: String,
    #[schemars(range(min = -90, max = 90))]
    current_lat: f64,
    #[schemars(range(min = -180, max = 180))]
    current_lng: f64,
    failure_reason: FailureReason,
    /// Must be true.
    confirm: bool,
    /// At most 2000 characters.
    notes: Option<String>,
}

impl FleetMind {
    /// The assignment with its order and driver as they are now.
    async fn with_parties(
        &self,
        user: &UserId,
        assignment: Assignment,
        message: String,
    ) -> Result<Json<AssignmentResult>, ToolError> {
        tracing::info!(
            user.id = %user,
            assignment.id = %assignment.assignment_id,
            assignment.status = %assignment.status,
            order.id = %assignment.order_id,
            driver.id = %assignment.driver_id,
            "fleet: assignment changed"
        );
        let order = self.db.order(user, &assignment.order_id).await?;
        let driver = self.db.driver(user, &assignment.driver_id).await?;
        Ok(Json(AssignmentResult {
            success: true,
            assignment,
            order,
            driver,
            message,
        }))
    }

    /// A pending order and the active drivers who might take it.
    async fn order_and_candidates(
        &self,
        user: &UserId,
        order_id: &str,
    ) -> Result<(Order, Vec<Driver>), ToolError> {
        let order = self
            .db
            .order(user, order_id)
            .await
            .map_err(|e| ToolError::store(e, &[("order", order_id)]))?;
        rules::check_assignable(&order)?;
        let query = DriverQuery {
            filter: DriverFilter {
                status: Some(DriverStatus::Active),
                vehicle_type: None,
            },
            sort: DriverSort::CreatedAt,
            descending: false,
            limit: 1000,
            offset: 0,
        };
        let drivers = self.db.drivers(user, &query).await?;
        Ok((order, drivers))
    }

    async fn step(
        &self,
        user: &UserId,
        id: &str,
        change: AssignmentChange,
        message: String,
    ) -> Result<Json<AssignmentResult>, ToolError> {
        let assignment = self
            .db
            .change_assignment(user, id, change)
            .await
            .map_err(|e| ToolError::store(e, &[("assignment", id)]))?;
        self.with_parties(user, assignment, message).await
    }
}

fn no_driver(order_id: &str, candidates: usize, ruled_out: &[String]) -> ToolError {
    ToolError::Refused(if candidates == 0 {
        format!("no driver is available for order {order_id}: none is active")
    } else {
        format!(
            "no driver can carry order {order_id}: {}",
            ruled_out.join("; ")
        )
    })
}

#[tool_router(router = assignments_router, vis = "pub(crate)")]
impl FleetMind {
    #[tool(
        description = "Give a pending order to an active driver who can carry it (capacity, cold storage). The order becomes 'assigned' and the driver 'busy'.",
        input_schema = input_schema::<CreateAssignmentArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn create_assignment(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<AssignmentResult>, ToolError> {
        let a: CreateAssignmentArgs = parse(args)?;
        let order_id = input::id("order_id", &a.order_id)?;
        let driver_id = input::id("driver_id", &a.driver_id)?;
        let assignment = self
            .db
            .assign(&caller.user_id, &order_id, &driver_id)
            .await
            .map_err(|e| ToolError::store(e, &[("order", &order_id), ("driver", &driver_id)]))?;
        let message = format!("order {order_id} assigned to driver {driver_id}");
        self.with_parties(&caller.user_id, assignment, message)
            .await
    }

    #[tool(
        description = "Assign a pending order to the nearest active driver who can carry it (straight-line distance; capacity and cold storage respected). Returns the reason, distance_km and estimated duration.",
        input_schema = input_schema::<OrderIdArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn auto_assign_order(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<AutoAssigned>, ToolError> {
        let a: OrderIdArgs = parse(args)?;
        let order_id = input::id("order_id", &a.order_id)?;
        let user = &caller.user_id;
        let (order, drivers) = self.order_and_candidates(user, &order_id).await?;
        let (best, ruled_out) = choose::nearest(&order, &drivers);
        let Some((driver, km)) = best else {
            return Err(no_driver(&order_id, drivers.len(), &ruled_out));
        };
        let assignment = self
            .db
            .assign(user, &order_id, &driver.driver_id)
            .await
            .map_err(|e| ToolError::store(e, &[("order", &order_id)]))?;
        let reason = format!(
            "nearest active driver who can carry the order: {} ({}), {km:.1} km away by {}; {} active driver(s) considered, {} could not carry it",
            driver.name,
            driver.driver_id,
            driver.vehicle_type,
            drivers.len(),
            ruled_out.len()
        );
        let Json(done) = self.with_parties(user, assignment, String::new()).await?;
        Ok(Json(AutoAssigned {
            success: true,
            distance_km: choose::round3(km),
            estimated_duration_minutes: (done.assignment.route_duration_seconds + 59) / 60,
            assignment: done.assignment,
            order: done.order,
            driver: done.driver,
            reason,
            candidates: drivers.len(),
            ruled_out,
        }))
    }

    #[tool(
        description = "Assign a pending order to the best active driver by a deterministic multi-factor score: distance (haversine), vehicle fit, capacity headroom, wanted skills (fragile_handler, express_delivery, overnight), recent workload and urgency (arrival against the promised time). Returns the ranking and an explanation.",
        input_schema = input_schema::<OrderIdArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn intelligent_assign_order(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<IntelligentlyAssigned>, ToolError> {
        let a: OrderIdArgs = parse(args)?;
        let order_id = input::id("order_id", &a.order_id)?;
        let user = &caller.user_id;
        let (order, drivers) = self.order_and_candidates(user, &order_id).await?;
        let now = rules::now();
        let recent: HashMap<String, i64> = self
            .db
            .assignments_since(user, rules::later_by_minutes(now, -24 * 60))
            .await?
            .into_iter()
            .collect();
        let (mut ranking, ruled_out) = choose::rank(&order, &drivers, &recent, now);
        let Some((best, rest)) = ranking.split_first() else {
            return Err(no_driver(&order_id, drivers.len(), &ruled_out));
        };
        let explanation = choose::explain(&order, best, rest.first(), ruled_out.len());
        let assignment = self
            .db
            .assign(user, &order_id, &best.driver_id)
            .await
            .map_err(|e| ToolError::store(e, &[("order", &order_id)]))?;
        ranking.truncate(5);
        let Json(done) = self.with_parties(user, assignment, String::new()).await?;
        Ok(Json(IntelligentlyAssigned {
            success: true,
            assignment: done.assignment,
            order: done.order,
            driver: done.driver,
            explanation,
            weights: choose::weights(order.priority),
            ranking,
            ruled_out,
        }))
    }

    #[tool(
        description = "Show assignments: one by assignment_id, or all of an order (order_id) or of a driver (driver_id), newest first. Give exactly one of the three.",
        input_schema = input_schema::<DetailsArgs>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_assignment_details(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<AssignmentList>, ToolError> {
        let a: DetailsArgs = parse(args)?;
        let user = &caller.user_id;
        let assignments = match (a.assignment_id, a.order_id, a.driver_id) {
            (Some(id), None, None) => {
                let id = input::id("assignment_id", &id)?;
                vec![
                    self.db
                        .assignment(user, &id)
                        .await
                        .map_err(|e| ToolError::store(e, &[("assignment", &id)]))?,
                ]
            }
            (None, Some(id), None) => {
                let id = input::id("order_id", &id)?;
                self.db
                    .assignments_of_order(user, &id)
                    .await
                    .map_err(|e| ToolError::store(e, &[("order", &id)]))?
            }
            (None, None, Some(id)) => {
                let id = input::id("driver_id", &id)?;
                self.db
                    .assignments_of_driver(user, &id)
                    .await
                    .map_err(|e| ToolError::store(e, &[("driver", &id)]))?
            }
            _ => {
                return Err(ToolError::Refused(
                    "give exactly one of assignment_id, order_id or driver_id".into(),
                ));
            }
        };
        Ok(Json(AssignmentList {
            success: true,
            count: assignments.len(),
            assignments,
        }))
    }

    #[tool(
        description = "Change an assignment: status in_progress (order in_transit), completed (order delivered, driver active at the delivery point) or cancelled (order pending, driver active); actual_arrival, actual_distance_meters, notes.",
        input_schema = input_schema::<UpdateAssignmentArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn update_assignment(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<AssignmentResult>, ToolError> {
        let a: UpdateAssignmentArgs = parse(args)?;
        let id = input::id("assignment_id", &a.assignment_id)?;
        let step = match a.status {
            None => None,
            Some(AssignmentStatus::InProgress) => Some(AssignmentStep::Start),
            Some(AssignmentStatus::Completed) => Some(AssignmentStep::Complete),
            Some(AssignmentStatus::Cancelled) => Some(AssignmentStep::Cancel),
            Some(AssignmentStatus::Failed) => {
                return Err(ToolError::Refused(
                    "status: use fail_delivery to fail a delivery (it needs the driver's location and a failure_reason)".into(),
                ));
            }
            Some(AssignmentStatus::Active) => {
                return Err(ToolError::Refused(
                    "status: an assignment cannot go back to active; use in_progress, completed or cancelled".into(),
                ));
            }
        };
        let change = AssignmentChange {
            step,
            actual_arrival: input::opt_time("actual_arrival", a.actual_arrival.as_deref())?,
            actual_distance_meters: a.actual_distance_meters,
            notes: a.notes,
        };
        if change == AssignmentChange::default() {
            return Err(ToolError::Refused(
                "nothing to change: give status, actual_arrival, actual_distance_meters or notes"
                    .into(),
            ));
        }
        self.step(
            &caller.user_id,
            &id,
            change,
            format!("assignment {id} updated"),
        )
        .await
    }

    #[tool(
        description = "Take an order back from its driver (not once the delivery is in progress): the assignment becomes 'cancelled', the order 'pending' and the driver 'active'.",
        input_schema = input_schema::<UnassignArgs>(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn unassign_order(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<AssignmentResult>, ToolError> {
        let a: UnassignArgs = parse(args)?;
        let id = input::id("assignment_id", &a.assignment_id)?;
        if let Some(confirm) = a.confirm {
            input::confirmed(confirm, "unassign the order")?;
        }
        let change = AssignmentChange {
            step: Some(AssignmentStep::Cancel),
            ..Default::default()
        };
        self.step(
            &caller.user_id,
            &id,
            change,
            format!("assignment {id} cancelled; the order is pending again"),
        )
        .await
    }

    #[tool(
        description = "Mark a delivery done. Needs confirm: true. The assignment becomes 'completed', the order 'delivered' (with on_time/late/very_late), and the driver 'active' at the delivery point.",
        input_schema = input_schema::<CompleteArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn complete_delivery(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<AssignmentResult>, ToolError> {
        let a: CompleteArgs = parse(args)?;
        let id = input::id("assignment_id", &a.assignment_id)?;
        input::confirmed(a.confirm, "complete the delivery")?;
        let change = AssignmentChange {
            step: Some(AssignmentStep::Complete),
            actual_distance_meters: a.actual_distance_meters,
            notes: a.notes,
            actual_arrival: None,
        };
        self.step(
            &caller.user_id,
            &id,
            change,
            format!("assignment {id} completed; the order is delivered"),
        )
        .await
    }

    #[tool(
        description = "Mark a delivery failed. Needs confirm: true, the driver's current location and a failure_reason (customer_not_available, wrong_address, refused_delivery, damaged_goods, payment_issue, vehicle_breakdown, access_restricted, weather_conditions, other). The order becomes 'failed' and the driver 'active' at that location.",
        input_schema = input_schema::<FailArgs>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn fail_delivery(
        &self,
        caller: Caller,
        args: JsonObject,
    ) -> Result<Json<AssignmentResult>, ToolError> {
        let a: FailArgs = parse(args)?;
        let id = input::id("assignment_id", &a.assignment_id)?;
        input::confirmed(a.confirm, "fail the delivery")?;
        let change = AssignmentChange {
            step: Some(AssignmentStep::Fail {
                reason: a.failure_reason,
                address: a.current_address,
                lat: a.current_lat,
                lng: a.current_lng,
            }),
            notes: a.notes,
            ..Default::default()
        };
        self.step(
            &caller.user_id,
            &id,
            change,
            format!("assignment {id} failed; the order is failed"),
        )
        .await
    }
}

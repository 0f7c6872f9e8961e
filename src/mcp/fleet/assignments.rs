//! The assignment tools: giving orders to drivers and following the
//! delivery through; every status change cascades to the order and the
//! driver in one transaction (see the store).

use super::assign_route::{self, Way};
use super::input;
use crate::auth::Caller;
use crate::fleet::choose::{self, DriverScore, Leg, Weights};
use crate::fleet::*;
use crate::mcp::args::parse;
use crate::mcp::error::ToolError;
use crate::mcp::json::Json;
use crate::mcp::{FleetMind, input_schema};
use crate::tenant::UserId;
use rmcp::model::JsonObject;
use rmcp::{schemars, tool, tool_router};
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
    /// For a new assignment: the driver's way to the delivery point (by
    /// road, or the marked estimate), as stored in the assignment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Way>,
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
    /// The driver's way to the delivery point: by road when the routing
    /// engine answered, else the estimate.
    pub distance_km: f64,
    pub estimated_duration_minutes: i64,
    /// That way as calculate_route gives it (metres, seconds, engine,
    /// estimated), as stored in the assignment.
    pub route: Way,
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
    /// The chosen driver's way to the delivery point as calculate_route
    /// gives it (by road, or the marked estimate), as stored.
    pub route: Way,
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
            route: None,
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

    /// The way the named driver has to the order, when both exist and the
    /// assignment is allowed (else none: the store's refusal says why).
    async fn way_for(&self, user: &UserId, order_id: &str, driver_id: &str) -> Option<(Leg, Way)> {
        let order = self.db.order(user, order_id).await.ok()?;
        let driver = self.db.driver(user, driver_id).await.ok()?;
        rules::check_assignment(&order, &driver).ok()?;
        let measured = assign_route::measure(&self.routing, &order, &[&driver], &[&driver]).await;
        let leg = measured.legs().remove(driver_id)?;
        let way = measured.way(driver_id, &leg);
        Some((leg, way))
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
            .change_assignment(user, id, change, self.clock.now())
            .await
            .map_err(|e| ToolError::store(e, &[("assignment", id)]))?;
        self.with_parties(user, assignment, message).await
    }
}

/// The way an assignment stored, when it was not measured here (the
/// store's own straight-line estimate).
fn stored_way(a: &Assignment) -> Way {
    Way {
        distance_meters: a.route_distance_meters,
        duration_seconds: a.route_duration_seconds,
        summary: a.route_summary.clone(),
        engine: crate::routing::Engine::Estimate,
        estimated: true,
        fallback_reason: None,
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
        description = "Give a pending order to an active driver who can carry it (capacity, cold storage). The order becomes 'assigned' and the driver 'busy'. The assignment's route and ETA are by road when the server has a routing engine; without one, or when it is slow or down, the estimate (route.estimated: true, with the reason).",
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
        let user = &caller.user_id;
        let (leg, way) = self.way_for(user, &order_id, &driver_id).await.unzip();
        let assignment = self
            .db
            .assign(user, &order_id, &driver_id, leg.as_ref(), self.clock.now())
            .await
            .map_err(|e| ToolError::store(e, &[("order", &order_id), ("driver", &driver_id)]))?;
        let message = format!("order {order_id} assigned to driver {driver_id}");
        let Json(mut done) = self.with_parties(user, assignment, message).await?;
        // When the driver moved between the measure and the assignment, the
        // store estimated from the new position: the answer says what was
        // stored.
        let measured = way.filter(|w| {
            w.distance_meters == done.assignment.route_distance_meters
                && w.summary == done.assignment.route_summary
        });
        done.route = Some(measured.unwrap_or_else(|| stored_way(&done.assignment)));
        Ok(Json(done))
    }

    #[tool(
        description = "Assign a pending order to the nearest active driver who can carry it (capacity and cold storage respected): nearest by road when the server has a routing engine (the five nearest by straight line are routed, and five more if one of the others then looks nearer), else, or when the engine is slow or down, by the estimate (route.estimated: true, with the reason). Returns the reason, distance_km, the estimated duration and the route (distance_meters, duration_seconds, engine, estimated) as stored.",
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
        let (fit, _) = choose::suitable(&order, &drivers);
        let measured = assign_route::measure_leaders(&self.routing, &order, &fit, |legs| {
            choose::by_leg(&order, &fit, legs)
        })
        .await;
        let reachable: Vec<Driver> = drivers
            .iter()
            .filter(|d| !measured.unreachable(&d.driver_id))
            .cloned()
            .collect();
        let (best, mut ruled_out) = choose::nearest(&order, &reachable, &measured.legs());
        ruled_out.extend(measured.ruled_out());
        let Some((driver, leg)) = best else {
            return Err(no_driver(&order_id, drivers.len(), &ruled_out));
        };
        let way = measured.way(&driver.driver_id, &leg);
        let assignment = self
            .db
            .assign(
                user,
                &order_id,
                &driver.driver_id,
                Some(&leg),
                self.clock.now(),
            )
            .await
            .map_err(|e| ToolError::store(e, &[("order", &order_id)]))?;
        let km = leg.distance_meters / 1000.0;
        let how = if way.estimated {
            "estimated"
        } else {
            "by road"
        };
        let reason = format!(
            "nearest active driver who can carry the order: {} ({}), {km:.1} km away ({how}) by {}; {} active driver(s) considered, {} could not carry it",
            driver.name,
            driver.driver_id,
            driver.vehicle_type,
            drivers.len(),
            ruled_out.len()
        );
        let Json(done) = self.with_parties(user, assignment, String::new()).await?;
        Ok(Json(AutoAssigned {
            success: true,
            route: way,
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
        description = "Assign a pending order to the best active driver by a deterministic multi-factor score: distance and arrival time (by road for the five best when the server has a routing engine, else or when it is slow or down the estimate, marked in route.estimated), vehicle fit, capacity headroom, wanted skills (fragile_handler, express_delivery, overnight), recent workload and urgency (arrival against the promised time). Returns the ranking and an explanation.",
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
        let now = self.clock.now();
        let recent: HashMap<String, i64> = self
            .db
            .assignments_since(user, rules::later_by_minutes(now, -24 * 60))
            .await?
            .into_iter()
            .collect();
        // The best few on the estimate are measured by road, then all are
        // scored again.
        let (fit, _) = choose::suitable(&order, &drivers);
        let measured = assign_route::measure_leaders(&self.routing, &order, &fit, |legs| {
            let (ranking, _) = choose::rank(&order, &drivers, legs, &recent, now);
            ranking.into_iter().map(|s| s.driver_id).collect()
        })
        .await;
        let reachable: Vec<Driver> = drivers
            .iter()
            .filter(|d| !measured.unreachable(&d.driver_id))
            .cloned()
            .collect();
        let legs = measured.legs();
        let (mut ranking, mut ruled_out) = choose::rank(&order, &reachable, &legs, &recent, now);
        ruled_out.extend(measured.ruled_out());
        let Some((best, rest)) = ranking.split_first() else {
            return Err(no_driver(&order_id, drivers.len(), &ruled_out));
        };
        let explanation = choose::explain(&order, best, rest.first(), ruled_out.len());
        let leg = legs.get(&best.driver_id);
        let way = leg.map(|leg| measured.way(&best.driver_id, leg));
        let assignment = self
            .db
            .assign(user, &order_id, &best.driver_id, leg, self.clock.now())
            .await
            .map_err(|e| ToolError::store(e, &[("order", &order_id)]))?;
        ranking.truncate(5);
        let Json(done) = self.with_parties(user, assignment, String::new()).await?;
        let route = way.unwrap_or_else(|| stored_way(&done.assignment));
        Ok(Json(IntelligentlyAssigned {
            route,
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

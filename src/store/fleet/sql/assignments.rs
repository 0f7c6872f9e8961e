//! The `assignments` table, and the status changes that cascade from an
//! assignment to its order and driver in one transaction.

use super::table::{Bind, Column, Read, Table, insert, read, read_row, write};
use super::{DbRow, This};
use crate::fleet::choose::Leg;
use crate::fleet::rules;
use crate::fleet::types::*;
use crate::store::StoreError;
use crate::store::fleet::rows::*;
use crate::store::sql_backend::SqlBackend;
use crate::tenant::UserId;
use chrono::{DateTime, Utc};
use std::sync::LazyLock;

/// The assignments of one order ($2), newest first.
static OF_ORDER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE user_id = $1 AND order_id = $2 \
         ORDER BY assigned_at DESC, assignment_id DESC"
    )
});

/// The assignments of one driver ($2), newest first.
static OF_DRIVER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE user_id = $1 AND driver_id = $2 \
         ORDER BY assigned_at DESC, assignment_id DESC"
    )
});

impl Table for Assignment {
    type Status = AssignmentStatus;
    const SQL: &'static TableSql<Bind<Assignment>, Read<Assignment>> = &ASSIGNMENTS;

    fn id(&self) -> &str {
        &self.assignment_id
    }
}

impl sqlx::FromRow<'_, DbRow> for Assignment {
    fn from_row(row: &DbRow) -> Result<Self, sqlx::Error> {
        read_row(row)
    }
}

/// The `assignments` table: the changeable columns, then those set once.
static ASSIGNMENTS: TableSql<Bind<Assignment>, Read<Assignment>> =
    TableSql::new("assignment", "assignments", "assignment_id", COLUMNS);

/// The columns read into an [`Assignment`].
pub(super) static ASSIGNMENT_COLUMNS: &Columns<Bind<Assignment>, Read<Assignment>> =
    &ASSIGNMENTS.columns;

/// Every column: its name, how the assignment's value is bound and how it
/// is read back (see `orders.rs`); a change sets the first ones, the rest
/// are set once, when the assignment is made.
// A table, one line per column (rustfmt would break the longer ones).
#[rustfmt::skip]
const COLUMNS: &[Column<Assignment>] = &[
    set_once("assignment_id", |a, q| q.bind(&a.assignment_id), |a, c| c.get(&mut a.assignment_id)),
    column("status", |a, q| q.bind(a.status.as_str()), |a, c| c.named(&mut a.status, AssignmentStatus::parse)),
    column("updated_at", |a, q| q.bind(a.updated_at), |a, c| c.get(&mut a.updated_at)),
    column("actual_arrival", |a, q| q.bind(a.actual_arrival), |a, c| c.get(&mut a.actual_arrival)),
    column("actual_distance_meters", |a, q| q.bind(a.actual_distance_meters), |a, c| c.get(&mut a.actual_distance_meters)),
    column("notes", |a, q| q.bind(&a.notes), |a, c| c.get(&mut a.notes)),
    column("failure_reason", |a, q| q.bind(a.failure_reason.map(|r| r.as_str())), |a, c| c.named_opt(&mut a.failure_reason, FailureReason::parse)),
    set_once("order_id", |a, q| q.bind(&a.order_id), |a, c| c.get(&mut a.order_id)),
    set_once("driver_id", |a, q| q.bind(&a.driver_id), |a, c| c.get(&mut a.driver_id)),
    set_once("assigned_at", |a, q| q.bind(a.assigned_at), |a, c| c.get(&mut a.assigned_at)),
    set_once("route_distance_meters", |a, q| q.bind(a.route_distance_meters), |a, c| c.get(&mut a.route_distance_meters)),
    set_once("route_duration_seconds", |a, q| q.bind(a.route_duration_seconds), |a, c| c.get(&mut a.route_duration_seconds)),
    set_once("route_summary", |a, q| q.bind(&a.route_summary), |a, c| c.get(&mut a.route_summary)),
    set_once("driver_start_lat", |a, q| q.bind(a.driver_start_lat), |a, c| c.get(&mut a.driver_start_lat)),
    set_once("driver_start_lng", |a, q| q.bind(a.driver_start_lng), |a, c| c.get(&mut a.driver_start_lng)),
    set_once("delivery_lat", |a, q| q.bind(a.delivery_lat), |a, c| c.get(&mut a.delivery_lat)),
    set_once("delivery_lng", |a, q| q.bind(a.delivery_lng), |a, c| c.get(&mut a.delivery_lng)),
    set_once("delivery_address", |a, q| q.bind(&a.delivery_address), |a, c| c.get(&mut a.delivery_address)),
    set_once("estimated_arrival", |a, q| q.bind(a.estimated_arrival), |a, c| c.get(&mut a.estimated_arrival)),
    set_once("vehicle_type", |a, q| q.bind(a.vehicle_type.as_str()), |a, c| c.named(&mut a.vehicle_type, VehicleType::parse)),
];

pub(super) async fn assign(
    store: &This,
    user: &UserId,
    order_id: &str,
    driver_id: &str,
    leg: Option<&Leg>,
    now: DateTime<Utc>,
) -> Result<Assignment, StoreError> {
    let mut tx = store.write_tx().await?;
    let order: Order = read(&mut tx, user, order_id).await?;
    let driver: Driver = read(&mut tx, user, driver_id).await?;
    rules::check_assignment(&order, &driver)?;
    let assignment = rules::new_assignment(&order, &driver, leg, now);
    // The open-assignment indexes refuse a second open assignment a
    // concurrent call committed meanwhile.
    insert(&mut tx, user, &assignment)
        .await
        .map_err(|err| match err {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "order {order_id} or driver {driver_id} was just assigned by another call; try again"
            )),
            other => other,
        })?;
    let next_order = Order {
        status: OrderStatus::Assigned,
        assigned_driver_id: Some(driver.driver_id.clone()),
        delivery_status: None,
        updated_at: now,
        ..order
    };
    if !write(&mut tx, user, &next_order, OrderStatus::Pending).await? {
        return Err(changed_meanwhile("order", order_id));
    }
    let next_driver = Driver {
        status: DriverStatus::Busy,
        updated_at: now,
        ..driver
    };
    if !write(&mut tx, user, &next_driver, DriverStatus::Active).await? {
        return Err(changed_meanwhile("driver", driver_id));
    }
    tx.commit().await?;
    Ok(assignment)
}

pub(super) async fn of_order(
    store: &This,
    user: &UserId,
    order_id: &str,
) -> Result<Vec<Assignment>, StoreError> {
    let mut conn = store.pool().acquire().await?;
    read::<Order>(&mut conn, user, order_id).await?;
    Ok(sqlx::query_as(OF_ORDER.as_str())
        .bind(user.as_str())
        .bind(order_id)
        .fetch_all(&mut *conn)
        .await?)
}

pub(super) async fn of_driver(
    store: &This,
    user: &UserId,
    driver_id: &str,
) -> Result<Vec<Assignment>, StoreError> {
    let mut conn = store.pool().acquire().await?;
    read::<Driver>(&mut conn, user, driver_id).await?;
    Ok(sqlx::query_as(OF_DRIVER.as_str())
        .bind(user.as_str())
        .bind(driver_id)
        .fetch_all(&mut *conn)
        .await?)
}

pub(super) async fn since(
    store: &This,
    user: &UserId,
    since: DateTime<Utc>,
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT driver_id, COUNT(*) FROM assignments WHERE user_id = $1 \
         AND assigned_at >= $2 GROUP BY driver_id ORDER BY driver_id",
    )
    .bind(user.as_str())
    .bind(since)
    .fetch_all(store.pool())
    .await?)
}

/// The caller's changes to an assignment, checked before any I/O: the
/// fields it sets and the status step it takes.
struct Checked {
    notes: Option<String>,
    distance: Option<f64>,
    actual_arrival: Option<DateTime<Utc>>,
    step: Option<AssignmentStep>,
}

fn checked(change: AssignmentChange) -> Result<Checked, StoreError> {
    let notes = rules::optional_text("notes", change.notes.as_deref(), rules::TEXT_MAX)?;
    let distance = change
        .actual_distance_meters
        .map(|d| rules::amount("actual_distance_meters", d, rules::DISTANCE_MAX_M, false))
        .transpose()?;
    let actual_arrival = change
        .actual_arrival
        .map(|at| rules::time("actual_arrival", at))
        .transpose()?;
    let step = match change.step {
        Some(AssignmentStep::Fail {
            reason,
            address,
            lat,
            lng,
        }) => Some(AssignmentStep::Fail {
            reason,
            address: rules::required_text("current_address", &address, rules::ADDRESS_MAX)?,
            lat: rules::latitude("current_lat", lat)?,
            lng: rules::longitude("current_lng", lng)?,
        }),
        other => other,
    };
    Ok(Checked {
        notes,
        distance,
        actual_arrival,
        step,
    })
}

pub(super) async fn change(
    store: &This,
    user: &UserId,
    assignment_id: &str,
    change: AssignmentChange,
    now: DateTime<Utc>,
) -> Result<Assignment, StoreError> {
    let Checked {
        notes,
        distance,
        actual_arrival,
        step,
    } = checked(change)?;
    let mut tx = store.write_tx().await?;
    let assignment: Assignment = read(&mut tx, user, assignment_id).await?;
    let mut next = assignment.clone();
    if notes.is_some() {
        next.notes = notes;
    }
    if distance.is_some() {
        next.actual_distance_meters = distance;
    }
    if actual_arrival.is_some() {
        next.actual_arrival = actual_arrival;
    }
    if let Some(step) = &step {
        rules::check_step(&assignment, step)?;
        next.status = step.target();
        let order: Order = read(&mut tx, user, &assignment.order_id).await?;
        let driver: Driver = read(&mut tx, user, &assignment.driver_id).await?;
        let order_to = step.order_status();
        if !order.status.can_become(order_to) {
            return Err(StoreError::Conflict(format!(
                "order {} is {} and cannot become {order_to}",
                order.order_id, order.status
            )));
        }
        let mut next_order = Order {
            status: order_to,
            updated_at: now,
            ..order.clone()
        };
        let mut next_driver = Driver {
            status: step.driver_status(),
            updated_at: now,
            ..driver.clone()
        };
        match step {
            AssignmentStep::Start => {}
            AssignmentStep::Complete => {
                let at = next.actual_arrival.unwrap_or(now);
                next.actual_arrival = Some(at);
                next_order.delivered_at = Some(at);
                next_order.delivery_status = Some(rules::delivery_status(&order, at, false));
                next_driver.current_lat = order.delivery_lat;
                next_driver.current_lng = order.delivery_lng;
                next_driver.current_address = order.delivery_address.clone();
                next_driver.last_location_update = now;
            }
            AssignmentStep::Fail {
                reason,
                address,
                lat,
                lng,
            } => {
                next.failure_reason = Some(*reason);
                next_order.delivery_status = Some(rules::delivery_status(&order, now, true));
                next_driver.current_lat = *lat;
                next_driver.current_lng = *lng;
                next_driver.current_address = address.clone();
                next_driver.last_location_update = now;
            }
            AssignmentStep::Cancel => {
                next_order.assigned_driver_id = None;
            }
        }
        if !write(&mut tx, user, &next_order, order.status).await? {
            return Err(changed_meanwhile("order", &order.order_id));
        }
        if !write(&mut tx, user, &next_driver, driver.status).await? {
            return Err(changed_meanwhile("driver", &driver.driver_id));
        }
    }
    if next == assignment {
        return Ok(assignment);
    }
    next.updated_at = now;
    if !write(&mut tx, user, &next, assignment.status).await? {
        return Err(changed_meanwhile("assignment", assignment_id));
    }
    tx.commit().await?;
    Ok(next)
}

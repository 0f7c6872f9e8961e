//! The fleet store on both backends: cascades in one transaction, state
//! machines, and tenant isolation enforced by the schema itself.

use crate::support::*;
use chrono::{Duration, Utc};
use fleetmind::fleet::*;
use fleetmind::store::{Backend, StoreError};
use fleetmind::tenant::UserId;
use sqlx::Connection;

/// A new order read as the `create_order` tool reads one: what is left out
/// takes its default, so a new optional field needs no change here.
fn new_order(name: &str, lat: f64, lng: f64) -> NewOrder {
    serde_json::from_value(serde_json::json!({
        "customer_name": name,
        "delivery_address": "1 Main St",
        "delivery_lat": lat,
        "delivery_lng": lng,
        "expected_delivery_time": (Utc::now() + Duration::hours(4)).to_rfc3339(),
        "weight_kg": 10.0,
    }))
    .expect("a valid new order")
}

/// A new driver read as the `create_driver` tool reads one (see
/// [`new_order`]).
fn new_driver(name: &str, lat: f64, lng: f64) -> NewDriver {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "vehicle_type": "van",
        "current_address": "Depot",
        "current_lat": lat,
        "current_lng": lng,
    }))
    .expect("a valid new driver")
}

/// The time a server would pass: the system clock's, to the microsecond the
/// databases keep.
fn now() -> chrono::DateTime<Utc> {
    fleetmind::clock::Clock::system().now()
}

/// The message of a conflict, whether the fleet's rules refused the change
/// or the store found the rows changed meanwhile.
fn conflict(err: StoreError) -> String {
    match err {
        StoreError::Conflict(msg) | StoreError::Fleet(FleetError::Conflict(msg)) => msg,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

backend_test!(
    assignment_cascades_follow_the_state_machines,
    |t| async move {
        let db = t.db.clone();
        let user = UserId::new("user_a");
        let order = db
            .create_order(&user, new_order("Ann", 48.86, 2.35), now())
            .await
            .unwrap();
        let driver = db
            .create_driver(&user, new_driver("Dan", 48.80, 2.30), now())
            .await
            .unwrap();
        assert_eq!(order.status, OrderStatus::Pending);
        assert_eq!(
            db.order(&user, &order.order_id).await.unwrap(),
            order,
            "read equals write"
        );

        let a = db
            .assign(&user, &order.order_id, &driver.driver_id, None, now())
            .await
            .unwrap();
        assert_eq!(a.status, AssignmentStatus::Active);
        assert!(a.route_distance_meters > 5000.0 && a.route_distance_meters < 10000.0);
        let o = db.order(&user, &order.order_id).await.unwrap();
        assert_eq!(o.status, OrderStatus::Assigned);
        assert_eq!(
            o.assigned_driver_id.as_deref(),
            Some(driver.driver_id.as_str())
        );
        assert_eq!(
            db.driver(&user, &driver.driver_id).await.unwrap().status,
            DriverStatus::Busy
        );

        // A busy driver and an assigned order cannot be assigned again.
        let other = db
            .create_order(&user, new_order("Bob", 48.0, 2.0), now())
            .await
            .unwrap();
        let msg = conflict(
            db.assign(&user, &other.order_id, &driver.driver_id, None, now())
                .await
                .unwrap_err(),
        );
        assert!(msg.contains("busy"), "{msg}");
        let free = db
            .create_driver(&user, new_driver("Free", 48.0, 2.0), now())
            .await
            .unwrap();
        let msg = conflict(
            db.assign(&user, &order.order_id, &free.driver_id, None, now())
                .await
                .unwrap_err(),
        );
        assert_eq!(
            msg,
            format!(
                "order {} is assigned; only pending orders can be assigned",
                order.order_id
            )
        );
        // Nor can either be deleted, or be moved by hand.
        conflict(db.delete_order(&user, &order.order_id).await.unwrap_err());
        conflict(
            db.delete_driver(&user, &driver.driver_id)
                .await
                .unwrap_err(),
        );
        conflict(db.delete_all_orders(&user, None).await.unwrap_err());
        let patch = DriverPatch {
            status: Some(DriverStatus::Offline),
            ..Default::default()
        };
        conflict(
            db.update_driver(&user, &driver.driver_id, patch, now())
                .await
                .unwrap_err(),
        );

        // Unassign puts both back.
        let cancel = AssignmentChange {
            step: Some(AssignmentStep::Cancel),
            ..Default::default()
        };
        let a2 = db
            .change_assignment(&user, &a.assignment_id, cancel.clone(), now())
            .await
            .unwrap();
        assert_eq!(a2.status, AssignmentStatus::Cancelled);
        let o = db.order(&user, &order.order_id).await.unwrap();
        assert_eq!(
            (o.status, o.assigned_driver_id),
            (OrderStatus::Pending, None)
        );
        assert_eq!(
            db.driver(&user, &driver.driver_id).await.unwrap().status,
            DriverStatus::Active
        );
        let msg = conflict(
            db.change_assignment(&user, &a.assignment_id, cancel, now())
                .await
                .unwrap_err(),
        );
        assert!(
            msg.contains("cancelled and cannot become cancelled"),
            "{msg}"
        );

        // Start, then unassigning is refused; completing moves the driver.
        let b = db
            .assign(&user, &order.order_id, &driver.driver_id, None, now())
            .await
            .unwrap();
        let start = AssignmentChange {
            step: Some(AssignmentStep::Start),
            ..Default::default()
        };
        db.change_assignment(&user, &b.assignment_id, start, now())
            .await
            .unwrap();
        assert_eq!(
            db.order(&user, &order.order_id).await.unwrap().status,
            OrderStatus::InTransit
        );
        let cancel = AssignmentChange {
            step: Some(AssignmentStep::Cancel),
            ..Default::default()
        };
        let msg = conflict(
            db.change_assignment(&user, &b.assignment_id, cancel, now())
                .await
                .unwrap_err(),
        );
        assert!(msg.contains("in_progress"), "{msg}");
        let done = AssignmentChange {
            step: Some(AssignmentStep::Complete),
            actual_distance_meters: Some(7100.0),
            ..Default::default()
        };
        let b2 = db
            .change_assignment(&user, &b.assignment_id, done, now())
            .await
            .unwrap();
        assert_eq!(b2.status, AssignmentStatus::Completed);
        assert!(b2.actual_arrival.is_some());
        let o = db.order(&user, &order.order_id).await.unwrap();
        assert_eq!(o.status, OrderStatus::Delivered);
        assert_eq!(o.delivery_status, Some(DeliveryStatus::OnTime));
        let d = db.driver(&user, &driver.driver_id).await.unwrap();
        assert_eq!(d.status, DriverStatus::Active);
        assert_eq!((d.current_lat, d.current_lng), (48.86, 2.35));
        assert_eq!(d.current_address, "1 Main St");

        // Fail: order failed, driver active where they said.
        let c = db
            .assign(&user, &other.order_id, &driver.driver_id, None, now())
            .await
            .unwrap();
        let fail = AssignmentChange {
            step: Some(AssignmentStep::Fail {
                reason: FailureReason::WrongAddress,
                address: "Somewhere".into(),
                lat: 10.0,
                lng: 20.0,
            }),
            ..Default::default()
        };
        let c2 = db
            .change_assignment(&user, &c.assignment_id, fail, now())
            .await
            .unwrap();
        assert_eq!(c2.failure_reason, Some(FailureReason::WrongAddress));
        let o = db.order(&user, &other.order_id).await.unwrap();
        assert_eq!(
            (o.status, o.delivery_status),
            (OrderStatus::Failed, Some(DeliveryStatus::FailedOnTime))
        );
        let d = db.driver(&user, &driver.driver_id).await.unwrap();
        assert_eq!(
            (d.status, d.current_lat, d.current_lng),
            (DriverStatus::Active, 10.0, 20.0)
        );

        // A delivered order cannot be reopened; a failed one can.
        let reopen = OrderPatch {
            status: Some(OrderStatus::Pending),
            ..Default::default()
        };
        conflict(
            db.update_order(&user, &order.order_id, reopen.clone(), now())
                .await
                .unwrap_err(),
        );
        let o = db
            .update_order(&user, &other.order_id, reopen, now())
            .await
            .unwrap();
        assert_eq!(
            (o.status, o.assigned_driver_id),
            (OrderStatus::Pending, None)
        );
        let by_hand = OrderPatch {
            status: Some(OrderStatus::Delivered),
            ..Default::default()
        };
        let err = db
            .update_order(&user, &other.order_id, by_hand, now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Fleet(FleetError::Invalid(ref m)) if m.starts_with("status:")),
            "{err:?}"
        );

        let history = db
            .assignments_of_order(&user, &order.order_id)
            .await
            .unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].assignment_id, b.assignment_id, "newest first");
    }
);

backend_test!(capacity_and_cold_storage_are_hard_limits, |t| async move {
    let db = t.db.clone();
    let user = UserId::new("user_a");
    let mut heavy = new_order("Heavy", 1.0, 1.0);
    heavy.weight_kg = Some(5000.0);
    let heavy = db.create_order(&user, heavy, now()).await.unwrap();
    let mut cold = new_order("Cold", 1.0, 1.0);
    cold.requires_cold_storage = true;
    let cold = db.create_order(&user, cold, now()).await.unwrap();
    let driver = db
        .create_driver(&user, new_driver("Dan", 1.0, 1.0), now())
        .await
        .unwrap();
    let msg = conflict(
        db.assign(&user, &heavy.order_id, &driver.driver_id, None, now())
            .await
            .unwrap_err(),
    );
    assert!(msg.contains("capacity"), "{msg}");
    let msg = conflict(
        db.assign(&user, &cold.order_id, &driver.driver_id, None, now())
            .await
            .unwrap_err(),
    );
    assert!(msg.contains("refrigerated"), "{msg}");
    assert_eq!(
        db.driver(&user, &driver.driver_id).await.unwrap().status,
        DriverStatus::Active
    );
    assert_eq!(
        db.order(&user, &heavy.order_id).await.unwrap().status,
        OrderStatus::Pending
    );
});

backend_test!(
    other_tenants_rows_are_not_found_and_bulk_deletes_stay_home,
    |t| async move {
        let db = t.db.clone();
        let (a, b) = (UserId::new("user_a"), UserId::new("user_b"));
        let order = db
            .create_order(&a, new_order("Ann", 1.0, 1.0), now())
            .await
            .unwrap();
        let driver = db
            .create_driver(&a, new_driver("Dan", 1.0, 1.0), now())
            .await
            .unwrap();
        let b_driver = db
            .create_driver(&b, new_driver("Bea", 1.0, 1.0), now())
            .await
            .unwrap();
        assert!(matches!(
            db.order(&b, &order.order_id).await,
            Err(StoreError::NotFound("order"))
        ));
        assert!(matches!(
            db.driver(&b, &driver.driver_id).await,
            Err(StoreError::NotFound("driver"))
        ));
        // B cannot join A's order to B's driver, nor the reverse.
        assert!(matches!(
            db.assign(&b, &order.order_id, &b_driver.driver_id, None, now())
                .await,
            Err(StoreError::NotFound("order"))
        ));
        assert!(matches!(
            db.assign(&a, &order.order_id, &b_driver.driver_id, None, now())
                .await,
            Err(StoreError::NotFound("driver"))
        ));
        assert_eq!(db.delete_all_orders(&b, None).await.unwrap(), 0);
        assert_eq!(db.delete_all_drivers(&b, None).await.unwrap(), 1);
        assert_eq!(db.order(&a, &order.order_id).await.unwrap(), order);
        assert_eq!(db.driver(&a, &driver.driver_id).await.unwrap(), driver);
        assert_eq!(
            db.count_orders(&b, &OrderFilter::default())
                .await
                .unwrap()
                .total,
            0
        );
        assert_eq!(
            db.count_orders(&a, &OrderFilter::default())
                .await
                .unwrap()
                .total,
            1
        );
    }
);

// Even SQL that skips every check in the code cannot link two tenants.
backend_test!(
    the_schema_refuses_a_cross_tenant_assignment,
    |t| async move {
        let db = t.db.clone();
        let (a, b) = (UserId::new("user_a"), UserId::new("user_b"));
        let order = db
            .create_order(&a, new_order("Ann", 1.0, 1.0), now())
            .await
            .unwrap();
        let driver = db
            .create_driver(&b, new_driver("Bea", 1.0, 1.0), now())
            .await
            .unwrap();
        let insert = |owner: &str| {
            format!(
                "INSERT INTO assignments (user_id, assignment_id, order_id, driver_id, status, \
                 assigned_at, updated_at, route_distance_meters, route_duration_seconds, \
                 route_summary, driver_start_lat, driver_start_lng, delivery_lat, delivery_lng, \
                 delivery_address, estimated_arrival, vehicle_type) VALUES ('{owner}', 'ASN-X', \
                 '{}', '{}', 'active', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 1, 1, 's', \
                 0, 0, 0, 0, 'a', '2026-01-01T00:00:00Z', 'van')",
                order.order_id, driver.driver_id
            )
        };
        let link_driver = format!(
            "UPDATE orders SET assigned_driver_id = '{}' WHERE order_id = '{}'",
            driver.driver_id, order.order_id
        );
        for sql in [insert("user_a"), insert("user_b"), link_driver] {
            let refused = match t.backend {
                Backend::Sqlite => {
                    // sqlx turns foreign keys on for every SQLite connection.
                    let pool = sqlx::SqlitePool::connect(&t.url).await.unwrap();
                    sqlx::query(&sql).execute(&pool).await.map(|_| ())
                }
                Backend::Postgres => {
                    let pool = sqlx::PgPool::connect(&t.url).await.unwrap();
                    sqlx::query(&sql).execute(&pool).await.map(|_| ())
                }
            };
            let err = refused.expect_err("the database must refuse a cross-tenant link");
            let text = err.to_string().to_lowercase();
            assert!(text.contains("foreign key"), "{text}");
        }
    }
);

/// Sets `column` of every row of `table` to `value`, the schema's check of
/// the column set aside: what a hand-written or newer server's row may hold.
async fn set_unchecked(t: &TestDb, table: &str, column: &str, value: &str) {
    let sql = format!("UPDATE {table} SET {column} = '{value}'");
    match t.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&t.url).await.unwrap();
            sqlx::query("PRAGMA ignore_check_constraints = ON")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&t.url).await.unwrap();
            let unchecked =
                format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_{column}_check");
            sqlx::query(&unchecked).execute(&mut conn).await.unwrap();
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        }
    }
}

// A stored name the domain does not know (written by hand, or by a newer
// server) is an error naming its column, never a guess.
backend_test!(
    a_stored_name_the_domain_does_not_know_is_an_error_naming_its_column,
    |t| async move {
        let db = t.db.clone();
        let user = UserId::new("user_a");
        let order = db
            .create_order(&user, new_order("Ann", 1.0, 1.0), now())
            .await
            .unwrap();
        let driver = db
            .create_driver(&user, new_driver("Bea", 1.0, 1.0), now())
            .await
            .unwrap();
        let assignment = db
            .assign(&user, &order.order_id, &driver.driver_id, None, now())
            .await
            .unwrap();
        // Each column: a name nobody knows, then back to a known one.
        for (table, column, unknown, known) in [
            ("orders", "priority", "bogus", "standard"),
            ("orders", "payment_status", "later", "pending"),
            ("orders", "status", "lost", "assigned"),
            ("orders", "delivery_status", "meh", "late"),
            ("drivers", "skills", "refrigerated,flying", "refrigerated"),
            ("drivers", "status", "asleep", "busy"),
            ("drivers", "vehicle_type", "rocket", "van"),
            ("assignments", "status", "lost", "active"),
            ("assignments", "vehicle_type", "rocket", "van"),
            ("assignments", "failure_reason", "aliens", "other"),
        ] {
            set_unchecked(&t, table, column, unknown).await;
            let read = match table {
                "orders" => db.order(&user, &order.order_id).await.map(|_| ()),
                "drivers" => db.driver(&user, &driver.driver_id).await.map(|_| ()),
                _ => db
                    .assignment(&user, &assignment.assignment_id)
                    .await
                    .map(|_| ()),
            };
            match read {
                Err(StoreError::Database(sqlx::Error::ColumnDecode { index, source })) => {
                    assert_eq!(index, column);
                    assert_eq!(source.to_string(), format!("unknown value in {column}"));
                }
                other => panic!("{table}.{column} = '{unknown}': read as {other:?}"),
            }
            set_unchecked(&t, table, column, known).await;
        }
    }
);

// Many calls racing for one driver, or for one assignment: exactly one
// wins, the others get a clear conflict, and the cascades stay whole.
backend_test!(racing_calls_cannot_break_a_state_machine, |t| async move {
    let user = UserId::new("user_a");
    let driver =
        t.db.create_driver(&user, new_driver("Dan", 1.0, 1.0), now())
            .await
            .unwrap();
    let mut orders = Vec::new();
    for i in 0..8 {
        orders.push(
            t.db.create_order(&user, new_order(&format!("C{i}"), 1.0, 1.0), now())
                .await
                .unwrap(),
        );
    }
    let tasks: Vec<_> = orders
        .iter()
        .map(|o| {
            let (db, user, o, d) = (
                t.db.clone(),
                user.clone(),
                o.order_id.clone(),
                driver.driver_id.clone(),
            );
            tokio::spawn(async move { db.assign(&user, &o, &d, None, now()).await })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(a) => won.push(a),
            Err(StoreError::Conflict(_) | StoreError::Fleet(FleetError::Conflict(_))) => {}
            Err(other) => panic!(
                "{:?}: a race must end in a conflict, got {other:?}",
                t.backend
            ),
        }
    }
    assert_eq!(won.len(), 1, "{:?}: exactly one assignment wins", t.backend);
    let assigned =
        t.db.count_orders(
            &user,
            &OrderFilter {
                status: Some(OrderStatus::Assigned),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(assigned.total, 1);
    assert_eq!(
        t.db.driver(&user, &driver.driver_id).await.unwrap().status,
        DriverStatus::Busy
    );

    // Complete and unassign race on the same assignment.
    let id = won[0].assignment_id.clone();
    let steps = [
        AssignmentStep::Complete,
        AssignmentStep::Cancel,
        AssignmentStep::Complete,
        AssignmentStep::Cancel,
    ];
    let tasks: Vec<_> = steps
        .into_iter()
        .map(|step| {
            let (db, user, id) = (t.db.clone(), user.clone(), id.clone());
            tokio::spawn(async move {
                db.change_assignment(
                    &user,
                    &id,
                    AssignmentChange {
                        step: Some(step),
                        ..Default::default()
                    },
                    now(),
                )
                .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(a) => results.push(a.status),
            Err(StoreError::Conflict(_) | StoreError::Fleet(FleetError::Conflict(_))) => {}
            Err(other) => panic!("{:?}: got {other:?}", t.backend),
        }
    }
    assert_eq!(
        results.len(),
        1,
        "{:?}: one step wins: {results:?}",
        t.backend
    );
    let order = t.db.order(&user, &won[0].order_id).await.unwrap();
    let expected = if results[0] == AssignmentStatus::Completed {
        OrderStatus::Delivered
    } else {
        OrderStatus::Pending
    };
    assert_eq!(order.status, expected);
    assert_eq!(
        t.db.driver(&user, &driver.driver_id).await.unwrap().status,
        DriverStatus::Active
    );
});

/// A Postgres database the Python server used already has orders, drivers
/// and assignments tables (global ids, nullable user_id): they are kept,
/// renamed `predecessor_*`, and the new tables are created beside them.
#[tokio::test]
#[cfg_attr(not(fm_pg), ignore = "Postgres: set FLEETMIND_TEST_PG")]
async fn the_predecessors_fleet_tables_are_kept_aside_on_postgres() {
    let pg = fresh_pg().await;
    let url = &pg.url;
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    for sql in [
        "CREATE TABLE drivers (driver_id VARCHAR(50) PRIMARY KEY, name VARCHAR(255), status VARCHAR(20), user_id VARCHAR(100))",
        "CREATE TABLE orders (order_id VARCHAR(50) PRIMARY KEY, customer_name VARCHAR(255), status VARCHAR(20), assigned_driver_id VARCHAR(50) REFERENCES drivers(driver_id), user_id VARCHAR(100))",
        "CREATE INDEX idx_orders_status ON orders(status)",
        "CREATE TABLE assignments (assignment_id VARCHAR(50) PRIMARY KEY, order_id VARCHAR(50) REFERENCES orders(order_id), driver_id VARCHAR(50) REFERENCES drivers(driver_id), status VARCHAR(20), user_id VARCHAR(100))",
        "INSERT INTO drivers VALUES ('DRV-20250101120000', 'Old Dan', 'active', NULL)",
        "INSERT INTO orders VALUES ('ORD-20250101120000', 'Old Customer', 'pending', NULL, 'user_c160f8cc69a4')",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let db = fleetmind::store::open(url, &fleetmind::store::PoolOptions::default())
        .await
        .expect("migrate over the predecessor's tables");
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM predecessor_orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 1);
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM predecessor_drivers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 1);
    let user = UserId::new("user_c160f8cc69a4");
    assert_eq!(
        db.count_orders(&user, &OrderFilter::default())
            .await
            .unwrap()
            .total,
        0
    );
    let order = db
        .create_order(&user, new_order("New", 1.0, 1.0), now())
        .await
        .unwrap();
    let driver = db
        .create_driver(&user, new_driver("New", 1.0, 1.0), now())
        .await
        .unwrap();
    db.assign(&user, &order.order_id, &driver.driver_id, None, now())
        .await
        .unwrap();
    pool.close().await;
}

//! The fleet's rows in SQL, shared by both backends: column lists, row
//! mapping, binding, and the single-row reads and writes the queries in
//! `sql.rs` are built from. Each write of a changeable row is conditional
//! on the status it was read with.

macro_rules! order_columns {
    () => {
        "order_id, customer_name, customer_phone, customer_email, delivery_address, \
         delivery_lat, delivery_lng, time_window_start, time_window_end, \
         expected_delivery_time, priority, weight_kg, volume_m3, special_instructions, \
         order_value, payment_status, requires_signature, is_fragile, requires_cold_storage, \
         status, assigned_driver_id, delivery_status, sla_grace_period_minutes, created_at, \
         updated_at, delivered_at"
    };
}

macro_rules! driver_columns {
    () => {
        "driver_id, name, phone, email, status, vehicle_type, vehicle_plate, capacity_kg, \
         capacity_m3, skills, current_address, current_lat, current_lng, \
         last_location_update, created_at, updated_at"
    };
}

macro_rules! assignment_columns {
    () => {
        "assignment_id, order_id, driver_id, status, assigned_at, updated_at, \
         route_distance_meters, route_duration_seconds, route_summary, driver_start_lat, \
         driver_start_lng, delivery_lat, delivery_lng, delivery_address, estimated_arrival, \
         actual_arrival, actual_distance_meters, vehicle_type, notes, failure_reason"
    };
}

/// The open assignment statuses, for SQL.
macro_rules! open_assignment {
    () => {
        "('active', 'in_progress')"
    };
}
macro_rules! fleet_rows {
    ($db:ty) => {
        use $crate::fleet::rules;
        use $crate::fleet::types::*;
        use $crate::store::StoreError;
        use $crate::store::fleet::FleetStore;
        use $crate::tenant::UserId;
        use chrono::{DateTime, Utc};
        use sqlx::Row;

        type Conn = <$db as sqlx::Database>::Connection;
        type DbRow = <$db as sqlx::Database>::Row;
        type Q<'q> = sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>;

        fn named<T>(
            row: &DbRow,
            col: &'static str,
            parse: fn(&str) -> Option<T>,
        ) -> Result<T, sqlx::Error> {
            let text: String = row.try_get(col)?;
            parse(&text).ok_or_else(|| sqlx::Error::ColumnDecode {
                index: col.into(),
                source: format!("unknown value in {col}").into(),
            })
        }

        fn named_opt<T>(
            row: &DbRow,
            col: &'static str,
            parse: fn(&str) -> Option<T>,
        ) -> Result<Option<T>, sqlx::Error> {
            let text: Option<String> = row.try_get(col)?;
            text.map(|text| {
                parse(&text).ok_or_else(|| sqlx::Error::ColumnDecode {
                    index: col.into(),
                    source: format!("unknown value in {col}").into(),
                })
            })
            .transpose()
        }

        fn order_from_row(row: &DbRow) -> Result<Order, sqlx::Error> {
            Ok(Order {
                order_id: row.try_get("order_id")?,
                customer_name: row.try_get("customer_name")?,
                customer_phone: row.try_get("customer_phone")?,
                customer_email: row.try_get("customer_email")?,
                delivery_address: row.try_get("delivery_address")?,
                delivery_lat: row.try_get("delivery_lat")?,
                delivery_lng: row.try_get("delivery_lng")?,
                time_window_start: row.try_get("time_window_start")?,
                time_window_end: row.try_get("time_window_end")?,
                expected_delivery_time: row.try_get("expected_delivery_time")?,
                priority: named(row, "priority", Priority::parse)?,
                weight_kg: row.try_get("weight_kg")?,
                volume_m3: row.try_get("volume_m3")?,
                special_instructions: row.try_get("special_instructions")?,
                order_value: row.try_get("order_value")?,
                payment_status: named(row, "payment_status", PaymentStatus::parse)?,
                requires_signature: row.try_get("requires_signature")?,
                is_fragile: row.try_get("is_fragile")?,
                requires_cold_storage: row.try_get("requires_cold_storage")?,
                status: named(row, "status", OrderStatus::parse)?,
                assigned_driver_id: row.try_get("assigned_driver_id")?,
                delivery_status: named_opt(row, "delivery_status", DeliveryStatus::parse)?,
                sla_grace_period_minutes: row.try_get("sla_grace_period_minutes")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                delivered_at: row.try_get("delivered_at")?,
            })
        }

        fn driver_from_row(row: &DbRow) -> Result<Driver, sqlx::Error> {
            Ok(Driver {
                driver_id: row.try_get("driver_id")?,
                name: row.try_get("name")?,
                phone: row.try_get("phone")?,
                email: row.try_get("email")?,
                status: named(row, "status", DriverStatus::parse)?,
                vehicle_type: named(row, "vehicle_type", VehicleType::parse)?,
                vehicle_plate: row.try_get("vehicle_plate")?,
                capacity_kg: row.try_get("capacity_kg")?,
                capacity_m3: row.try_get("capacity_m3")?,
                skills: named(row, "skills", rules::skills_from_text)?,
                current_address: row.try_get("current_address")?,
                current_lat: row.try_get("current_lat")?,
                current_lng: row.try_get("current_lng")?,
                last_location_update: row.try_get("last_location_update")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn assignment_from_row(row: &DbRow) -> Result<Assignment, sqlx::Error> {
            Ok(Assignment {
                assignment_id: row.try_get("assignment_id")?,
                order_id: row.try_get("order_id")?,
                driver_id: row.try_get("driver_id")?,
                status: named(row, "status", AssignmentStatus::parse)?,
                assigned_at: row.try_get("assigned_at")?,
                updated_at: row.try_get("updated_at")?,
                route_distance_meters: row.try_get("route_distance_meters")?,
                route_duration_seconds: row.try_get("route_duration_seconds")?,
                route_summary: row.try_get("route_summary")?,
                driver_start_lat: row.try_get("driver_start_lat")?,
                driver_start_lng: row.try_get("driver_start_lng")?,
                delivery_lat: row.try_get("delivery_lat")?,
                delivery_lng: row.try_get("delivery_lng")?,
                delivery_address: row.try_get("delivery_address")?,
                estimated_arrival: row.try_get("estimated_arrival")?,
                actual_arrival: row.try_get("actual_arrival")?,
                actual_distance_meters: row.try_get("actual_distance_meters")?,
                vehicle_type: named(row, "vehicle_type", VehicleType::parse)?,
                notes: row.try_get("notes")?,
                failure_reason: named_opt(row, "failure_reason", FailureReason::parse)?,
            })
        }

        fn order_search_text(o: &Order) -> String {
            rules::search_text(&[
                Some(&o.order_id),
                Some(&o.customer_name),
                o.customer_email.as_deref(),
                o.customer_phone.as_deref(),
            ])
        }

        fn driver_search_text(d: &Driver) -> String {
            rules::search_text(&[
                Some(&d.driver_id),
                Some(&d.name),
                d.email.as_deref(),
                d.phone.as_deref(),
                d.vehicle_plate.as_deref(),
            ])
        }

        /// Binds an order's columns as `$3` … `$27` (after user and id).
        fn bind_order<'q>(q: Q<'q>, o: &'q Order) -> Q<'q> {
            q.bind(&o.customer_name)
                .bind(&o.customer_phone)
                .bind(&o.customer_email)
                .bind(&o.delivery_address)
                .bind(o.delivery_lat)
                .bind(o.delivery_lng)
                .bind(o.time_window_start)
                .bind(o.time_window_end)
                .bind(o.expected_delivery_time)
                .bind(o.priority.as_str())
                .bind(o.weight_kg)
                .bind(o.volume_m3)
                .bind(&o.special_instructions)
                .bind(o.order_value)
                .bind(o.payment_status.as_str())
                .bind(o.requires_signature)
                .bind(o.is_fragile)
                .bind(o.requires_cold_storage)
                .bind(o.status.as_str())
                .bind(&o.assigned_driver_id)
                .bind(o.delivery_status.map(|s| s.as_str()))
                .bind(o.sla_grace_period_minutes)
                .bind(order_search_text(o))
                .bind(o.updated_at)
                .bind(o.delivered_at)
        }

        /// Binds a driver's columns as `$3` … `$16`.
        fn bind_driver<'q>(q: Q<'q>, d: &'q Driver) -> Q<'q> {
            q.bind(&d.name)
                .bind(&d.phone)
                .bind(&d.email)
                .bind(d.status.as_str())
                .bind(d.vehicle_type.as_str())
                .bind(&d.vehicle_plate)
                .bind(d.capacity_kg)
                .bind(d.capacity_m3)
                .bind(rules::skills_to_text(&d.skills))
                .bind(&d.current_address)
                .bind(d.current_lat)
                .bind(d.current_lng)
                .bind(d.last_location_update)
                .bind(driver_search_text(d))
                .bind(d.updated_at)
        }

        /// Binds an assignment's changeable columns as `$3` … `$8`.
        fn bind_assignment<'q>(q: Q<'q>, a: &'q Assignment) -> Q<'q> {
            q.bind(a.status.as_str())
                .bind(a.updated_at)
                .bind(a.actual_arrival)
                .bind(a.actual_distance_meters)
                .bind(&a.notes)
                .bind(a.failure_reason.map(|r| r.as_str()))
        }

        async fn insert_order(conn: &mut Conn, user: &UserId, o: &Order) -> Result<(), StoreError> {
            let q = sqlx::query(
                "INSERT INTO orders (user_id, order_id, customer_name, customer_phone, \
                 customer_email, delivery_address, delivery_lat, delivery_lng, time_window_start, \
                 time_window_end, expected_delivery_time, priority, weight_kg, volume_m3, \
                 special_instructions, order_value, payment_status, requires_signature, is_fragile, \
                 requires_cold_storage, status, assigned_driver_id, delivery_status, \
                 sla_grace_period_minutes, search_text, updated_at, delivered_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)",
            )
            .bind(user.as_str())
            .bind(&o.order_id);
            bind_order(q, o).bind(o.created_at).execute(&mut *conn).await?;
            Ok(())
        }

        /// Writes every changeable column if the row still has `expected`
        /// status; `false` if it does not (someone else changed it).
        async fn store_order(
            conn: &mut Conn,
            user: &UserId,
            o: &Order,
            expected: OrderStatus,
        ) -> Result<bool, StoreError> {
            let q = sqlx::query(
                "UPDATE orders SET customer_name = $3, customer_phone = $4, customer_email = $5, \
                 delivery_address = $6, delivery_lat = $7, delivery_lng = $8, \
                 time_window_start = $9, time_window_end = $10, expected_delivery_time = $11, \
                 priority = $12, weight_kg = $13, volume_m3 = $14, special_instructions = $15, \
                 order_value = $16, payment_status = $17, requires_signature = $18, \
                 is_fragile = $19, requires_cold_storage = $20, status = $21, \
                 assigned_driver_id = $22, delivery_status = $23, sla_grace_period_minutes = $24, \
                 search_text = $25, updated_at = $26, delivered_at = $27 \
                 WHERE user_id = $1 AND order_id = $2 AND status = $28",
            )
            .bind(user.as_str())
            .bind(&o.order_id);
            let done = bind_order(q, o)
                .bind(expected.as_str())
                .execute(&mut *conn)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn insert_driver(conn: &mut Conn, user: &UserId, d: &Driver) -> Result<(), StoreError> {
            let q = sqlx::query(
                "INSERT INTO drivers (user_id, driver_id, name, phone, email, status, vehicle_type, \
                 vehicle_plate, capacity_kg, capacity_m3, skills, current_address, current_lat, \
                 current_lng, last_location_update, search_text, updated_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18)",
            )
            .bind(user.as_str())
            .bind(&d.driver_id);
            bind_driver(q, d).bind(d.created_at).execute(&mut *conn).await?;
            Ok(())
        }

        async fn store_driver(
            conn: &mut Conn,
            user: &UserId,
            d: &Driver,
            expected: DriverStatus,
        ) -> Result<bool, StoreError> {
            let q = sqlx::query(
                "UPDATE drivers SET name = $3, phone = $4, email = $5, status = $6, \
                 vehicle_type = $7, vehicle_plate = $8, capacity_kg = $9, capacity_m3 = $10, \
                 skills = $11, current_address = $12, current_lat = $13, current_lng = $14, \
                 last_location_update = $15, search_text = $16, updated_at = $17 \
                 WHERE user_id = $1 AND driver_id = $2 AND status = $18",
            )
            .bind(user.as_str())
            .bind(&d.driver_id);
            let done = bind_driver(q, d)
                .bind(expected.as_str())
                .execute(&mut *conn)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn insert_assignment(
            conn: &mut Conn,
            user: &UserId,
            a: &Assignment,
        ) -> Result<(), StoreError> {
            let q = sqlx::query(
                "INSERT INTO assignments (user_id, assignment_id, status, updated_at, \
                 actual_arrival, actual_distance_meters, notes, failure_reason, order_id, \
                 driver_id, assigned_at, route_distance_meters, route_duration_seconds, \
                 route_summary, driver_start_lat, driver_start_lng, delivery_lat, delivery_lng, \
                 delivery_address, estimated_arrival, vehicle_type) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19, $20, $21)",
            )
            .bind(user.as_str())
            .bind(&a.assignment_id);
            bind_assignment(q, a)
                .bind(&a.order_id)
                .bind(&a.driver_id)
                .bind(a.assigned_at)
                .bind(a.route_distance_meters)
                .bind(a.route_duration_seconds)
                .bind(&a.route_summary)
                .bind(a.driver_start_lat)
                .bind(a.driver_start_lng)
                .bind(a.delivery_lat)
                .bind(a.delivery_lng)
                .bind(&a.delivery_address)
                .bind(a.estimated_arrival)
                .bind(a.vehicle_type.as_str())
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        async fn store_assignment(
            conn: &mut Conn,
            user: &UserId,
            a: &Assignment,
            expected: AssignmentStatus,
        ) -> Result<bool, StoreError> {
            let q = sqlx::query(
                "UPDATE assignments SET status = $3, updated_at = $4, actual_arrival = $5, \
                 actual_distance_meters = $6, notes = $7, failure_reason = $8 \
                 WHERE user_id = $1 AND assignment_id = $2 AND status = $9",
            )
            .bind(user.as_str())
            .bind(&a.assignment_id);
            let done = bind_assignment(q, a)
                .bind(expected.as_str())
                .execute(&mut *conn)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn order_in(conn: &mut Conn, user: &UserId, id: &str) -> Result<Order, StoreError> {
            let row = sqlx::query(concat!(
                "SELECT ",
                order_columns!(),
                " FROM orders WHERE user_id = $1 AND order_id = $2"
            ))
            .bind(user.as_str())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                Some(row) => Ok(order_from_row(&row)?),
                None => Err(StoreError::NotFound("order")),
            }
        }

        async fn driver_in(conn: &mut Conn, user: &UserId, id: &str) -> Result<Driver, StoreError> {
            let row = sqlx::query(concat!(
                "SELECT ",
                driver_columns!(),
                " FROM drivers WHERE user_id = $1 AND driver_id = $2"
            ))
            .bind(user.as_str())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                Some(row) => Ok(driver_from_row(&row)?),
                None => Err(StoreError::NotFound("driver")),
            }
        }

        async fn assignment_in(
            conn: &mut Conn,
            user: &UserId,
            id: &str,
        ) -> Result<Assignment, StoreError> {
            let row = sqlx::query(concat!(
                "SELECT ",
                assignment_columns!(),
                " FROM assignments WHERE user_id = $1 AND assignment_id = $2"
            ))
            .bind(user.as_str())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                Some(row) => Ok(assignment_from_row(&row)?),
                None => Err(StoreError::NotFound("assignment")),
            }
        }

        async fn count_in(conn: &mut Conn, sql: &'static str, user: &UserId, arg: Option<&str>) -> Result<i64, StoreError> {
            let n: i64 = sqlx::query_scalar(sql)
                .bind(user.as_str())
                .bind(arg)
                .fetch_one(&mut *conn)
                .await?;
            Ok(n)
        }

        fn changed_meanwhile(what: &str, id: &str) -> StoreError {
            StoreError::Conflict(format!("{what} {id} was changed by another call meanwhile; try again"))
        }

        fn counts(rows: Vec<(String, i64)>) -> StatusCounts {
            StatusCounts {
                total: rows.iter().map(|(_, n)| n).sum(),
                by_status: rows,
            }
        }

        fn dir(descending: bool) -> &'static str {
            if descending { "DESC" } else { "ASC" }
        }

        const PRIORITY_RANK: &str =
            "CASE priority WHEN 'urgent' THEN 3 WHEN 'express' THEN 2 ELSE 1 END";
    };
}

//! The fleet's SQL, written once for both backends.
//!
//! Both sqlx drivers accept the same `$n` placeholders and the same Rust
//! types for these columns (text, double, boolean, bigint, timestamps), so
//! the queries are shared; a macro stamps the implementation out for each
//! backend's concrete types. Every query names the tenant (`user_id = $1`).
//! Status changes are conditional updates (`AND status = <the status read>`)
//! inside one transaction, so a concurrent change makes the call fail
//! instead of breaking a state machine.

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

macro_rules! fleet_store_impl {
    ($store:ty, $db:ty) => {
        use $crate::auth::UserId;
        use $crate::store::StoreError;
        use $crate::store::fleet::FleetStore;
        use $crate::store::fleet::rules;
        use $crate::store::fleet::types::*;
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

        #[async_trait::async_trait]
        impl FleetStore for $store {
            async fn create_order(&self, user: &UserId, new: NewOrder) -> Result<Order, StoreError> {
                let new = new.checked()?;
                let now = rules::now();
                let order = Order {
                    order_id: rules::new_id("ORD"),
                    customer_name: new.customer_name,
                    customer_phone: new.customer_phone,
                    customer_email: new.customer_email,
                    delivery_address: new.delivery_address,
                    delivery_lat: new.delivery_lat,
                    delivery_lng: new.delivery_lng,
                    time_window_start: new.time_window_start,
                    time_window_end: new.time_window_end,
                    expected_delivery_time: new.expected_delivery_time,
                    priority: new.priority,
                    weight_kg: new.weight_kg,
                    volume_m3: new.volume_m3,
                    special_instructions: new.special_instructions,
                    order_value: new.order_value,
                    payment_status: new.payment_status,
                    requires_signature: new.requires_signature,
                    is_fragile: new.is_fragile,
                    requires_cold_storage: new.requires_cold_storage,
                    status: OrderStatus::Pending,
                    assigned_driver_id: None,
                    delivery_status: None,
                    sla_grace_period_minutes: new.sla_grace_period_minutes,
                    created_at: now,
                    updated_at: now,
                    delivered_at: None,
                };
                let mut conn = self.pool().acquire().await?;
                insert_order(&mut conn, user, &order).await?;
                Ok(order)
            }

            async fn order(&self, user: &UserId, order_id: &str) -> Result<Order, StoreError> {
                let mut conn = self.pool().acquire().await?;
                order_in(&mut conn, user, order_id).await
            }

            async fn orders(&self, user: &UserId, query: &OrderQuery) -> Result<Vec<Order>, StoreError> {
                let d = dir(query.descending);
                let order_by = match query.sort {
                    OrderSort::CreatedAt => format!("created_at {d}, order_id {d}"),
                    OrderSort::Priority => {
                        format!("{PRIORITY_RANK} {d}, created_at {d}, order_id {d}")
                    }
                    OrderSort::TimeWindowStart => format!(
                        "time_window_start {d} NULLS LAST, created_at {d}, order_id {d}"
                    ),
                };
                let sql = format!(
                    concat!(
                        "SELECT ",
                        order_columns!(),
                        " FROM orders WHERE user_id = $1 \
                         AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR priority = $3) \
                         AND ($4 IS NULL OR payment_status = $4) \
                         AND ($5 IS NULL OR assigned_driver_id = $5) \
                         ORDER BY {} LIMIT $6 OFFSET $7"
                    ),
                    order_by
                );
                let f = &query.filter;
                let rows = sqlx::query(&sql)
                    .bind(user.as_str())
                    .bind(f.status.map(|s| s.as_str()))
                    .bind(f.priority.map(|s| s.as_str()))
                    .bind(f.payment_status.map(|s| s.as_str()))
                    .bind(f.assigned_driver_id.as_deref())
                    .bind(query.limit.clamp(0, 1000))
                    .bind(query.offset.max(0))
                    .fetch_all(self.pool())
                    .await?;
                Ok(rows.iter().map(order_from_row).collect::<Result<_, _>>()?)
            }

            async fn count_orders(&self, user: &UserId, f: &OrderFilter) -> Result<StatusCounts, StoreError> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT status, COUNT(*) FROM orders WHERE user_id = $1 \
                     AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR priority = $3) \
                     AND ($4 IS NULL OR payment_status = $4) \
                     AND ($5 IS NULL OR assigned_driver_id = $5) \
                     GROUP BY status ORDER BY status",
                )
                .bind(user.as_str())
                .bind(f.status.map(|s| s.as_str()))
                .bind(f.priority.map(|s| s.as_str()))
                .bind(f.payment_status.map(|s| s.as_str()))
                .bind(f.assigned_driver_id.as_deref())
                .fetch_all(self.pool())
                .await?;
                Ok(counts(rows))
            }

            async fn search_orders(&self, user: &UserId, term: &str, limit: i64) -> Result<Vec<Order>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    order_columns!(),
                    " FROM orders WHERE user_id = $1 AND search_text LIKE $2 ESCAPE '\\' \
                     ORDER BY created_at DESC, order_id DESC LIMIT $3"
                ))
                .bind(user.as_str())
                .bind(rules::like_pattern(term))
                .bind(limit.clamp(0, 1000))
                .fetch_all(self.pool())
                .await?;
                Ok(rows.iter().map(order_from_row).collect::<Result<_, _>>()?)
            }

            async fn open_orders(&self, user: &UserId, limit: i64) -> Result<Vec<Order>, StoreError> {
                let sql = format!(
                    concat!(
                        "SELECT ",
                        order_columns!(),
                        " FROM orders WHERE user_id = $1 \
                         AND status IN ('pending', 'assigned', 'in_transit') \
                         ORDER BY {} DESC, expected_delivery_time ASC, order_id ASC LIMIT $2"
                    ),
                    PRIORITY_RANK
                );
                let rows = sqlx::query(&sql)
                    .bind(user.as_str())
                    .bind(limit.clamp(0, 1000))
                    .fetch_all(self.pool())
                    .await?;
                Ok(rows.iter().map(order_from_row).collect::<Result<_, _>>()?)
            }

            async fn update_order(&self, user: &UserId, order_id: &str, patch: OrderPatch) -> Result<Order, StoreError> {
                let mut tx = self.fleet_tx().await?;
                let order = order_in(&mut tx, user, order_id).await?;
                let mut next = rules::patch_order(&order, patch)?;
                if next == order {
                    return Ok(order);
                }
                next.updated_at = rules::now();
                if !store_order(&mut tx, user, &next, order.status).await? {
                    return Err(changed_meanwhile("order", order_id));
                }
                tx.commit().await?;
                Ok(next)
            }

            async fn delete_order(&self, user: &UserId, order_id: &str) -> Result<(), StoreError> {
                let mut tx = self.fleet_tx().await?;
                order_in(&mut tx, user, order_id).await?;
                let open = count_in(
                    &mut tx,
                    concat!("SELECT COUNT(*) FROM assignments WHERE user_id = $1 AND order_id = $2 AND status IN ", open_assignment!()),
                    user,
                    Some(order_id),
                )
                .await?;
                if open > 0 {
                    return Err(StoreError::Conflict(format!(
                        "order {order_id} has an open assignment; unassign, complete or fail it first"
                    )));
                }
                sqlx::query("DELETE FROM orders WHERE user_id = $1 AND order_id = $2")
                    .bind(user.as_str())
                    .bind(order_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_all_orders(&self, user: &UserId, status: Option<OrderStatus>) -> Result<u64, StoreError> {
                let status = status.map(|s| s.as_str());
                let mut tx = self.fleet_tx().await?;
                let open = count_in(
                    &mut tx,
                    concat!(
                        "SELECT COUNT(*) FROM assignments a JOIN orders o \
                         ON o.user_id = a.user_id AND o.order_id = a.order_id \
                         WHERE a.user_id = $1 AND ($2 IS NULL OR o.status = $2) AND a.status IN ",
                        open_assignment!()
                    ),
                    user,
                    status,
                )
                .await?;
                if open > 0 {
                    return Err(StoreError::Conflict(format!(
                        "{open} of these orders have open assignments; complete, fail or unassign them first"
                    )));
                }
                let done = sqlx::query("DELETE FROM orders WHERE user_id = $1 AND ($2 IS NULL OR status = $2)")
                    .bind(user.as_str())
                    .bind(status)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }

            async fn create_driver(&self, user: &UserId, new: NewDriver) -> Result<Driver, StoreError> {
                let new = new.checked()?;
                let now = rules::now();
                let driver = Driver {
                    driver_id: rules::new_id("DRV"),
                    name: new.name,
                    phone: new.phone,
                    email: new.email,
                    status: new.status,
                    vehicle_type: new.vehicle_type,
                    vehicle_plate: new.vehicle_plate,
                    capacity_kg: new.capacity_kg,
                    capacity_m3: new.capacity_m3,
                    skills: new.skills,
                    current_address: new.current_address,
                    current_lat: new.current_lat,
                    current_lng: new.current_lng,
                    last_location_update: now,
                    created_at: now,
                    updated_at: now,
                };
                let mut conn = self.pool().acquire().await?;
                insert_driver(&mut conn, user, &driver).await?;
                Ok(driver)
            }

            async fn driver(&self, user: &UserId, driver_id: &str) -> Result<Driver, StoreError> {
                let mut conn = self.pool().acquire().await?;
                driver_in(&mut conn, user, driver_id).await
            }

            async fn drivers(&self, user: &UserId, query: &DriverQuery) -> Result<Vec<Driver>, StoreError> {
                let d = dir(query.descending);
                let order_by = match query.sort {
                    DriverSort::CreatedAt => format!("created_at {d}, driver_id {d}"),
                    DriverSort::Name => format!("name {d}, driver_id {d}"),
                };
                let sql = format!(
                    concat!(
                        "SELECT ",
                        driver_columns!(),
                        " FROM drivers WHERE user_id = $1 \
                         AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR vehicle_type = $3) \
                         ORDER BY {} LIMIT $4 OFFSET $5"
                    ),
                    order_by
                );
                let rows = sqlx::query(&sql)
                    .bind(user.as_str())
                    .bind(query.filter.status.map(|s| s.as_str()))
                    .bind(query.filter.vehicle_type.map(|s| s.as_str()))
                    .bind(query.limit.clamp(0, 1000))
                    .bind(query.offset.max(0))
                    .fetch_all(self.pool())
                    .await?;
                Ok(rows.iter().map(driver_from_row).collect::<Result<_, _>>()?)
            }

            async fn count_drivers(&self, user: &UserId, f: &DriverFilter) -> Result<StatusCounts, StoreError> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT status, COUNT(*) FROM drivers WHERE user_id = $1 \
                     AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR vehicle_type = $3) \
                     GROUP BY status ORDER BY status",
                )
                .bind(user.as_str())
                .bind(f.status.map(|s| s.as_str()))
                .bind(f.vehicle_type.map(|s| s.as_str()))
                .fetch_all(self.pool())
                .await?;
                Ok(counts(rows))
            }

            async fn search_drivers(&self, user: &UserId, term: &str, limit: i64) -> Result<Vec<Driver>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    driver_columns!(),
                    " FROM drivers WHERE user_id = $1 AND search_text LIKE $2 ESCAPE '\\' \
                     ORDER BY created_at DESC, driver_id DESC LIMIT $3"
                ))
                .bind(user.as_str())
                .bind(rules::like_pattern(term))
                .bind(limit.clamp(0, 1000))
                .fetch_all(self.pool())
                .await?;
                Ok(rows.iter().map(driver_from_row).collect::<Result<_, _>>()?)
            }

            async fn update_driver(&self, user: &UserId, driver_id: &str, patch: DriverPatch) -> Result<Driver, StoreError> {
                let mut tx = self.fleet_tx().await?;
                let driver = driver_in(&mut tx, user, driver_id).await?;
                let mut next = rules::patch_driver(&driver, patch)?;
                if next == driver {
                    return Ok(driver);
                }
                let now = rules::now();
                if (next.current_lat, next.current_lng, &next.current_address)
                    != (driver.current_lat, driver.current_lng, &driver.current_address)
                {
                    next.last_location_update = now;
                }
                next.updated_at = now;
                if !store_driver(&mut tx, user, &next, driver.status).await? {
                    return Err(changed_meanwhile("driver", driver_id));
                }
                tx.commit().await?;
                Ok(next)
            }

            async fn delete_driver(&self, user: &UserId, driver_id: &str) -> Result<(), StoreError> {
                let mut tx = self.fleet_tx().await?;
                driver_in(&mut tx, user, driver_id).await?;
                let open = count_in(
                    &mut tx,
                    concat!("SELECT COUNT(*) FROM assignments WHERE user_id = $1 AND driver_id = $2 AND status IN ", open_assignment!()),
                    user,
                    Some(driver_id),
                )
                .await?;
                if open > 0 {
                    return Err(StoreError::Conflict(format!(
                        "driver {driver_id} has an open assignment; unassign, complete or fail it first"
                    )));
                }
                // Finished orders keep no link to a driver who is gone.
                sqlx::query("UPDATE orders SET assigned_driver_id = NULL WHERE user_id = $1 AND assigned_driver_id = $2")
                    .bind(user.as_str())
                    .bind(driver_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM drivers WHERE user_id = $1 AND driver_id = $2")
                    .bind(user.as_str())
                    .bind(driver_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_all_drivers(&self, user: &UserId, status: Option<DriverStatus>) -> Result<u64, StoreError> {
                let status = status.map(|s| s.as_str());
                let mut tx = self.fleet_tx().await?;
                let open = count_in(
                    &mut tx,
                    concat!(
                        "SELECT COUNT(*) FROM assignments a JOIN drivers d \
                         ON d.user_id = a.user_id AND d.driver_id = a.driver_id \
                         WHERE a.user_id = $1 AND ($2 IS NULL OR d.status = $2) AND a.status IN ",
                        open_assignment!()
                    ),
                    user,
                    status,
                )
                .await?;
                if open > 0 {
                    return Err(StoreError::Conflict(format!(
                        "{open} of these drivers have open assignments; complete, fail or unassign them first"
                    )));
                }
                sqlx::query(
                    "UPDATE orders SET assigned_driver_id = NULL WHERE user_id = $1 \
                     AND assigned_driver_id IN (SELECT driver_id FROM drivers \
                     WHERE user_id = $1 AND ($2 IS NULL OR status = $2))",
                )
                .bind(user.as_str())
                .bind(status)
                .execute(&mut *tx)
                .await?;
                let done = sqlx::query("DELETE FROM drivers WHERE user_id = $1 AND ($2 IS NULL OR status = $2)")
                    .bind(user.as_str())
                    .bind(status)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }

            async fn assign(&self, user: &UserId, order_id: &str, driver_id: &str) -> Result<Assignment, StoreError> {
                let mut tx = self.fleet_tx().await?;
                let order = order_in(&mut tx, user, order_id).await?;
                let driver = driver_in(&mut tx, user, driver_id).await?;
                if order.status != OrderStatus::Pending {
                    return Err(StoreError::Conflict(format!(
                        "order {order_id} is {}; only pending orders can be assigned",
                        order.status
                    )));
                }
                if driver.status != DriverStatus::Active {
                    return Err(StoreError::Conflict(format!(
                        "driver {driver_id} is {}; only active drivers can be assigned",
                        driver.status
                    )));
                }
                if let Some(why) = rules::unsuitable(&order, &driver) {
                    return Err(StoreError::Conflict(why));
                }
                let now = rules::now();
                let route = rules::estimate_route(&order, &driver);
                let assignment = Assignment {
                    assignment_id: rules::new_id("ASN"),
                    order_id: order.order_id.clone(),
                    driver_id: driver.driver_id.clone(),
                    status: AssignmentStatus::Active,
                    assigned_at: now,
                    updated_at: now,
                    route_distance_meters: route.distance_meters,
                    route_duration_seconds: route.duration_seconds,
                    route_summary: route.summary,
                    driver_start_lat: driver.current_lat,
                    driver_start_lng: driver.current_lng,
                    delivery_lat: order.delivery_lat,
                    delivery_lng: order.delivery_lng,
                    delivery_address: order.delivery_address.clone(),
                    estimated_arrival: now + chrono::Duration::seconds(route.duration_seconds),
                    actual_arrival: None,
                    actual_distance_meters: None,
                    vehicle_type: driver.vehicle_type,
                    notes: None,
                    failure_reason: None,
                };
                insert_assignment(&mut tx, user, &assignment).await?;
                let next_order = Order {
                    status: OrderStatus::Assigned,
                    assigned_driver_id: Some(driver.driver_id.clone()),
                    delivery_status: None,
                    updated_at: now,
                    ..order
                };
                if !store_order(&mut tx, user, &next_order, OrderStatus::Pending).await? {
                    return Err(changed_meanwhile("order", order_id));
                }
                let next_driver = Driver { status: DriverStatus::Busy, updated_at: now, ..driver };
                if !store_driver(&mut tx, user, &next_driver, DriverStatus::Active).await? {
                    return Err(changed_meanwhile("driver", driver_id));
                }
                tx.commit().await?;
                Ok(assignment)
            }

            async fn assignment(&self, user: &UserId, assignment_id: &str) -> Result<Assignment, StoreError> {
                let mut conn = self.pool().acquire().await?;
                assignment_in(&mut conn, user, assignment_id).await
            }

            async fn assignments_of_order(&self, user: &UserId, order_id: &str) -> Result<Vec<Assignment>, StoreError> {
                let mut conn = self.pool().acquire().await?;
                order_in(&mut conn, user, order_id).await?;
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    assignment_columns!(),
                    " FROM assignments WHERE user_id = $1 AND order_id = $2 \
                     ORDER BY assigned_at DESC, assignment_id DESC"
                ))
                .bind(user.as_str())
                .bind(order_id)
                .fetch_all(&mut *conn)
                .await?;
                Ok(rows.iter().map(assignment_from_row).collect::<Result<_, _>>()?)
            }

            async fn assignments_of_driver(&self, user: &UserId, driver_id: &str) -> Result<Vec<Assignment>, StoreError> {
                let mut conn = self.pool().acquire().await?;
                driver_in(&mut conn, user, driver_id).await?;
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    assignment_columns!(),
                    " FROM assignments WHERE user_id = $1 AND driver_id = $2 \
                     ORDER BY assigned_at DESC, assignment_id DESC"
                ))
                .bind(user.as_str())
                .bind(driver_id)
                .fetch_all(&mut *conn)
                .await?;
                Ok(rows.iter().map(assignment_from_row).collect::<Result<_, _>>()?)
            }

            async fn assignments_since(&self, user: &UserId, since: DateTime<Utc>) -> Result<Vec<(String, i64)>, StoreError> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT driver_id, COUNT(*) FROM assignments WHERE user_id = $1 \
                     AND assigned_at >= $2 GROUP BY driver_id ORDER BY driver_id",
                )
                .bind(user.as_str())
                .bind(since)
                .fetch_all(self.pool())
                .await?;
                Ok(rows)
            }

            async fn change_assignment(&self, user: &UserId, assignment_id: &str, change: AssignmentChange) -> Result<Assignment, StoreError> {
                let notes = rules::optional_text("notes", change.notes.as_deref(), rules::TEXT_MAX)?;
                let distance = change
                    .actual_distance_meters
                    .map(|d| rules::amount("actual_distance_meters", d, rules::DISTANCE_MAX_M, false))
                    .transpose()?;
                let step = match change.step {
                    Some(AssignmentStep::Fail { reason, address, lat, lng }) => Some(AssignmentStep::Fail {
                        reason,
                        address: rules::required_text("current_address", &address, rules::ADDRESS_MAX)?,
                        lat: rules::latitude("current_lat", lat)?,
                        lng: rules::longitude("current_lng", lng)?,
                    }),
                    other => other,
                };
                let mut tx = self.fleet_tx().await?;
                let assignment = assignment_in(&mut tx, user, assignment_id).await?;
                let now = rules::now();
                let mut next = assignment.clone();
                if notes.is_some() {
                    next.notes = notes;
                }
                if distance.is_some() {
                    next.actual_distance_meters = distance;
                }
                if let Some(at) = change.actual_arrival {
                    next.actual_arrival = Some(chrono::SubsecRound::trunc_subsecs(at, 6));
                }
                if let Some(step) = &step {
                    if let Some(why) = rules::refuse_step(&assignment, step) {
                        return Err(StoreError::Conflict(why));
                    }
                    next.status = step.target();
                    let order = order_in(&mut tx, user, &assignment.order_id).await?;
                    let driver = driver_in(&mut tx, user, &assignment.driver_id).await?;
                    let order_to = step.order_status();
                    if !order.status.can_become(order_to) {
                        return Err(StoreError::Conflict(format!(
                            "order {} is {} and cannot become {order_to}",
                            order.order_id, order.status
                        )));
                    }
                    let mut next_order = Order { status: order_to, updated_at: now, ..order.clone() };
                    let mut next_driver = Driver { status: step.driver_status(), updated_at: now, ..driver.clone() };
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
                        AssignmentStep::Fail { reason, address, lat, lng } => {
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
                    if !store_order(&mut tx, user, &next_order, order.status).await? {
                        return Err(changed_meanwhile("order", &order.order_id));
                    }
                    if next_driver != driver && !store_driver(&mut tx, user, &next_driver, driver.status).await? {
                        return Err(changed_meanwhile("driver", &driver.driver_id));
                    }
                }
                if next == assignment {
                    return Ok(assignment);
                }
                next.updated_at = now;
                if !store_assignment(&mut tx, user, &next, assignment.status).await? {
                    return Err(changed_meanwhile("assignment", assignment_id));
                }
                tx.commit().await?;
                Ok(next)
            }
        }
    };
}

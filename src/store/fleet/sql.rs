//! The fleet's SQL, written once for both backends.
//!
//! Both sqlx drivers accept the same `$n` placeholders and the same Rust
//! types for these columns (text, double, boolean, bigint, timestamps), so
//! the queries are shared; a macro stamps the implementation out for each
//! backend's concrete types. Every query names the tenant (`user_id = $1`).
//! Status changes are conditional updates (`AND status = <the status read>`)
//! inside one transaction, so a concurrent change makes the call fail
//! instead of breaking a state machine.

/// The condition of `orders` and `count_orders`: the tenant ($1) and the
/// `OrderFilter` ($2 status, $3 priority, $4 payment status, $5 driver).
macro_rules! order_filter {
    () => {
        "user_id = $1 \
         AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR priority = $3) \
         AND ($4 IS NULL OR payment_status = $4) \
         AND ($5 IS NULL OR assigned_driver_id = $5)"
    };
}

/// The condition of `drivers` and `count_drivers`: the tenant ($1) and the
/// `DriverFilter` ($2 status, $3 vehicle type).
macro_rules! driver_filter {
    () => {
        "user_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR vehicle_type = $3)"
    };
}

macro_rules! fleet_store_impl {
    ($store:ty, $db:ty) => {
        fleet_rows!($db);

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
                        " FROM orders WHERE ",
                        order_filter!(),
                        " ORDER BY {} LIMIT $6 OFFSET $7"
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
                let rows: Vec<(String, i64)> = sqlx::query_as(concat!(
                    "SELECT status, COUNT(*) FROM orders WHERE ",
                    order_filter!(),
                    " GROUP BY status ORDER BY status"
                ))
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
                let mut tx = self.write_tx().await?;
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
                let mut tx = self.write_tx().await?;
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
                let mut tx = self.write_tx().await?;
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
                        " FROM drivers WHERE ",
                        driver_filter!(),
                        " ORDER BY {} LIMIT $4 OFFSET $5"
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
                let rows: Vec<(String, i64)> = sqlx::query_as(concat!(
                    "SELECT status, COUNT(*) FROM drivers WHERE ",
                    driver_filter!(),
                    " GROUP BY status ORDER BY status"
                ))
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
                let mut tx = self.write_tx().await?;
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
                let mut tx = self.write_tx().await?;
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
                let mut tx = self.write_tx().await?;
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
                let mut tx = self.write_tx().await?;
                let order = order_in(&mut tx, user, order_id).await?;
                let driver = driver_in(&mut tx, user, driver_id).await?;
                rules::check_assignment(&order, &driver)?;
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
                    estimated_arrival: rules::later_by_seconds(now, route.duration_seconds),
                    actual_arrival: None,
                    actual_distance_meters: None,
                    vehicle_type: driver.vehicle_type,
                    notes: None,
                    failure_reason: None,
                };
                // The open-assignment indexes refuse a second open
                // assignment a concurrent call committed meanwhile.
                insert_assignment(&mut tx, user, &assignment)
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
                let actual_arrival = change
                    .actual_arrival
                    .map(|at| rules::time("actual_arrival", at))
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
                let mut tx = self.write_tx().await?;
                let assignment = assignment_in(&mut tx, user, assignment_id).await?;
                let now = rules::now();
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
                    if !store_driver(&mut tx, user, &next_driver, driver.status).await? {
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

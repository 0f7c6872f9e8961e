//! The `drivers` table.

use super::table::{
    Bind, Column, Read, Table, insert, read, read_row, refuse_if_any_assigned, refuse_if_assigned,
    write,
};
use super::{DbRow, This};
use crate::fleet::rules;
use crate::fleet::types::*;
use crate::store::StoreError;
use crate::store::fleet::rows::*;
use crate::store::sql_backend::SqlBackend;
use crate::tenant::UserId;
use chrono::{DateTime, Utc};
use std::sync::LazyLock;

static COUNT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT status, COUNT(*) FROM drivers WHERE {DRIVER_FILTER} GROUP BY status ORDER BY status"
    )
});

impl Table for Driver {
    type Status = DriverStatus;
    const SQL: &'static TableSql<Bind<Driver>, Read<Driver>> = &DRIVERS;

    fn id(&self) -> &str {
        &self.driver_id
    }
}

impl sqlx::FromRow<'_, DbRow> for Driver {
    fn from_row(row: &DbRow) -> Result<Self, sqlx::Error> {
        read_row(row)
    }
}

/// The `drivers` table (see `orders.rs`).
static DRIVERS: TableSql<Bind<Driver>, Read<Driver>> =
    TableSql::new("driver", "drivers", "driver_id", COLUMNS);

/// The columns read into a [`Driver`].
pub(super) static DRIVER_COLUMNS: &Columns<Bind<Driver>, Read<Driver>> = &DRIVERS.columns;

/// Every column: its name, how the driver's value is bound and how it is
/// read back (see `orders.rs`).
// A table, one line per column (rustfmt would break the longer ones).
#[rustfmt::skip]
const COLUMNS: &[Column<Driver>] = &[
    set_once("driver_id", |d, q| q.bind(&d.driver_id), |d, c| c.get(&mut d.driver_id)),
    column("name", |d, q| q.bind(&d.name), |d, c| c.get(&mut d.name)),
    column("phone", |d, q| q.bind(&d.phone), |d, c| c.get(&mut d.phone)),
    column("email", |d, q| q.bind(&d.email), |d, c| c.get(&mut d.email)),
    column("status", |d, q| q.bind(d.status.as_str()), |d, c| c.named(&mut d.status, DriverStatus::parse)),
    column("vehicle_type", |d, q| q.bind(d.vehicle_type.as_str()), |d, c| c.named(&mut d.vehicle_type, VehicleType::parse)),
    column("vehicle_plate", |d, q| q.bind(&d.vehicle_plate), |d, c| c.get(&mut d.vehicle_plate)),
    column("capacity_kg", |d, q| q.bind(d.capacity_kg), |d, c| c.get(&mut d.capacity_kg)),
    column("capacity_m3", |d, q| q.bind(d.capacity_m3), |d, c| c.get(&mut d.capacity_m3)),
    column("skills", |d, q| q.bind(rules::skills_to_text(&d.skills)), |d, c| c.named(&mut d.skills, rules::skills_from_text)),
    column("current_address", |d, q| q.bind(&d.current_address), |d, c| c.get(&mut d.current_address)),
    column("current_lat", |d, q| q.bind(d.current_lat), |d, c| c.get(&mut d.current_lat)),
    column("current_lng", |d, q| q.bind(d.current_lng), |d, c| c.get(&mut d.current_lng)),
    column("last_location_update", |d, q| q.bind(d.last_location_update), |d, c| c.get(&mut d.last_location_update)),
    unread("search_text", |d, q| q.bind(driver_search_text(d))),
    column("updated_at", |d, q| q.bind(d.updated_at), |d, c| c.get(&mut d.updated_at)),
    set_once("created_at", |d, q| q.bind(d.created_at), |d, c| c.get(&mut d.created_at)),
];

pub(super) async fn create(
    store: &This,
    user: &UserId,
    new: NewDriver,
    now: DateTime<Utc>,
) -> Result<Driver, StoreError> {
    let driver = rules::new_driver(new, now)?;
    let mut conn = store.pool().acquire().await?;
    insert(&mut conn, user, &driver).await?;
    Ok(driver)
}

pub(super) async fn list(
    store: &This,
    user: &UserId,
    query: &DriverQuery,
) -> Result<Vec<Driver>, StoreError> {
    let d = dir(query.descending);
    let order_by = match query.sort {
        DriverSort::CreatedAt => format!("created_at {d}, driver_id {d}"),
        DriverSort::Name => format!("name {d}, driver_id {d}"),
    };
    let sql = format!(
        "SELECT {DRIVER_COLUMNS} FROM drivers WHERE {DRIVER_FILTER} ORDER BY {order_by} LIMIT $4 OFFSET $5"
    );
    Ok(sqlx::query_as(&sql)
        .bind(user.as_str())
        .bind(query.filter.status.map(|s| s.as_str()))
        .bind(query.filter.vehicle_type.map(|s| s.as_str()))
        .bind(query.limit.clamp(0, 1000))
        .bind(query.offset.max(0))
        .fetch_all(store.pool())
        .await?)
}

pub(super) async fn count(
    store: &This,
    user: &UserId,
    f: &DriverFilter,
) -> Result<StatusCounts, StoreError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(COUNT.as_str())
        .bind(user.as_str())
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.vehicle_type.map(|s| s.as_str()))
        .fetch_all(store.pool())
        .await?;
    Ok(counts(rows))
}

pub(super) async fn update(
    store: &This,
    user: &UserId,
    driver_id: &str,
    patch: DriverPatch,
    now: DateTime<Utc>,
) -> Result<Driver, StoreError> {
    let mut tx = store.write_tx().await?;
    let driver: Driver = read(&mut tx, user, driver_id).await?;
    let mut next = rules::patch_driver(&driver, patch)?;
    if next == driver {
        return Ok(driver);
    }
    if (next.current_lat, next.current_lng, &next.current_address)
        != (
            driver.current_lat,
            driver.current_lng,
            &driver.current_address,
        )
    {
        next.last_location_update = now;
    }
    next.updated_at = now;
    if !write(&mut tx, user, &next, driver.status).await? {
        return Err(changed_meanwhile("driver", driver_id));
    }
    tx.commit().await?;
    Ok(next)
}

pub(super) async fn delete(store: &This, user: &UserId, driver_id: &str) -> Result<(), StoreError> {
    let mut tx = store.write_tx().await?;
    read::<Driver>(&mut tx, user, driver_id).await?;
    refuse_if_assigned::<Driver>(&mut tx, user, driver_id).await?;
    // Finished orders keep no link to a driver who is gone.
    sqlx::query(
        "UPDATE orders SET assigned_driver_id = NULL WHERE user_id = $1 AND assigned_driver_id = $2",
    )
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

pub(super) async fn delete_all(
    store: &This,
    user: &UserId,
    status: Option<DriverStatus>,
) -> Result<u64, StoreError> {
    let status = status.map(|s| s.as_str());
    let mut tx = store.write_tx().await?;
    refuse_if_any_assigned::<Driver>(&mut tx, user, status).await?;
    sqlx::query(
        "UPDATE orders SET assigned_driver_id = NULL WHERE user_id = $1 \
         AND assigned_driver_id IN (SELECT driver_id FROM drivers \
         WHERE user_id = $1 AND ($2 IS NULL OR status = $2))",
    )
    .bind(user.as_str())
    .bind(status)
    .execute(&mut *tx)
    .await?;
    let done =
        sqlx::query("DELETE FROM drivers WHERE user_id = $1 AND ($2 IS NULL OR status = $2)")
            .bind(user.as_str())
            .bind(status)
            .execute(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

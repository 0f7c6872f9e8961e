//! The `orders` table.

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

/// The tenant's pending, assigned and in-transit orders, most urgent first.
static OPEN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 \
         AND status IN ('pending', 'assigned', 'in_transit') \
         ORDER BY {PRIORITY_RANK} DESC, expected_delivery_time ASC, order_id ASC LIMIT $2"
    )
});

static COUNT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT status, COUNT(*) FROM orders WHERE {ORDER_FILTER} GROUP BY status ORDER BY status"
    )
});

impl Table for Order {
    type Status = OrderStatus;
    const SQL: &'static TableSql<Bind<Order>, Read<Order>> = &ORDERS;

    fn id(&self) -> &str {
        &self.order_id
    }
}

impl sqlx::FromRow<'_, DbRow> for Order {
    fn from_row(row: &DbRow) -> Result<Self, sqlx::Error> {
        read_row(row)
    }
}

/// The `orders` table: its statements are made from its columns, so a new
/// column is one more line in [`COLUMNS`].
static ORDERS: TableSql<Bind<Order>, Read<Order>> =
    TableSql::new("order", "orders", "order_id", COLUMNS);

/// The columns read into an [`Order`], in the order a `SELECT` of one must
/// list them.
pub(super) static ORDER_COLUMNS: &Columns<Bind<Order>, Read<Order>> = &ORDERS.columns;

/// Every column: its name, how the order's value is bound (the insert binds
/// them all, in this order, after the tenant; a write those it rewrites,
/// after the tenant and the id) and how it is read back.
// A table, one line per column (rustfmt would break the longer ones).
#[rustfmt::skip]
const COLUMNS: &[Column<Order>] = &[
    set_once("order_id", |o, q| q.bind(&o.order_id), |o, c| c.get(&mut o.order_id)),
    column("customer_name", |o, q| q.bind(&o.customer_name), |o, c| c.get(&mut o.customer_name)),
    column("customer_phone", |o, q| q.bind(&o.customer_phone), |o, c| c.get(&mut o.customer_phone)),
    column("customer_email", |o, q| q.bind(&o.customer_email), |o, c| c.get(&mut o.customer_email)),
    column("delivery_address", |o, q| q.bind(&o.delivery_address), |o, c| c.get(&mut o.delivery_address)),
    column("delivery_lat", |o, q| q.bind(o.delivery_lat), |o, c| c.get(&mut o.delivery_lat)),
    column("delivery_lng", |o, q| q.bind(o.delivery_lng), |o, c| c.get(&mut o.delivery_lng)),
    column("time_window_start", |o, q| q.bind(o.time_window_start), |o, c| c.get(&mut o.time_window_start)),
    column("time_window_end", |o, q| q.bind(o.time_window_end), |o, c| c.get(&mut o.time_window_end)),
    column("expected_delivery_time", |o, q| q.bind(o.expected_delivery_time), |o, c| c.get(&mut o.expected_delivery_time)),
    column("priority", |o, q| q.bind(o.priority.as_str()), |o, c| c.named(&mut o.priority, Priority::parse)),
    column("weight_kg", |o, q| q.bind(o.weight_kg), |o, c| c.get(&mut o.weight_kg)),
    column("volume_m3", |o, q| q.bind(o.volume_m3), |o, c| c.get(&mut o.volume_m3)),
    column("special_instructions", |o, q| q.bind(&o.special_instructions), |o, c| c.get(&mut o.special_instructions)),
    column("order_value", |o, q| q.bind(o.order_value), |o, c| c.get(&mut o.order_value)),
    column("payment_status", |o, q| q.bind(o.payment_status.as_str()), |o, c| c.named(&mut o.payment_status, PaymentStatus::parse)),
    column("requires_signature", |o, q| q.bind(o.requires_signature), |o, c| c.get(&mut o.requires_signature)),
    column("is_fragile", |o, q| q.bind(o.is_fragile), |o, c| c.get(&mut o.is_fragile)),
    column("requires_cold_storage", |o, q| q.bind(o.requires_cold_storage), |o, c| c.get(&mut o.requires_cold_storage)),
    column("status", |o, q| q.bind(o.status.as_str()), |o, c| c.named(&mut o.status, OrderStatus::parse)),
    column("assigned_driver_id", |o, q| q.bind(&o.assigned_driver_id), |o, c| c.get(&mut o.assigned_driver_id)),
    column("delivery_status", |o, q| q.bind(o.delivery_status.map(|s| s.as_str())), |o, c| c.named_opt(&mut o.delivery_status, DeliveryStatus::parse)),
    column("sla_grace_period_minutes", |o, q| q.bind(o.sla_grace_period_minutes), |o, c| c.get(&mut o.sla_grace_period_minutes)),
    unread("search_text", |o, q| q.bind(order_search_text(o))),
    column("updated_at", |o, q| q.bind(o.updated_at), |o, c| c.get(&mut o.updated_at)),
    column("delivered_at", |o, q| q.bind(o.delivered_at), |o, c| c.get(&mut o.delivered_at)),
    set_once("created_at", |o, q| q.bind(o.created_at), |o, c| c.get(&mut o.created_at)),
];

pub(super) async fn create(
    store: &This,
    user: &UserId,
    new: NewOrder,
    now: DateTime<Utc>,
) -> Result<Order, StoreError> {
    let order = rules::new_order(new, now)?;
    let mut conn = store.pool().acquire().await?;
    insert(&mut conn, user, &order).await?;
    Ok(order)
}

pub(super) async fn list(
    store: &This,
    user: &UserId,
    query: &OrderQuery,
) -> Result<Vec<Order>, StoreError> {
    let d = dir(query.descending);
    let order_by = match query.sort {
        OrderSort::CreatedAt => format!("created_at {d}, order_id {d}"),
        OrderSort::Priority => format!("{PRIORITY_RANK} {d}, created_at {d}, order_id {d}"),
        OrderSort::TimeWindowStart => {
            format!("time_window_start {d} NULLS LAST, created_at {d}, order_id {d}")
        }
    };
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE {ORDER_FILTER} ORDER BY {order_by} LIMIT $6 OFFSET $7"
    );
    let f = &query.filter;
    Ok(sqlx::query_as(&sql)
        .bind(user.as_str())
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.priority.map(|s| s.as_str()))
        .bind(f.payment_status.map(|s| s.as_str()))
        .bind(f.assigned_driver_id.as_deref())
        .bind(query.limit.clamp(0, 1000))
        .bind(query.offset.max(0))
        .fetch_all(store.pool())
        .await?)
}

pub(super) async fn count(
    store: &This,
    user: &UserId,
    f: &OrderFilter,
) -> Result<StatusCounts, StoreError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(COUNT.as_str())
        .bind(user.as_str())
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.priority.map(|s| s.as_str()))
        .bind(f.payment_status.map(|s| s.as_str()))
        .bind(f.assigned_driver_id.as_deref())
        .fetch_all(store.pool())
        .await?;
    Ok(counts(rows))
}

pub(super) async fn open(
    store: &This,
    user: &UserId,
    limit: i64,
) -> Result<Vec<Order>, StoreError> {
    Ok(sqlx::query_as(OPEN.as_str())
        .bind(user.as_str())
        .bind(limit.clamp(0, 1000))
        .fetch_all(store.pool())
        .await?)
}

pub(super) async fn update(
    store: &This,
    user: &UserId,
    order_id: &str,
    patch: OrderPatch,
    now: DateTime<Utc>,
) -> Result<Order, StoreError> {
    let mut tx = store.write_tx().await?;
    let order: Order = read(&mut tx, user, order_id).await?;
    let mut next = rules::patch_order(&order, patch)?;
    if next == order {
        return Ok(order);
    }
    next.updated_at = now;
    if !write(&mut tx, user, &next, order.status).await? {
        return Err(changed_meanwhile("order", order_id));
    }
    tx.commit().await?;
    Ok(next)
}

pub(super) async fn delete(store: &This, user: &UserId, order_id: &str) -> Result<(), StoreError> {
    let mut tx = store.write_tx().await?;
    read::<Order>(&mut tx, user, order_id).await?;
    refuse_if_assigned::<Order>(&mut tx, user, order_id).await?;
    sqlx::query("DELETE FROM orders WHERE user_id = $1 AND order_id = $2")
        .bind(user.as_str())
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_all(
    store: &This,
    user: &UserId,
    status: Option<OrderStatus>,
) -> Result<u64, StoreError> {
    let status = status.map(|s| s.as_str());
    let mut tx = store.write_tx().await?;
    refuse_if_any_assigned::<Order>(&mut tx, user, status).await?;
    let done = sqlx::query("DELETE FROM orders WHERE user_id = $1 AND ($2 IS NULL OR status = $2)")
        .bind(user.as_str())
        .bind(status)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

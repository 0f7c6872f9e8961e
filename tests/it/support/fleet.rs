//! Support for the fleet tool tests: tenants with their own keys and real
//! rmcp clients, calls that check the result's shape, row dumps straight
//! from the database.
#![allow(dead_code)]

use crate::support::keys::{call_err, call_ok};
use crate::support::*;
use fleetmind::store::Backend;
use serde_json::{Value, json};
use sqlx::Row;

/// One tenant: its user id and a client holding its key.
pub struct Tenant {
    pub user_id: String,
    pub client: Client,
}

pub async fn tenant(t: &TestDb, mcp_url: &str, email: &str) -> Tenant {
    let issued = issue_key(&t.db, email, None).await;
    let client = connect(mcp_url, issued.api_key.expose())
        .await
        .expect("connect");
    Tenant {
        user_id: issued.record.user_id.to_string(),
        client,
    }
}

/// Calls a fleet tool that must succeed ([`call_ok`]) and say so
/// (`"success": true`): its structured content.
pub async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let structured = call_ok(client, tool, args).await;
    assert_eq!(structured["success"], json!(true), "{tool}: {structured}");
    structured
}

/// Calls a tool that must fail with a tool error ([`call_err`]): its message.
pub async fn err(client: &Client, tool: &str, args: Value) -> String {
    call_err(client, tool, args).await
}

pub fn order_args(name: &str, lat: f64, lng: f64) -> Value {
    json!({
        "customer_name": name,
        "delivery_address": format!("{name}'s door"),
        "delivery_lat": lat,
        "delivery_lng": lng,
        "expected_delivery_time": "2099-01-01T12:00:00Z",
        "customer_email": format!("{}@example.com", name.to_lowercase().replace(' ', ".")),
        "weight_kg": 12.5,
    })
}

pub fn driver_args(name: &str, lat: f64, lng: f64) -> Value {
    json!({
        "name": name,
        "vehicle_type": "van",
        "current_address": "Depot",
        "current_lat": lat,
        "current_lng": lng,
    })
}

pub async fn create_order(tenant: &Tenant, name: &str, lat: f64, lng: f64) -> String {
    let out = ok(&tenant.client, "create_order", order_args(name, lat, lng)).await;
    out["order"]["order_id"]
        .as_str()
        .expect("order id")
        .to_owned()
}

pub async fn create_driver(tenant: &Tenant, name: &str, lat: f64, lng: f64) -> String {
    let out = ok(&tenant.client, "create_driver", driver_args(name, lat, lng)).await;
    out["driver"]["driver_id"]
        .as_str()
        .expect("driver id")
        .to_owned()
}

/// Every column of every fleet row of `user`, read with plain SQL, in a
/// fixed order: equal dumps mean byte-for-byte equal rows.
pub async fn dump(t: &TestDb, user: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (table, key) in [
        ("orders", "order_id"),
        ("drivers", "driver_id"),
        ("assignments", "assignment_id"),
        ("places", "name_key"),
    ] {
        match t.backend {
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&t.url).await.expect("connect");
                let rows = sqlx::query(&format!(
                    "SELECT row_to_json(t)::text AS row FROM {table} t WHERE user_id = $1 ORDER BY {key}"
                ))
                .bind(user)
                .fetch_all(&pool)
                .await
                .expect("dump");
                for row in rows {
                    out.push(format!("{table}: {}", row.get::<String, _>("row")));
                }
                pool.close().await;
            }
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&t.url).await.expect("connect");
                let columns: Vec<String> = sqlx::query(&format!("PRAGMA table_info({table})"))
                    .fetch_all(&pool)
                    .await
                    .expect("columns")
                    .iter()
                    .map(|r| r.get::<String, _>("name"))
                    .collect();
                let rows = sqlx::query(&format!(
                    "SELECT json_array({}) AS row FROM {table} WHERE user_id = $1 ORDER BY {key}",
                    columns.join(", ")
                ))
                .bind(user)
                .fetch_all(&pool)
                .await
                .expect("dump");
                for row in rows {
                    out.push(format!("{table}: {}", row.get::<String, _>("row")));
                }
                pool.close().await;
            }
        }
    }
    out
}

//! A panic in the middle of a write (what a tool panic was, issue 9)
//! leaves no transaction or lock behind: the write is rolled back and the
//! next call on the same row, through the real server, answers at once.
//! The panic is real (the chrono overflow of issue 9) and is caught by the
//! same `catch_panic` that wraps every tool call.

use crate::support::fleet::*;
use crate::support::*;
use chrono::{DateTime, TimeDelta, Utc};
use fleetmind::mcp::catch_panic;
use fleetmind::store::Backend;
use serde_json::json;
use std::time::Duration;

/// Renames the order inside a transaction on a pool of one connection,
/// then panics before committing. The pool is returned so that its
/// connection stays open while the test goes on.
async fn panic_while_writing(t: &TestDb, order_id: &str) -> (fleetmind::mcp::Caught, Pools) {
    const RENAME: &str = "UPDATE orders SET customer_name = 'Mallory' WHERE order_id = $1";
    fn overflow() {
        let _ = DateTime::<Utc>::MAX_UTC + TimeDelta::minutes(15);
    }
    match t.backend {
        Backend::Postgres => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&t.url)
                .await
                .expect("connect");
            let writer = pool.clone();
            let caught = catch_panic(async move {
                let mut tx = writer.begin().await.expect("begin");
                sqlx::query(RENAME)
                    .bind(order_id)
                    .execute(&mut *tx)
                    .await
                    .expect("update");
                tokio::task::yield_now().await;
                overflow();
                tx.commit().await.expect("commit");
            })
            .await
            .expect_err("the panic is caught");
            (caught, Pools::Pg(pool))
        }
        Backend::Sqlite => {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect(&t.url)
                .await
                .expect("connect");
            let writer = pool.clone();
            let caught = catch_panic(async move {
                let mut tx = writer.begin_with("BEGIN IMMEDIATE").await.expect("begin");
                sqlx::query(RENAME)
                    .bind(order_id)
                    .execute(&mut *tx)
                    .await
                    .expect("update");
                tokio::task::yield_now().await;
                overflow();
                tx.commit().await.expect("commit");
            })
            .await
            .expect_err("the panic is caught");
            (caught, Pools::Sqlite(pool))
        }
    }
}

enum Pools {
    Pg(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

backend_test!(
    a_panic_mid_transaction_rolls_back_and_holds_no_lock,
    |t| async move {
        let server = start_server(t.db.clone()).await;
        let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
        let order = create_order(&a, "Olive", 48.86, 2.34).await;

        let (caught, pools) = panic_while_writing(&t, &order).await;
        assert!(caught.message.contains("overflow"), "{caught:?}");

        let seen = ok(&a.client, "get_order_details", json!({"order_id": order})).await;
        assert_eq!(
            seen["order"]["customer_name"], "Olive",
            "rolled back: {seen}"
        );

        // The same row, through the server, while the panicked pool's
        // connection is still open: a held lock would block this.
        let within = Duration::from_secs(20);
        let update = json!({"order_id": order, "customer_name": "Olive B"});
        let out = tokio::time::timeout(within, ok(&a.client, "update_order", update))
            .await
            .expect("update_order answered: no lock was left behind");
        assert_eq!(out["order"]["customer_name"], "Olive B", "{out}");

        match pools {
            Pools::Pg(pool) => pool.close().await,
            Pools::Sqlite(pool) => pool.close().await,
        }
        let _ = a.client.cancel().await;
        server.stop().await;
    }
);

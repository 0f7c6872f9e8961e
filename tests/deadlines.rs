//! A store call that cannot finish in time (here: another connection holds
//! the write lock) is answered "unavailable, try again" within its deadline,
//! writes nothing, and leaves the pool able to serve the next call; the
//! health check answers within its own, shorter bound.
//!
//! The silent network partition, Postgres only, is in `partition.rs`.

mod common;

use common::*;
use fleetmind::store::{self, Backend, PoolOptions};
use serde_json::json;
use std::time::{Duration, Instant};

/// The deadline the server under test is given.
const DEADLINE: Duration = Duration::from_secs(1);
/// Past this the answer is late (the deadline plus room for a loaded machine).
const LATE: Duration = Duration::from_secs(4);

/// A second connection, outside the server's pool, holding the lock every
/// write to `orders` needs, until it is dropped (its transaction then ends).
enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

async fn hold_write_lock(t: &TestDb) -> WriteLock {
    use sqlx::Connection;
    match t.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&t.url)
                .await
                .expect("second sqlite connection");
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .expect("take the write lock");
            WriteLock::Sqlite(conn)
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&t.url)
                .await
                .expect("second postgres connection");
            sqlx::query("BEGIN")
                .execute(&mut conn)
                .await
                .expect("begin");
            sqlx::query("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
                .execute(&mut conn)
                .await
                .expect("lock orders");
            WriteLock::Postgres(conn)
        }
    }
}

async fn release(lock: WriteLock) {
    use sqlx::Connection;
    match lock {
        WriteLock::Sqlite(mut c) => {
            sqlx::query("ROLLBACK")
                .execute(&mut c)
                .await
                .expect("rollback");
            c.close().await.expect("close");
        }
        WriteLock::Postgres(mut c) => {
            sqlx::query("ROLLBACK")
                .execute(&mut c)
                .await
                .expect("rollback");
            c.close().await.expect("close");
        }
    }
}

fn order() -> serde_json::Value {
    json!({
        "customer_name": "Lock",
        "delivery_address": "Lock's door",
        "delivery_lat": 1.0,
        "delivery_lng": 1.0,
        "expected_delivery_time": "2099-01-01T12:00:00Z",
    })
}

#[tokio::test]
async fn a_write_kept_waiting_past_the_deadline_is_refused_in_time_writes_nothing_and_the_next_works()
 {
    on_both_backends(|t| async move {
        let options = PoolOptions {
            query_timeout: DEADLINE,
            ..PoolOptions::default()
        };
        let db = store::open(&t.url, &options).await.expect("open");
        let server = start_server(db).await;
        let url = server.mcp_url();
        let http = reqwest::Client::new();
        let issued = issue_key(&t.db, "lock@example.com", None).await;
        let key = issued.api_key.expose();
        let warm = tools_call_http(&http, &url, key, "whoami", json!({}), LATE * 5).await;
        assert_eq!(warm.map(|a| a.status), Some(200));

        let lock = hold_write_lock(&t).await;
        let started = Instant::now();
        let answer = tools_call_http(&http, &url, key, "create_order", order(), LATE * 5)
            .await
            .expect("create_order hung behind the lock");
        let took = started.elapsed();
        eprintln!(
            "{:?}: create_order behind a lock -> {answer:?} in {took:?}",
            t.backend
        );
        assert!(took <= LATE, "{:?}: answered after {took:?}", t.backend);
        assert_unavailable(&answer);
        release(lock).await;

        // Nothing was written, and the pool serves the next calls.
        let counted = tools_call_http(&http, &url, key, "count_orders", json!({}), LATE)
            .await
            .expect("count_orders answers");
        assert_eq!(
            counted.body["result"]["structuredContent"]["total"], 0,
            "{counted:?}"
        );
        let created = tools_call_http(&http, &url, key, "create_order", order(), LATE)
            .await
            .expect("create_order answers");
        assert_eq!(created.body["result"]["isError"], false, "{created:?}");
        server.stop().await;
    })
    .await;
}

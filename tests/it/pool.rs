//! The Postgres pool skips sqlx's ping on connections in steady use (a round
//! trip per query) and pings those that sat idle. These tests end the pool's
//! backends from the server side, as a Postgres restart or a network cut
//! would, and show what each setting costs.

use fleetmind::store::{self, Db, PoolOptions};
use std::time::Duration;

/// Ends every backend of the pool under test and waits until they are gone.
async fn end_backends(url: &str) {
    let admin = sqlx::PgPool::connect(&crate::support::pg_admin_url())
        .await
        .expect("admin connection");
    let db_name = url.rsplit('/').next().expect("database name");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'fleetmind'",
    )
    .bind(db_name)
    .execute(&admin)
    .await
    .expect("terminate backends");
    let gone = crate::support::eventually(Duration::from_secs(2), || async {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'fleetmind'",
        )
        .bind(db_name)
        .fetch_one(&admin)
        .await
        .expect("count backends");
        left == 0
    })
    .await;
    assert!(gone, "the pool's backends did not end");
}

async fn one_connection_pool(url: &str, ping_when_idle_for: Duration) -> Db {
    let options = PoolOptions {
        max_connections: 1,
        ping_when_idle_for,
        ..PoolOptions::default()
    };
    store::open(url, &options).await.expect("open postgres")
}

#[tokio::test]
#[cfg_attr(not(fm_pg), ignore = "Postgres: set FLEETMIND_TEST_PG")]
async fn an_idle_connection_the_server_dropped_is_replaced_before_it_serves() {
    let pg = crate::support::pg_db().await;
    let db = one_connection_pool(&pg.url, Duration::from_millis(100)).await;
    assert_eq!(db.count_keys().await.expect("first query"), 0);
    end_backends(&pg.url).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    // Idle past the threshold: pinged, found dead, replaced; the query works.
    assert_eq!(db.count_keys().await.expect("query after the drop"), 0);
}

#[tokio::test]
#[cfg_attr(not(fm_pg), ignore = "Postgres: set FLEETMIND_TEST_PG")]
async fn a_busy_connection_the_server_dropped_fails_one_query_then_the_pool_recovers() {
    let pg = crate::support::pg_db().await;
    let db = one_connection_pool(&pg.url, Duration::from_secs(3600)).await;
    assert_eq!(db.count_keys().await.expect("first query"), 0);
    end_backends(&pg.url).await;
    // Not idle long enough to be pinged: the query meets the dead connection.
    // This is the price of skipping the ping, and why idle ones get one.
    let failed = db.count_keys().await;
    assert!(
        failed.is_err(),
        "the dead connection served a query: {failed:?}"
    );
    assert_eq!(db.count_keys().await.expect("next query"), 0);
}

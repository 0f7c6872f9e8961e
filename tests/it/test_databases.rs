//! The tests' own Postgres databases (`support/db.rs`): a template of other
//! migrations is dropped once no running test binary holds it, and each
//! test's database goes with the test.

use crate::support::*;

async fn create_template(conn: &mut sqlx::PgConnection, name: &str, marked: bool) {
    for sql in [
        format!("ALTER DATABASE {name} IS_TEMPLATE false"),
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name} IS_TEMPLATE {marked}"),
    ] {
        // The ALTER fails where there is no such database yet: nothing to undo.
        let _ = sqlx::query(&sql).execute(&mut *conn).await;
    }
    assert!(exists(conn, name).await, "{name} was not made");
}

async fn drop_any(conn: &mut sqlx::PgConnection, name: &str) {
    for sql in [
        format!("ALTER DATABASE {name} IS_TEMPLATE false"),
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    ] {
        let _ = sqlx::query(&sql).execute(&mut *conn).await;
    }
}

#[tokio::test]
#[cfg_attr(not(fm_pg), ignore = "Postgres: set FLEETMIND_TEST_PG")]
async fn stale_templates_are_dropped_unless_a_running_binary_holds_them() {
    let current = template().await;
    let mut admin = admin_connection().await;
    // Names no other run uses (this process's id), shaped like templates of
    // other migrations: one nobody holds, one a running binary of those
    // migrations holds, one an older binary made (not marked a template).
    let pid = std::process::id();
    let free = format!("fm_template_stale_free_{pid}");
    let held = format!("fm_template_stale_held_{pid}");
    let legacy = format!("fm_template_stale_legacy_{pid}");
    create_template(&mut admin, &free, true).await;
    create_template(&mut admin, &held, true).await;
    create_template(&mut admin, &legacy, false).await;
    let mut holder = admin_connection().await;
    take_in_use(&mut holder, &held).await;

    drop_stale_templates(&mut admin, current).await;

    let free_left = exists(&mut admin, &free).await;
    let held_left = exists(&mut admin, &held).await;
    let legacy_left = exists(&mut admin, &legacy).await;
    let current_left = exists(&mut admin, current).await;
    drop(holder);
    drop_any(&mut admin, &held).await;
    drop_any(&mut admin, &legacy).await;
    drop_any(&mut admin, &free).await;
    assert!(!free_left, "a stale template nobody holds was kept");
    assert!(held_left, "a template a running binary holds was dropped");
    assert!(legacy_left, "a database not marked a template was dropped");
    assert!(current_left, "the current template was dropped");
}

#[tokio::test]
#[cfg_attr(not(fm_pg), ignore = "Postgres: set FLEETMIND_TEST_PG")]
async fn a_tests_database_is_dropped_when_the_test_ends() {
    let t = pg_db().await;
    let name = t.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = admin_connection().await;
    assert!(exists(&mut admin, &name).await);
    drop(t);
    assert!(!exists(&mut admin, &name).await, "{name} is left behind");
}

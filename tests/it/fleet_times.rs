//! Every time a fleet tool takes, across all the years the parser can read
//! (chrono's whole range, -262143 to +262142) and at the edges of the
//! accepted ones (1970 to 9999, UTC), in every shape the tools accept, then
//! through assign (create_assignment, auto_assign_order,
//! intelligent_assign_order) and complete_delivery / fail_delivery, on both
//! backends (issue 9: a far-future order once made these never answer).
//!
//! Every call must answer within a deadline without a protocol error; a
//! time outside the years is refused naming its field, with nothing
//! written; a time inside them is stored as given and the order can be
//! assigned and finished.

use crate::support::fleet::*;
use crate::support::*;
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use fleetmind::fleet::rules::TIME_YEARS;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};
use std::time::Duration;

/// Every call answers within this, or the test fails (generous: a loaded
/// 2-core machine; a hang is what is being tested for).
const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
enum Field {
    CreateExpected,
    CreateWindowStart,
    CreateWindowEnd,
    UpdateExpected,
    UpdateWindowStart,
    UpdateWindowEnd,
    ActualArrival,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::CreateExpected | Field::UpdateExpected => "expected_delivery_time",
            Field::CreateWindowStart | Field::UpdateWindowStart => "time_window_start",
            Field::CreateWindowEnd | Field::UpdateWindowEnd => "time_window_end",
            Field::ActualArrival => "actual_arrival",
        }
    }
}

/// How the time is written: every shape the tools read.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Utc,
    Offset,
    NoOffset,
    Space,
    Minutes,
    DateOnly,
}

#[derive(Debug, Clone, Copy)]
enum Assign {
    Create,
    Auto,
    Intelligent,
}

#[derive(Debug, Clone)]
struct Case {
    field: Field,
    text: String,
    /// The instant meant, if chrono can hold it.
    meant: Option<DateTime<Utc>>,
    assign: Assign,
    fail: bool,
}

fn year_text(year: i32) -> String {
    match year {
        0..=9999 => format!("{year:04}"),
        10000.. => format!("+{year}"),
        _ => format!("-{:04}", -(year as i64)),
    }
}

#[allow(clippy::too_many_arguments)]
fn case(
    field: Field,
    (year, month, day): (i32, u32, u32),
    (h, mi, s, micros): (u32, u32, u32, u32),
    shape: Shape,
    offset_minutes: i32,
    assign: Assign,
    fail: bool,
) -> Case {
    let (h, mi, s, micros, offset_minutes) = match shape {
        Shape::DateOnly => (0, 0, 0, 0, 0),
        Shape::Minutes => (h, mi, 0, 0, 0),
        Shape::Offset => (h, mi, s, micros, offset_minutes),
        _ => (h, mi, s, micros, 0),
    };
    let date = format!("{}-{month:02}-{day:02}", year_text(year));
    let clock = format!("{h:02}:{mi:02}:{s:02}.{micros:06}");
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let off = offset_minutes.abs();
    let text = match shape {
        Shape::Utc => format!("{date}T{clock}Z"),
        Shape::Offset => format!("{date}T{clock}{sign}{:02}:{:02}", off / 60, off % 60),
        Shape::NoOffset => format!("{date}T{clock}"),
        Shape::Space => format!("{date} {clock}"),
        Shape::Minutes => format!("{date}T{h:02}:{mi:02}"),
        Shape::DateOnly => date,
    };
    let meant = NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|d| d.and_hms_micro_opt(h, mi, s, micros))
        .and_then(|t| t.checked_sub_signed(TimeDelta::minutes(offset_minutes.into())))
        .map(|t| t.and_utc());
    Case {
        field,
        text,
        meant,
        assign,
        fail,
    }
}

fn cases() -> impl Strategy<Value = Case> {
    let field = prop_oneof![
        Just(Field::CreateExpected),
        Just(Field::CreateWindowStart),
        Just(Field::CreateWindowEnd),
        Just(Field::UpdateExpected),
        Just(Field::UpdateWindowStart),
        Just(Field::UpdateWindowEnd),
        Just(Field::ActualArrival),
    ];
    // Chrono's whole range and one year past each end, and often the edges
    // of the accepted years.
    let year = prop_oneof![
        -262_144i32..=262_143,
        (TIME_YEARS.start() - 2)..=(TIME_YEARS.start() + 1),
        (TIME_YEARS.end() - 1)..=(TIME_YEARS.end() + 2),
    ];
    let date = (year, 1u32..=12, 1u32..=28);
    let clock = (0u32..24, 0u32..60, 0u32..60, 0u32..1_000_000);
    let shape = prop_oneof![
        Just(Shape::Utc),
        Just(Shape::Offset),
        Just(Shape::NoOffset),
        Just(Shape::Space),
        Just(Shape::Minutes),
        Just(Shape::DateOnly),
    ];
    let offset = (-56i32..=56).prop_map(|quarters| quarters * 15);
    let assign = prop_oneof![
        Just(Assign::Create),
        Just(Assign::Auto),
        Just(Assign::Intelligent)
    ];
    (field, date, clock, shape, offset, assign, any::<bool>()).prop_map(
        |(field, date, clock, shape, offset, assign, fail)| {
            case(field, date, clock, shape, offset, assign, fail)
        },
    )
}

/// The edges, always tried: the value of the issue, the last accepted
/// instants and the first refused ones on each side.
fn edges() -> Vec<Case> {
    let mut out = Vec::new();
    let fields = [
        Field::CreateExpected,
        Field::UpdateWindowEnd,
        Field::ActualArrival,
    ];
    for (i, field) in fields.into_iter().enumerate() {
        let assign = [Assign::Intelligent, Assign::Auto, Assign::Create][i];
        for (date, clock, shape, offset) in [
            ((262_142, 12, 31), (23, 59, 59, 0), Shape::NoOffset, 0),
            ((-262_143, 1, 1), (0, 0, 0, 0), Shape::NoOffset, 0),
            ((9999, 12, 31), (23, 59, 59, 999_999), Shape::Utc, 0),
            ((9999, 12, 31), (23, 0, 0, 0), Shape::Offset, -60),
            ((1970, 1, 1), (0, 0, 0, 0), Shape::Utc, 0),
            ((1970, 1, 1), (0, 30, 0, 0), Shape::Offset, 60),
            ((1969, 12, 31), (23, 59, 59, 999_999), Shape::NoOffset, 0),
            ((10000, 1, 1), (0, 0, 0, 0), Shape::DateOnly, 0),
        ] {
            for fail in [false, true] {
                out.push(case(field, date, clock, shape, offset, assign, fail));
            }
        }
    }
    out
}

/// One tenant on a running server.
struct Ctx {
    t: TestDb,
    a: Tenant,
}

async fn call(ctx: &Ctx, tool: &str, args: Value) -> CallToolResult {
    tokio::time::timeout(DEADLINE, call_result(&ctx.a.client, tool, args.clone()))
        .await
        .unwrap_or_else(|_| panic!("{tool} {args}: no answer within {DEADLINE:?}"))
}

async fn must(ctx: &Ctx, tool: &str, args: Value) -> Value {
    tokio::time::timeout(DEADLINE, ok(&ctx.a.client, tool, args.clone()))
        .await
        .unwrap_or_else(|_| panic!("{tool} {args}: no answer within {DEADLINE:?}"))
}

fn stored(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

/// The call that sets the case's time: refused (checked here) or done.
/// Returns the order and, for `actual_arrival`, its open assignment.
async fn set_time(ctx: &Ctx, c: &Case, accepted: bool) -> Option<(String, Option<String>)> {
    let name = c.field.name();
    let mut order = order_args("Olive", 48.86, 2.34);
    let (tool, args, order_id, assignment) = match c.field {
        Field::CreateExpected | Field::CreateWindowStart | Field::CreateWindowEnd => {
            order[name] = json!(c.text);
            ("create_order", order, None, None)
        }
        Field::UpdateExpected | Field::UpdateWindowStart | Field::UpdateWindowEnd => {
            let created = must(ctx, "create_order", order).await;
            let id = created["order"]["order_id"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let args = json!({"order_id": id, name: c.text});
            ("update_order", args, Some(id), None)
        }
        Field::ActualArrival => {
            let created = must(ctx, "create_order", order).await;
            let id = created["order"]["order_id"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let asn = assign(ctx, &id, c.assign).await;
            let args = json!({"assignment_id": asn, name: c.text});
            ("update_assignment", args, Some(id), Some(asn))
        }
    };
    let before = dump(&ctx.t, &ctx.a.user_id).await;
    let result = call(ctx, tool, args.clone()).await;
    let text: String = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    if !accepted {
        assert_eq!(
            result.is_error,
            Some(true),
            "{tool} {args} accepted: {text}"
        );
        assert!(text.starts_with(&format!("{name}: ")), "{args}: {text}");
        assert_eq!(dump(&ctx.t, &ctx.a.user_id).await, before, "{args} wrote");
        if let Some(asn) = assignment {
            // Finish the open assignment so the driver is free again.
            must(
                ctx,
                "complete_delivery",
                json!({"assignment_id": asn, "confirm": true}),
            )
            .await;
        }
        return None;
    }
    assert_ne!(result.is_error, Some(true), "{tool} {args} refused: {text}");
    let out = result.structured_content.unwrap_or_default();
    let (row, order_id) = match c.field {
        Field::ActualArrival => (&out["assignment"], order_id),
        _ => {
            let id = out["order"]["order_id"].as_str().map(str::to_owned);
            (&out["order"], order_id.or(id))
        }
    };
    assert_eq!(Some(stored(&row[name])), c.meant, "{args}: {out}");
    Some((order_id.unwrap_or_default(), assignment))
}

async fn assign(ctx: &Ctx, order_id: &str, how: Assign) -> String {
    let out = match how {
        Assign::Create => {
            let driver = must(ctx, "create_driver", driver_args("Dee", 48.85, 2.35)).await;
            let driver_id = driver["driver"]["driver_id"].clone();
            let args = json!({"order_id": order_id, "driver_id": driver_id});
            must(ctx, "create_assignment", args).await
        }
        Assign::Auto => must(ctx, "auto_assign_order", json!({"order_id": order_id})).await,
        Assign::Intelligent => {
            must(
                ctx,
                "intelligent_assign_order",
                json!({"order_id": order_id}),
            )
            .await
        }
    };
    assert_eq!(out["order"]["status"], "assigned", "{out}");
    out["assignment"]["assignment_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn check(ctx: &Ctx, c: &Case) {
    let accepted = c.meant.is_some_and(|t| TIME_YEARS.contains(&t.year()));
    let Some((order_id, assignment)) = set_time(ctx, c, accepted).await else {
        return;
    };
    let asn = match assignment {
        Some(asn) => asn,
        None => assign(ctx, &order_id, c.assign).await,
    };
    let out = if c.fail {
        let args = json!({"assignment_id": asn, "confirm": true, "current_address": "Corner",
            "current_lat": 48.86, "current_lng": 2.34, "failure_reason": "customer_not_available"});
        must(ctx, "fail_delivery", args).await
    } else {
        must(
            ctx,
            "complete_delivery",
            json!({"assignment_id": asn, "confirm": true}),
        )
        .await
    };
    let status = if c.fail { "failed" } else { "delivered" };
    assert_eq!(out["order"]["status"], status, "{c:?}: {out}");
    assert!(out["order"]["delivery_status"].is_string(), "{c:?}: {out}");
    assert_eq!(out["driver"]["status"], "active", "{c:?}: {out}");
}

#[test]
fn every_time_field_across_the_years_then_assign_complete_and_fail_on_sqlite() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let t = rt.block_on(sqlite_db());
    every_time_field_across_the_years(&rt, t);
}

#[test]
#[cfg_attr(not(fm_pg), ignore = "Postgres: set FLEETMIND_TEST_PG")]
fn every_time_field_across_the_years_then_assign_complete_and_fail_on_postgres() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let t = rt.block_on(pg_db());
    every_time_field_across_the_years(&rt, t);
}

fn every_time_field_across_the_years(rt: &tokio::runtime::Runtime, t: TestDb) {
    let backend = t.backend;
    let server = rt.block_on(start_server(t.db.clone()));
    let a = rt.block_on(tenant(&t, &server.mcp_url(), "ann@example.com"));
    // A driver is always there for auto and intelligent assignment.
    rt.block_on(create_driver(&a, "Ada", 48.85, 2.35));
    let ctx = Ctx { t, a };
    for c in edges() {
        rt.block_on(check(&ctx, &c));
    }
    let config = Config {
        cases: 24,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new(config)
        .run(&cases(), |c| {
            rt.block_on(check(&ctx, &c));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
    rt.block_on(async {
        let _ = ctx.a.client.cancel().await;
        server.stop().await;
    });
}

/// Sets an order's promised time with plain SQL, as a row written before
/// times were checked (or by another program) may hold it.
async fn store_due_directly(t: &TestDb, order_id: &str, due: DateTime<Utc>, grace: i64) {
    const SET: &str = "UPDATE orders SET expected_delivery_time = $1, sla_grace_period_minutes = $2 WHERE order_id = $3";
    match t.backend {
        fleetmind::store::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&t.url).await.expect("connect");
            let done = sqlx::query(SET).bind(due).bind(grace).bind(order_id);
            assert_eq!(
                done.execute(&pool).await.expect("update").rows_affected(),
                1
            );
            pool.close().await;
        }
        fleetmind::store::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&t.url).await.expect("connect");
            let done = sqlx::query(SET).bind(due).bind(grace).bind(order_id);
            assert_eq!(
                done.execute(&pool).await.expect("update").rows_affected(),
                1
            );
            pool.close().await;
        }
    }
}

backend_test!(
    orders_stored_with_extreme_times_still_assign_and_finish,
    |t| async move {
        let server = start_server(t.db.clone()).await;
        let a = tenant(&t, &server.mcp_url(), "ann@example.com").await;
        create_driver(&a, "Ada", 48.85, 2.35).await;
        let ctx = Ctx { t, a };
        let far = DateTime::<Utc>::MAX_UTC - TimeDelta::seconds(1);
        // Postgres keeps nothing before 4713 BC; SQLite would.
        let long_ago = NaiveDate::from_ymd_opt(-4000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .expect("a date chrono holds");
        let whens = [(far, 15, true), (far, 10_080, false), (long_ago, 15, true)];
        for (how, (due, grace, fail)) in [Assign::Intelligent, Assign::Auto, Assign::Create]
            .into_iter()
            .zip(whens)
        {
            let created = must(&ctx, "create_order", order_args("Olive", 48.86, 2.34)).await;
            let order_id = created["order"]["order_id"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            store_due_directly(&ctx.t, &order_id, due, grace).await;
            let asn = assign(&ctx, &order_id, how).await;
            let out = if fail {
                let args = json!({"assignment_id": asn, "confirm": true, "current_address": "Corner",
                    "current_lat": 48.86, "current_lng": 2.34, "failure_reason": "customer_not_available"});
                must(&ctx, "fail_delivery", args).await
            } else {
                must(
                    &ctx,
                    "complete_delivery",
                    json!({"assignment_id": asn, "confirm": true}),
                )
                .await
            };
            let expected = match (fail, due > Utc::now()) {
                (true, true) => "failed_on_time",
                (true, false) => "failed_late",
                (false, true) => "on_time",
                (false, false) => "very_late",
            };
            assert_eq!(out["order"]["delivery_status"], expected, "{due}: {out}");
        }
        let _ = ctx.a.client.cancel().await;
        server.stop().await;
    }
);

//! Randomized: interleaved tool calls of three tenants on one server; after
//! every step each tenant's view (orders, drivers, saved places, the assignment touched;
//! counts and all assignments at the end of each case) must equal a small in-memory model of that tenant alone. Ids
//! are picked from every tenant's pool, so many calls aim at another
//! tenant's rows and must be "not found". Both backends.

use crate::support::fleet::*;
use crate::support::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

const TENANTS: usize = 3;
const WEIGHTS: [f64; 3] = [10.0, 500.0, 1500.0];
const CAPACITIES: [f64; 3] = [100.0, 1000.0, 2000.0];
/// Every order is delivered here; a completed delivery moves the driver here.
const DROP_LAT: f64 = 10.0;
/// Where a failed delivery leaves the driver.
const FAIL_LAT: f64 = 20.0;

#[derive(Debug, Clone)]
enum Op {
    CreateOrder(usize, usize),
    CreateDriver(usize, usize),
    Assign(usize, usize, usize),
    Auto(usize, usize),
    Start(usize, usize),
    Complete(usize, usize),
    Fail(usize, usize),
    Unassign(usize, usize),
    CancelOrder(usize, usize),
    ReopenOrder(usize, usize),
    DriverOffline(usize, usize),
    DriverActive(usize, usize),
    DeleteOrder(usize, usize),
    DeleteDriver(usize, usize),
    DeleteAllOrders(usize),
    DeleteAllDrivers(usize),
    /// Saves place `PLACES[n]` at point `p` (replacing one of that name).
    SavePlace(usize, usize, usize),
    DeletePlace(usize, usize),
}

/// Place names every tenant uses: each tenant's "Depot" is its own.
const PLACES: [&str; 3] = ["Depot", "Dock", "Corner shop"];

fn op() -> impl Strategy<Value = Op> {
    let t = 0..TENANTS;
    let i = any::<usize>();
    // Auto-assign and complete weigh more than the rest: they are what turns
    // a case into deliveries made and finished (over 2000 seeds, per run of
    // ten cases: 24 assignments and 7 completions instead of 18 and 4.5).
    prop_oneof![
        6 => (t.clone(), 0..WEIGHTS.len()).prop_map(|(t, w)| Op::CreateOrder(t, w)),
        5 => (t.clone(), 0..CAPACITIES.len()).prop_map(|(t, c)| Op::CreateDriver(t, c)),
        6 => (t.clone(), i, i).prop_map(|(t, o, d)| Op::Assign(t, o, d)),
        8 => (t.clone(), i).prop_map(|(t, o)| Op::Auto(t, o)),
        3 => (t.clone(), i).prop_map(|(t, a)| Op::Start(t, a)),
        7 => (t.clone(), i).prop_map(|(t, a)| Op::Complete(t, a)),
        3 => (t.clone(), i).prop_map(|(t, a)| Op::Fail(t, a)),
        3 => (t.clone(), i).prop_map(|(t, a)| Op::Unassign(t, a)),
        2 => (t.clone(), i).prop_map(|(t, o)| Op::CancelOrder(t, o)),
        2 => (t.clone(), i).prop_map(|(t, o)| Op::ReopenOrder(t, o)),
        2 => (t.clone(), i).prop_map(|(t, d)| Op::DriverOffline(t, d)),
        2 => (t.clone(), i).prop_map(|(t, d)| Op::DriverActive(t, d)),
        2 => (t.clone(), i).prop_map(|(t, o)| Op::DeleteOrder(t, o)),
        2 => (t.clone(), i).prop_map(|(t, d)| Op::DeleteDriver(t, d)),
        1 => t.clone().prop_map(Op::DeleteAllOrders),
        1 => t.clone().prop_map(Op::DeleteAllDrivers),
        2 => (t.clone(), 0..PLACES.len(), 0..3usize).prop_map(|(t, n, p)| Op::SavePlace(t, n, p)),
        1 => (t, 0..PLACES.len()).prop_map(|(t, n)| Op::DeletePlace(t, n)),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct MOrder {
    status: &'static str,
    driver: Option<String>,
    weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
struct MDriver {
    status: &'static str,
    capacity: f64,
    lat: f64,
}

#[derive(Debug, Clone, PartialEq)]
struct MAsn {
    order: String,
    driver: String,
    status: &'static str,
}

/// One tenant as the model sees it.
#[derive(Debug, Default)]
struct Model {
    orders: BTreeMap<String, MOrder>,
    drivers: BTreeMap<String, MDriver>,
    asns: BTreeMap<String, MAsn>,
    /// Saved places by name: (lat, lng).
    places: BTreeMap<String, (f64, f64)>,
}

impl Model {
    fn open(status: &str) -> bool {
        matches!(status, "active" | "in_progress")
    }

    fn has_open(&self, pred: impl Fn(&MAsn) -> bool) -> bool {
        self.asns.values().any(|a| Self::open(a.status) && pred(a))
    }

    fn link(&mut self, asn: String, order: &str, driver: &str) {
        self.asns.insert(
            asn,
            MAsn {
                order: order.into(),
                driver: driver.into(),
                status: "active",
            },
        );
        let o = self.orders.get_mut(order).expect("order");
        o.status = "assigned";
        o.driver = Some(driver.into());
        self.drivers.get_mut(driver).expect("driver").status = "busy";
    }

    /// What `assign` must do: `Some(())` if it succeeds.
    fn can_assign(&self, order: &str, driver: &str) -> bool {
        match (self.orders.get(order), self.drivers.get(driver)) {
            (Some(o), Some(d)) => {
                o.status == "pending" && d.status == "active" && o.weight <= d.capacity
            }
            _ => false,
        }
    }

    /// The nearest active driver who can carry `order` (ties: lower id).
    fn nearest(&self, order: &str) -> Option<String> {
        let o = self.orders.get(order)?;
        if o.status != "pending" {
            return None;
        }
        self.drivers
            .iter()
            .filter(|(_, d)| d.status == "active" && o.weight <= d.capacity)
            .min_by(|(ia, a), (ib, b)| {
                (a.lat - DROP_LAT)
                    .abs()
                    .total_cmp(&(b.lat - DROP_LAT).abs())
                    .then(ia.cmp(ib))
            })
            .map(|(id, _)| id.clone())
    }

    /// Ends an open assignment: `to` is its new status.
    fn end(&mut self, asn: &str, to: &'static str) {
        let a = self.asns.get_mut(asn).expect("asn");
        a.status = to;
        let (order, driver) = (a.order.clone(), a.driver.clone());
        let o = self.orders.get_mut(&order).expect("order");
        let d = self.drivers.get_mut(&driver).expect("driver");
        match to {
            "in_progress" => o.status = "in_transit",
            "completed" => {
                o.status = "delivered";
                d.status = "active";
                d.lat = DROP_LAT;
            }
            "failed" => {
                o.status = "failed";
                d.status = "active";
                d.lat = FAIL_LAT;
            }
            "cancelled" => {
                o.status = "pending";
                o.driver = None;
                d.status = "active";
            }
            _ => unreachable!(),
        }
    }

    fn drop_order(&mut self, order: &str) {
        self.orders.remove(order);
        self.asns.retain(|_, a| a.order != order);
    }

    fn drop_driver(&mut self, driver: &str) {
        self.drivers.remove(driver);
        self.asns.retain(|_, a| a.driver != driver);
        for o in self.orders.values_mut() {
            if o.driver.as_deref() == Some(driver) {
                o.driver = None;
            }
        }
    }
}

/// Ids of every tenant, including deleted rows.
#[derive(Default)]
struct Pools {
    orders: Vec<String>,
    drivers: Vec<String>,
    asns: Vec<String>,
}

/// Mostly one of the acting tenant's own ids (so that work gets done),
/// one time in four any tenant's (so that calls aim at others' rows).
fn pick<'a>(
    own: impl Iterator<Item = &'a String>,
    pool: &[String],
    i: usize,
    missing: &str,
) -> String {
    let own: Vec<&String> = own.collect();
    if !i.is_multiple_of(4) && !own.is_empty() {
        return own[(i / 4) % own.len()].clone();
    }
    if pool.is_empty() {
        missing.to_owned()
    } else {
        pool[(i / 4) % pool.len()].clone()
    }
}

/// How often each tool succeeded and failed, over all cases.
type Tally = BTreeMap<&'static str, [usize; 2]>;

async fn yes(tally: &mut Tally, client: &Client, tool: &'static str, args: Value) -> Value {
    tally.entry(tool).or_default()[0] += 1;
    ok(client, tool, args).await
}

async fn no(tally: &mut Tally, client: &Client, tool: &'static str, args: Value) -> String {
    tally.entry(tool).or_default()[1] += 1;
    err(client, tool, args).await
}

async fn step(
    tenants: &[Tenant],
    models: &mut [Model],
    pools: &mut Pools,
    op: &Op,
    driver_count: &mut usize,
    tally: &mut Tally,
) -> Option<(usize, String)> {
    let none_o = "ORD-000000000000";
    let none_d = "DRV-000000000000";
    let none_a = "ASN-000000000000";
    match *op {
        Op::CreateOrder(t, w) => {
            let mut args = order_args("Model Customer", DROP_LAT, 0.0);
            args["weight_kg"] = json!(WEIGHTS[w]);
            let out = yes(tally, &tenants[t].client, "create_order", args).await;
            let id = out["order"]["order_id"].as_str().unwrap().to_owned();
            models[t].orders.insert(
                id.clone(),
                MOrder {
                    status: "pending",
                    driver: None,
                    weight: WEIGHTS[w],
                },
            );
            pools.orders.push(id);
            None
        }
        Op::CreateDriver(t, c) => {
            *driver_count += 1;
            let lat = DROP_LAT + *driver_count as f64 * 0.01;
            let mut args = driver_args("Model Driver", lat, 0.0);
            args["capacity_kg"] = json!(CAPACITIES[c]);
            let out = yes(tally, &tenants[t].client, "create_driver", args).await;
            let id = out["driver"]["driver_id"].as_str().unwrap().to_owned();
            models[t].drivers.insert(
                id.clone(),
                MDriver {
                    status: "active",
                    capacity: CAPACITIES[c],
                    lat,
                },
            );
            pools.drivers.push(id);
            None
        }
        Op::Assign(t, o, d) => {
            let (order, driver) = (
                pick(models[t].orders.keys(), &pools.orders, o, none_o),
                pick(models[t].drivers.keys(), &pools.drivers, d, none_d),
            );
            let args = json!({"order_id": order, "driver_id": driver});
            if models[t].can_assign(&order, &driver) {
                let out = yes(tally, &tenants[t].client, "create_assignment", args).await;
                let asn = out["assignment"]["assignment_id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                models[t].link(asn.clone(), &order, &driver);
                pools.asns.push(asn.clone());
                Some((t, asn))
            } else {
                no(tally, &tenants[t].client, "create_assignment", args).await;
                None
            }
        }
        Op::Auto(t, o) => {
            let order = pick(models[t].orders.keys(), &pools.orders, o, none_o);
            let args = json!({"order_id": order});
            match models[t].nearest(&order) {
                Some(driver) => {
                    let out = yes(tally, &tenants[t].client, "auto_assign_order", args).await;
                    assert_eq!(
                        out["driver"]["driver_id"],
                        json!(driver),
                        "auto_assign_order chose another driver"
                    );
                    let asn = out["assignment"]["assignment_id"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                    models[t].link(asn.clone(), &order, &driver);
                    pools.asns.push(asn.clone());
                    Some((t, asn))
                }
                None => {
                    no(tally, &tenants[t].client, "auto_assign_order", args).await;
                    None
                }
            }
        }
        Op::Start(t, a) | Op::Complete(t, a) | Op::Fail(t, a) | Op::Unassign(t, a) => {
            // The tenant's open assignments mostly, so that deliveries get done.
            let open = models[t]
                .asns
                .iter()
                .filter(|(_, a)| Model::open(a.status))
                .map(|(id, _)| id);
            let asn = pick(open, &pools.asns, a, none_a);
            let status = models[t].asns.get(&asn).map(|a| a.status);
            let (tool, args, to, allowed): (&'static str, Value, &'static str, &[&str]) = match op {
                Op::Start(..) => (
                    "update_assignment",
                    json!({"assignment_id": asn, "status": "in_progress"}),
                    "in_progress",
                    &["active"],
                ),
                Op::Complete(..) => (
                    "complete_delivery",
                    json!({"assignment_id": asn, "confirm": true}),
                    "completed",
                    &["active", "in_progress"],
                ),
                Op::Fail(..) => (
                    "fail_delivery",
                    json!({"assignment_id": asn, "current_address": "Lay-by", "current_lat": FAIL_LAT, "current_lng": 0.0, "failure_reason": "other", "confirm": true}),
                    "failed",
                    &["active", "in_progress"],
                ),
                _ => (
                    "unassign_order",
                    json!({"assignment_id": asn}),
                    "cancelled",
                    &["active"],
                ),
            };
            if status.is_some_and(|s| allowed.contains(&s)) {
                yes(tally, &tenants[t].client, tool, args).await;
                models[t].end(&asn, to);
            } else {
                no(tally, &tenants[t].client, tool, args).await;
            }
            status.map(|_| (t, asn))
        }
        Op::CancelOrder(t, o) | Op::ReopenOrder(t, o) => {
            let order = pick(models[t].orders.keys(), &pools.orders, o, none_o);
            let to = if matches!(op, Op::CancelOrder(..)) {
                "cancelled"
            } else {
                "pending"
            };
            let args = json!({"order_id": order, "status": to});
            let from = models[t].orders.get(&order).map(|o| o.status);
            let allowed = match (from, to) {
                (Some(f), _) if f == to => true,
                (Some("pending" | "failed"), "cancelled") => true,
                (Some("failed" | "cancelled"), "pending") => true,
                _ => false,
            };
            if allowed {
                yes(tally, &tenants[t].client, "update_order", args).await;
                let m = models[t].orders.get_mut(&order).unwrap();
                if m.status != to && to == "pending" {
                    m.driver = None;
                }
                m.status = to;
            } else {
                no(tally, &tenants[t].client, "update_order", args).await;
            }
            None
        }
        Op::DriverOffline(t, d) | Op::DriverActive(t, d) => {
            let driver = pick(models[t].drivers.keys(), &pools.drivers, d, none_d);
            let to = if matches!(op, Op::DriverOffline(..)) {
                "offline"
            } else {
                "active"
            };
            let args = json!({"driver_id": driver, "status": to});
            match models[t].drivers.get_mut(&driver) {
                Some(m) if m.status != "busy" => {
                    yes(tally, &tenants[t].client, "update_driver", args).await;
                    m.status = to;
                }
                _ => {
                    no(tally, &tenants[t].client, "update_driver", args).await;
                }
            }
            None
        }
        Op::DeleteOrder(t, o) => {
            let order = pick(models[t].orders.keys(), &pools.orders, o, none_o);
            let args = json!({"order_id": order, "confirm": true});
            if models[t].orders.contains_key(&order) && !models[t].has_open(|a| a.order == order) {
                yes(tally, &tenants[t].client, "delete_order", args).await;
                models[t].drop_order(&order);
            } else {
                no(tally, &tenants[t].client, "delete_order", args).await;
            }
            None
        }
        Op::DeleteDriver(t, d) => {
            let driver = pick(models[t].drivers.keys(), &pools.drivers, d, none_d);
            let args = json!({"driver_id": driver, "confirm": true});
            if models[t].drivers.contains_key(&driver)
                && !models[t].has_open(|a| a.driver == driver)
            {
                yes(tally, &tenants[t].client, "delete_driver", args).await;
                models[t].drop_driver(&driver);
            } else {
                no(tally, &tenants[t].client, "delete_driver", args).await;
            }
            None
        }
        Op::DeleteAllOrders(t) | Op::DeleteAllDrivers(t) => {
            let (tool, n) = if matches!(op, Op::DeleteAllOrders(_)) {
                ("delete_all_orders", models[t].orders.len())
            } else {
                ("delete_all_drivers", models[t].drivers.len())
            };
            if models[t].has_open(|_| true) {
                no(tally, &tenants[t].client, tool, json!({"confirm": true})).await;
            } else {
                let out = yes(tally, &tenants[t].client, tool, json!({"confirm": true})).await;
                assert_eq!(out["deleted"], json!(n), "{tool}");
                if tool == "delete_all_orders" {
                    let ids: Vec<_> = models[t].orders.keys().cloned().collect();
                    ids.iter().for_each(|o| models[t].drop_order(o));
                } else {
                    let ids: Vec<_> = models[t].drivers.keys().cloned().collect();
                    ids.iter().for_each(|d| models[t].drop_driver(d));
                }
            }
            None
        }
        Op::SavePlace(t, n, p) => {
            let (lat, lng) = (30.0 + p as f64, 40.0 + p as f64);
            let args = json!({"name": PLACES[n], "lat": lat, "lng": lng});
            yes(tally, &tenants[t].client, "save_place", args).await;
            models[t].places.insert(PLACES[n].to_owned(), (lat, lng));
            None
        }
        Op::DeletePlace(t, n) => {
            let args = json!({"name": PLACES[n]});
            if models[t].places.remove(PLACES[n]).is_some() {
                yes(tally, &tenants[t].client, "delete_place", args).await;
            } else {
                no(tally, &tenants[t].client, "delete_place", args).await;
            }
            None
        }
    }
}

/// A fixed scenario run once before the random cases, through the same
/// steps and checks. Random runs alone left `complete_delivery` unused, or
/// fewer than five assignments finished, in about 2% of seeds (0.1% with
/// the weights in `op`), failing the floor asserted at the end of
/// `run_model`, so CI flaked; this makes every required success, and
/// refusals at own and other tenants' rows, certain whatever the seed.
/// Each tenant holds one order and one driver at a time (two for tenant 2's
/// last assignment), so index 1 always picks its own row; index 0 picks from
/// the shared pool, whose first rows are tenant 0's.
fn coverage() -> Vec<Op> {
    use Op::*;
    vec![
        // Tenant 0: assign by hand, refused twice, started, completed.
        CreateOrder(0, 0),
        CreateDriver(0, 0),
        Assign(0, 1, 1),
        Assign(0, 1, 1),
        Start(0, 1),
        Complete(0, 1),
        // Tenant 1: auto-assigned, failed, cancelled and reopened, auto-assigned
        // again and unassigned; then reaches for tenant 0's rows.
        CreateOrder(1, 0),
        CreateDriver(1, 0),
        Auto(1, 1),
        Fail(1, 1),
        CancelOrder(1, 1),
        ReopenOrder(1, 1),
        Auto(1, 1),
        Unassign(1, 1),
        Assign(1, 0, 0),
        Complete(1, 0),
        // Tenant 2: nobody can carry the order, a driver goes offline and back,
        // a big driver arrives, auto-assigned and completed.
        CreateOrder(2, 2),
        CreateDriver(2, 0),
        Auto(2, 1),
        DriverOffline(2, 1),
        DriverActive(2, 1),
        CreateDriver(2, 2),
        Auto(2, 1),
        Complete(2, 1),
        // Places: the same name in two tenants, a replacement, a refused
        // delete of a name only another tenant holds, a delete.
        SavePlace(0, 0, 0),
        SavePlace(1, 0, 1),
        SavePlace(0, 0, 2),
        DeletePlace(2, 0),
        DeletePlace(0, 0),
    ]
}

/// Each tenant's view through the tools equals its model.
async fn check(tenants: &[Tenant], models: &[Model], touched: Option<(usize, String)>) {
    for (t, (tenant, model)) in tenants.iter().zip(models).enumerate() {
        let c = &tenant.client;
        let orders = ok(c, "fetch_orders", json!({"limit": 100})).await;
        let seen: BTreeMap<String, (String, Option<String>)> = orders["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["order_id"].as_str().unwrap().to_owned(),
                    (
                        o["status"].as_str().unwrap().to_owned(),
                        o["assigned_driver_id"].as_str().map(str::to_owned),
                    ),
                )
            })
            .collect();
        let want: BTreeMap<String, (String, Option<String>)> = model
            .orders
            .iter()
            .map(|(id, o)| (id.clone(), (o.status.to_owned(), o.driver.clone())))
            .collect();
        assert_eq!(seen, want, "tenant {t}: orders");
        let drivers = ok(c, "fetch_drivers", json!({"limit": 100})).await;
        let seen: BTreeMap<String, (String, f64)> = drivers["drivers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["driver_id"].as_str().unwrap().to_owned(),
                    (
                        d["status"].as_str().unwrap().to_owned(),
                        d["current_lat"].as_f64().unwrap(),
                    ),
                )
            })
            .collect();
        let want: BTreeMap<String, (String, f64)> = model
            .drivers
            .iter()
            .map(|(id, d)| (id.clone(), (d.status.to_owned(), d.lat)))
            .collect();
        assert_eq!(seen, want, "tenant {t}: drivers");
        let places = ok(c, "list_places", json!({})).await;
        let seen: BTreeMap<String, (f64, f64)> = places["places"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    (p["lat"].as_f64().unwrap(), p["lng"].as_f64().unwrap()),
                )
            })
            .collect();
        assert_eq!(seen, model.places, "tenant {t}: places");
    }
    if let Some((t, asn)) = touched {
        let c = &tenants[t].client;
        match models[t].asns.get(&asn) {
            Some(m) => {
                let out = ok(c, "get_assignment_details", json!({"assignment_id": asn})).await;
                let a = &out["assignments"][0];
                assert_eq!(
                    (
                        a["status"].as_str().unwrap(),
                        a["order_id"].as_str().unwrap(),
                        a["driver_id"].as_str().unwrap()
                    ),
                    (m.status, m.order.as_str(), m.driver.as_str())
                );
            }
            None => {
                err(c, "get_assignment_details", json!({"assignment_id": asn})).await;
            }
        }
    }
}

/// Counts, and every assignment of every order, once at the end of a case.
async fn check_assignments(tenants: &[Tenant], models: &[Model]) {
    for (tenant, model) in tenants.iter().zip(models) {
        let counts = ok(&tenant.client, "count_orders", json!({})).await;
        assert_eq!(counts["total"], json!(model.orders.len()), "count_orders");
        let counts = ok(&tenant.client, "count_drivers", json!({})).await;
        assert_eq!(counts["total"], json!(model.drivers.len()), "count_drivers");
        for order in model.orders.keys() {
            let out = ok(
                &tenant.client,
                "get_assignment_details",
                json!({"order_id": order}),
            )
            .await;
            let seen: BTreeMap<String, String> = out["assignments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["assignment_id"].as_str().unwrap().to_owned(),
                        a["status"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            let want: BTreeMap<String, String> = model
                .asns
                .iter()
                .filter(|(_, a)| &a.order == order)
                .map(|(id, a)| (id.clone(), a.status.to_owned()))
                .collect();
            assert_eq!(seen, want, "assignments of {order}");
        }
    }
}

/// One case: fresh tenants named `{name}-{i}`, each op then every view
/// checked, then counts and assignments; how often each tool succeeded and
/// failed.
async fn run_case(t: &TestDb, url: &str, name: &str, ops: &[Op]) -> Tally {
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        tenants.push(tenant(t, url, &format!("{name}-{i}@example.com")).await);
    }
    let mut models: Vec<Model> = (0..TENANTS).map(|_| Model::default()).collect();
    let mut pools = Pools::default();
    let mut drivers = 0;
    let mut counted = Tally::new();
    for op in ops {
        let touched = step(
            &tenants,
            &mut models,
            &mut pools,
            op,
            &mut drivers,
            &mut counted,
        )
        .await;
        check(&tenants, &models, touched).await;
    }
    check_assignments(&tenants, &models).await;
    for tenant in tenants {
        let _ = tenant.client.cancel().await;
    }
    counted
}

fn merge(tally: &std::sync::Mutex<Tally>, counted: Tally) {
    let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
    for (tool, [good, bad]) in counted {
        let entry = tally.entry(tool).or_default();
        entry[0] += good;
        entry[1] += bad;
    }
}

fn run_model(backend: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let t = rt.block_on(async {
        if backend == "sqlite" {
            sqlite_db().await
        } else {
            pg_db().await
        }
    });
    let server = rt.block_on(start_server(t.db.clone()));
    let url = server.mcp_url();
    let case = AtomicUsize::new(0);
    let tally = std::sync::Mutex::new(Tally::new());
    let config = Config {
        cases: 10,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let counted = rt.block_on(run_case(&t, &url, "cover", &coverage()));
    merge(&tally, counted);
    // Each tenant starts with three orders and two drivers of random sizes.
    let setup = (
        proptest::collection::vec(0..WEIGHTS.len(), 3 * TENANTS),
        proptest::collection::vec(0..CAPACITIES.len(), 2 * TENANTS),
    )
        .prop_map(|(weights, capacities)| {
            let orders = weights
                .into_iter()
                .enumerate()
                .map(|(i, w)| Op::CreateOrder(i % TENANTS, w));
            let drivers = capacities
                .into_iter()
                .enumerate()
                .map(|(i, c)| Op::CreateDriver(i % TENANTS, c));
            orders.chain(drivers).collect::<Vec<_>>()
        });
    let cases = (setup, proptest::collection::vec(op(), 10..40)).prop_map(|(mut setup, ops)| {
        setup.extend(ops);
        setup
    });
    let result = runner.run(&cases, |ops| {
        rt.block_on(async {
            let n = case.fetch_add(1, Ordering::Relaxed);
            let counted = run_case(&t, &url, &format!("model{n}"), &ops).await;
            merge(&tally, counted);
        });
        Ok(())
    });
    rt.block_on(server.stop());
    if let Err(failure) = result {
        panic!("{backend}: {failure}");
    }
    let tally = tally.into_inner().unwrap_or_else(|e| e.into_inner());
    eprintln!("{backend}: {tally:?}");
    // The run must have done real work (assignments made and finished,
    // refusals met), or it proves little.
    let good = |tool: &str| tally.get(tool).map_or(0, |t| t[0]);
    let bad = |tool: &str| tally.get(tool).map_or(0, |t| t[1]);
    for tool in [
        "create_assignment",
        "auto_assign_order",
        "complete_delivery",
        "update_order",
        "update_driver",
        "save_place",
        "delete_place",
    ] {
        assert!(
            good(tool) > 0,
            "{backend}: {tool} never succeeded; the run proves too little"
        );
    }
    let refused: usize = tally.values().map(|[_, bad]| bad).sum();
    assert!(
        refused >= 20
            && bad("create_assignment") + bad("auto_assign_order") > 0
            && bad("delete_place") > 0,
        "{backend}: only {refused} refusals; the run proves too little"
    );
    let finished: usize = [
        "complete_delivery",
        "fail_delivery",
        "unassign_order",
        "update_assignment",
    ]
    .iter()
    .map(|t| good(t))
    .sum();
    assert!(
        finished >= 5,
        "{backend}: only {finished} assignment steps succeeded; the run proves too little"
    );
}

#[test]
fn every_tenants_view_follows_its_own_model_on_sqlite() {
    run_model("sqlite");
}

#[test]
#[cfg_attr(not(fm_pg), ignore = "Postgres: set FLEETMIND_TEST_PG")]
fn every_tenants_view_follows_its_own_model_on_postgres() {
    run_model("postgres");
}

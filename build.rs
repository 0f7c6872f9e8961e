// The migrations are embedded by `sqlx::migrate!`; a new migration file must
// rebuild the crate even when no Rust source changed.
//
// `fm_pg`, `fm_python`, `fm_valhalla` and `fm_nominatim` tell the integration tests (tests/it)
// whether the Postgres, Python, Valhalla and Nominatim parts are to run: without them those halves are
// compiled as `#[ignore]`, so a skipped half shows in cargo's summary as
// ignored instead of passing. CI always runs them.
fn main() {
    println!("cargo::rerun-if-changed=migrations");
    println!("cargo::rustc-check-cfg=cfg(fm_pg)");
    println!("cargo::rustc-check-cfg=cfg(fm_python)");
    println!("cargo::rustc-check-cfg=cfg(fm_valhalla)");
    println!("cargo::rustc-check-cfg=cfg(fm_nominatim)");
    for var in [
        "FLEETMIND_TEST_PG",
        "FLEETMIND_TEST_PYTHON",
        "FLEETMIND_TEST_VALHALLA",
        "FLEETMIND_TEST_NOMINATIM",
        "CI",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if ci || set("FLEETMIND_TEST_PG") {
        println!("cargo::rustc-cfg=fm_pg");
    }
    if ci || set("FLEETMIND_TEST_PYTHON") {
        println!("cargo::rustc-cfg=fm_python");
    }
    if ci || set("FLEETMIND_TEST_VALHALLA") {
        println!("cargo::rustc-cfg=fm_valhalla");
    }
    if ci || set("FLEETMIND_TEST_NOMINATIM") {
        println!("cargo::rustc-cfg=fm_nominatim");
    }
}

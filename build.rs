// The migrations are embedded by `sqlx::migrate!`; a new migration file must
// rebuild the crate even when no Rust source changed.
//
// `fm_pg`, `fm_python`, `fm_valhalla` and `fm_nominatim` tell the integration tests (tests/it)
// whether the Postgres, Python, Valhalla and Nominatim parts are to run: without them those halves are
// compiled as `#[ignore]`, so a skipped half shows in cargo's summary as
// ignored instead of passing. CI always runs them.
//
// `fm_browser` does the same for the console's browser test (tests/it/console_browser.rs,
// Debian's chromium and chromium-driver): set under CI or with `FLEETMIND_REQUIRE_BROWSER=1`.
// That variable is a switch rather than a path like the others (the test finds chromedriver on
// PATH and chromium at `FLEETMIND_CHROMIUM`, default /usr/bin/chromium), so only `1` turns it on.
fn main() {
    println!("cargo::rerun-if-changed=migrations");
    println!("cargo::rustc-check-cfg=cfg(fm_pg)");
    println!("cargo::rustc-check-cfg=cfg(fm_python)");
    println!("cargo::rustc-check-cfg=cfg(fm_valhalla)");
    println!("cargo::rustc-check-cfg=cfg(fm_nominatim)");
    println!("cargo::rustc-check-cfg=cfg(fm_browser)");
    for var in [
        "FLEETMIND_TEST_PG",
        "FLEETMIND_TEST_PYTHON",
        "FLEETMIND_TEST_VALHALLA",
        "FLEETMIND_TEST_NOMINATIM",
        "FLEETMIND_REQUIRE_BROWSER",
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
    if ci || std::env::var("FLEETMIND_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        println!("cargo::rustc-cfg=fm_browser");
    }
}

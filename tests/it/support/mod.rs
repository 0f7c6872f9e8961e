//! Shared test support, written once: real databases ([`db`]), the real
//! server on 127.0.0.1:0 ([`server`]), the real rmcp client and plain-HTTP
//! calls ([`client`]), raw HTTP ([`raw_http`]), table snapshots
//! ([`snapshot`]), a TCP proxy that can cut the database off ([`proxy`]),
//! and the fleet and key helpers ([`fleet`], [`keys`]).
#![allow(dead_code)]

pub mod binary;
pub mod client;
pub mod db;
pub mod fleet;
pub mod keys;
pub mod nominatim;
pub mod proxy;
pub mod raw_http;
pub mod server;
pub mod snapshot;
pub mod valhalla;

pub use client::*;
pub use db::*;
pub use raw_http::*;
pub use server::*;
pub use snapshot::*;

/// One test body, run as two tests: `$name::sqlite` on a fresh SQLite file
/// and `$name::postgres` on a fresh Postgres database. The Postgres half is
/// compiled as ignored unless `FLEETMIND_TEST_PG` is set (or `CI` is true;
/// see `build.rs`), so a half that did not run shows in cargo's summary as
/// ignored, never as passed.
///
/// Attributes before the name go on both tests: a test that needs more than
/// a database says so there, in the same way (see console_browser.rs).
///
/// ```ignore
/// backend_test!(whoami_answers, |t| async move {
///     let server = start_server(t.db.clone()).await;
///     // ...
/// });
/// backend_test!(#[cfg_attr(not(fm_browser), ignore = "...")] in_a_browser, |t| async move {
///     // ...
/// });
/// ```
macro_rules! backend_test {
    ($(#[$attr:meta])* $name:ident, |$t:ident| async move $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($t: $crate::support::TestDb) $body

            #[tokio::test]
            $(#[$attr])*
            async fn sqlite() {
                body($crate::support::sqlite_db().await).await
            }

            #[tokio::test]
            $(#[$attr])*
            #[cfg_attr(not(fm_pg), ignore = "Postgres: set FLEETMIND_TEST_PG")]
            // A caller's `ignore` and this one may both apply; the first
            // is the one cargo shows, the second is then unused.
            #[allow(unused_attributes)]
            async fn postgres() {
                body($crate::support::pg_db().await).await
            }
        }
    };
}

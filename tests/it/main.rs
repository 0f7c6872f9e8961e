//! The integration tests, in one binary (issue 10): one module per topic and
//! the support they share in `support/`. One binary links once, where one
//! per file linked the server and its dependencies ~30 times.

// The support functions and test bodies stop the test at the first thing
// that went wrong, with its message: that is what a test should do, and
// clippy.toml's allow-*-in-tests reaches #[test] functions, not the helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

mod admin_tools;
mod architecture;
mod auth_cache;
mod auth_matrix;
mod cli;
mod console;
mod console_audit_times;
mod console_browser;
mod console_invites;
mod console_limits;
mod console_sessions;
mod console_tenant;
mod console_throttle;
mod deadlines;
mod fleet_isolation;
mod fleet_model;
mod fleet_panic;
mod fleet_store;
mod fleet_times;
mod fleet_tools;
mod fuzz_http;
mod geocoder;
mod http_edges;
mod key_audit;
mod key_limits;
mod key_retired;
mod key_vectors;
mod limits_enforced;
mod log_secrets;
mod no_oauth;
mod observe;
mod partition;
mod pool;
mod prompts;
mod protocol;
mod routing;
mod routing_assign;
mod scope_matrix;
mod seed_compat;
mod test_databases;
mod tools_doc;
mod trusted_proxies;
mod unknown_key_flood;
mod usage;
mod whoami;
mod whoami_arguments;

//! FleetMind MCP: a multi-tenant delivery-fleet server for AI assistants.
//!
//! Requests reach `/mcp` through [`auth::AuthLayer`], which verifies the
//! `fm_` key against the [`store`] and hands the [`auth::Caller`] to the MCP
//! tools in [`mcp`]. [`app::start`] runs it all; `main` is a thin wrapper.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod console;
pub mod desktop_config;
pub mod edge;
pub mod fleet;
pub mod key_admin;
pub mod keys;
pub mod limits;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod net;
pub mod plural;
pub mod routing;
pub mod scopes;
pub mod store;
pub mod tenant;
pub mod usage;

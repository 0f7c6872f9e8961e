//! The fleet's domain: orders, drivers and assignments as values, their
//! state machines and field limits, and the choice of a driver for an order.
//!
//! Plain Rust without I/O (no database, no protocol): the store keeps these
//! values and wraps [`FleetError`]; the MCP tools show them.

pub mod choose;
mod create;
mod error;
mod fields;
mod parse;
pub mod rules;
pub mod types;

pub use error::FleetError;
pub use types::*;

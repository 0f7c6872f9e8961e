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

/// The unit tests' create arguments: a valid call, with a test's own
/// fields over it, read as the tools read them.
#[cfg(test)]
mod samples {
    use super::{NewDriver, NewOrder};
    use serde_json::{Value, json};

    pub(super) fn new_order(extra: Value) -> Result<NewOrder, serde_json::Error> {
        let valid = json!({
            "customer_name": "A", "delivery_address": "B",
            "delivery_lat": 1, "delivery_lng": 2,
            "expected_delivery_time": "2099-01-01T12:00:00Z",
        });
        serde_json::from_value(over(valid, extra))
    }

    pub(super) fn new_driver(extra: Value) -> Result<NewDriver, serde_json::Error> {
        let valid = json!({
            "name": "D", "vehicle_type": "van", "current_address": "Depot",
            "current_lat": 1, "current_lng": 2,
        });
        serde_json::from_value(over(valid, extra))
    }

    fn over(mut valid: Value, extra: Value) -> Value {
        if let (Some(valid), Value::Object(extra)) = (valid.as_object_mut(), extra) {
            valid.extend(extra);
        }
        valid
    }
}

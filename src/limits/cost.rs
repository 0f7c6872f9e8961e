//! What a tool call costs against the monthly quota, in units: 1 unless
//! listed here. The heavier tools are those that call the road engine or
//! the geocoder (an outside service with its own limits) or weigh many
//! drivers against a route. The per-minute rate limit counts calls, not
//! units.

/// The tools that cost more than one unit, and why.
pub const TOOL_COST: &[(&str, u64)] = &[
    // One request to the geocoder.
    ("geocode_address", 5),
    // One route from the road engine.
    ("calculate_route", 5),
    // Routes through several stops (the engine's optimised route).
    ("calculate_intelligent_route", 10),
    // A route estimate per candidate driver.
    ("intelligent_assign_order", 10),
    // The nearest available driver, by straight-line estimate.
    ("auto_assign_order", 2),
];

/// The units a call of `tool` costs (1 for any other name, known or not:
/// an unknown tool is still a call).
pub fn cost_of(tool: &str) -> u64 {
    TOOL_COST
        .iter()
        .find(|(name, _)| *name == tool)
        .map_or(1, |(_, cost)| *cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::policy::access_for;

    #[test]
    fn every_priced_tool_is_a_tool_and_the_rest_cost_one() {
        for (tool, cost) in TOOL_COST {
            assert!(access_for(tool).is_some(), "{tool} is not in TOOL_ACCESS");
            assert!(*cost > 1, "{tool}: list only tools heavier than 1");
        }
        assert_eq!(cost_of("whoami"), 1);
        assert_eq!(cost_of("no_such_tool"), 1);
        assert_eq!(cost_of("calculate_route"), 5);
    }
}

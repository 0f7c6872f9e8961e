//! Prompts a dispatcher starts the day with. Each one tells the assistant
//! which FleetMind tools to call, in which order, and what to report, so a
//! client that shows prompts (Claude Desktop's "+" menu, the Inspector) offers
//! real work rather than a blank page. Their arguments complete through
//! `completion/complete` (see [`complete`]).

use super::{FleetMind, truncate};
use rmcp::ErrorData;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, CompletionInfo, GetPromptResult, PromptMessage,
    Reference, Role,
};
use rmcp::{prompt, prompt_router, schemars};
use serde::Deserialize;

/// The shifts a briefing can plan.
const SHIFTS: [&str; 3] = ["morning", "afternoon", "evening"];
/// Order priorities, as the order tools spell them.
const PRIORITIES: [&str; 3] = ["standard", "express", "urgent"];
/// Longest order id accepted in a prompt argument (ids look like `ORD-…`).
const MAX_ORDER_ID: usize = 64;

/// Arguments of `morning_dispatch_briefing`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct BriefingArgs {
    /// The shift to plan: morning (default), afternoon or evening.
    pub shift: Option<String>,
    /// Put orders of this priority first: standard, express or urgent (default: urgent, then express).
    pub priority: Option<String>,
}

/// Arguments of `assignment_review`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct ReviewArgs {
    /// The order whose assignment to review (e.g. ORD-...); leave it out to review every open assignment.
    pub order_id: Option<String>,
}

#[prompt_router(vis = "pub(super)")]
impl FleetMind {
    #[prompt(
        name = "morning_dispatch_briefing",
        title = "Dispatch briefing",
        description = "Start a shift: what is open, who can drive, what to assign first, and what is at risk of running late."
    )]
    async fn morning_dispatch_briefing(
        &self,
        Parameters(args): Parameters<BriefingArgs>,
    ) -> Result<GetPromptResult, ErrorData> {
        let shift = choice("shift", args.shift.as_deref(), &SHIFTS)?.unwrap_or("morning");
        let first = match choice("priority", args.priority.as_deref(), &PRIORITIES)? {
            Some(priority) => format!("{priority} orders first"),
            None => "urgent orders first, then express".to_owned(),
        };
        let text = briefing_text(shift, &first);
        Ok(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
                .with_description(format!("Dispatch briefing for the {shift} shift")),
        )
    }

    #[prompt(
        name = "assignment_review",
        title = "Assignment review",
        description = "Check an order's assignment (or every open one): right driver, on time, anything stuck or failed, and what to do about it."
    )]
    async fn assignment_review(
        &self,
        Parameters(args): Parameters<ReviewArgs>,
    ) -> Result<GetPromptResult, ErrorData> {
        let order_id = order_id(args.order_id.as_deref())?;
        let text = review_text(order_id);
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            text,
        )]))
    }
}

/// The briefing: which tools to call, in which order, and what to show.
fn briefing_text(shift: &str, first: &str) -> String {
    format!(
        "You are my dispatch assistant for the {shift} shift. Use the FleetMind tools; \
         every call only sees my company's data.\n\
         1. Call `whoami` to confirm the account and note which scopes the key has. If a \
         tool below is not in your tool list, the key lacks its scope: say so and skip it.\n\
         2. Call `count_orders` with status \"pending\", then `get_incomplete_orders` \
         (limit 50) to see what is open; group the orders by priority, {first}.\n\
         3. Call `get_available_drivers` and `fetch_drivers` with status \"busy\" to see \
         who can take work and who is on a route.\n\
         4. For each pending order, {first}, propose a driver. Use \
         `intelligent_assign_order` for its reasoning when you are unsure, but do not \
         assign anything yet: show me the plan as a table (order, priority, deadline, \
         proposed driver, why).\n\
         5. List orders whose expected delivery time is before the end of the {shift} shift \
         and that have no driver: these are at risk of running late.\n\
         Ask me to confirm before calling `create_assignment` or `auto_assign_order`."
    )
}

/// The review, of one order or of every open delivery.
fn review_text(order_id: Option<&str>) -> String {
    match order_id {
        Some(order_id) => format!(
            "Review the delivery of order {order_id} with the FleetMind tools.\n\
             1. Call `get_order_details` with order_id \"{order_id}\" and \
             `get_assignment_details` with the same order_id.\n\
             2. If it has no assignment, say so and suggest a driver with \
             `intelligent_assign_order` (do not assign without my confirmation).\n\
             3. Otherwise check: is the driver suited to the order (vehicle, capacity, \
             skills such as refrigerated or fragile handling; `get_driver_details`)? Will \
             it arrive before the expected delivery time? Is the status stuck?\n\
             4. Recommend one action: keep it, reassign (`unassign_order` then \
             `create_assignment`), or close it (`complete_delivery` or `fail_delivery` \
             with a reason). Ask me before calling any tool that changes data."
        ),
        None => "Review every open delivery with the FleetMind tools.\n\
             1. Call `fetch_orders` with status \"assigned\" and again with status \
             \"in_transit\", then `get_assignment_details` for each order.\n\
             2. Flag assignments that are late against the expected delivery time, stuck \
             in the same status, or given to a driver whose vehicle, capacity or skills do \
             not fit the order (`get_driver_details`).\n\
             3. Show a table: order, driver, status, expected delivery, problem.\n\
             4. For each problem recommend one action (reassign with `unassign_order` and \
             `create_assignment`, or close with `complete_delivery` / `fail_delivery`), \
             and ask me before calling any tool that changes data."
            .to_owned(),
    }
}

/// `value` if it is one of `allowed` (case-insensitive), `None` if absent.
fn choice<'a>(
    field: &str,
    value: Option<&str>,
    allowed: &[&'a str],
) -> Result<Option<&'a str>, ErrorData> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(value))
        .map(|a| Some(*a))
        .ok_or_else(|| {
            ErrorData::invalid_params(
                format!("'{field}' must be one of: {}", allowed.join(", ")),
                None,
            )
        })
}

/// An order id is echoed into the prompt: keep it short and plain.
fn order_id(value: Option<&str>) -> Result<Option<&str>, ErrorData> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if value.len() > MAX_ORDER_ID || !plain {
        return Err(ErrorData::invalid_params(
            format!(
                "'order_id' must be an order id such as ORD-20260101-0001 (letters, digits, '-' \
                 or '_', at most {MAX_ORDER_ID} characters)"
            ),
            None,
        ));
    }
    Ok(Some(value))
}

/// `completion/complete` for prompt arguments: the fixed choices that start
/// with what was typed. Order ids have no suggestions (the list would depend
/// on data a prompt must not read), so they complete to nothing.
pub(super) fn complete(request: &CompleteRequestParams) -> Result<CompleteResult, ErrorData> {
    let Reference::Prompt(prompt) = &request.r#ref else {
        return Err(ErrorData::invalid_params(
            "FleetMind has no resource templates to complete",
            None,
        ));
    };
    let argument = request.argument.name.as_str();
    let options: &[&str] = match (prompt.name.as_str(), argument) {
        ("morning_dispatch_briefing", "shift") => &SHIFTS,
        ("morning_dispatch_briefing", "priority") => &PRIORITIES,
        ("assignment_review", "order_id") => &[],
        ("morning_dispatch_briefing" | "assignment_review", _) => {
            return Err(ErrorData::invalid_params(
                format!(
                    "prompt '{}' has no argument '{}'",
                    prompt.name,
                    truncate(argument)
                ),
                None,
            ));
        }
        _ => {
            return Err(ErrorData::invalid_params(
                format!("unknown prompt '{}'", truncate(&prompt.name)),
                None,
            ));
        }
    };
    let typed = request.argument.value.trim().to_ascii_lowercase();
    let values: Vec<String> = options
        .iter()
        .filter(|o| o.starts_with(&typed))
        .map(|o| (*o).to_owned())
        .collect();
    // At most three choices: far below the protocol's 100-value limit.
    let completion = CompletionInfo::with_all_values(values)
        .map_err(|message| ErrorData::internal_error(message, None))?;
    Ok(CompleteResult::new(completion))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ArgumentInfo;

    fn ask(prompt: &str, argument: &str, value: &str) -> Result<Vec<String>, ErrorData> {
        complete(&CompleteRequestParams::new(
            Reference::for_prompt(prompt),
            ArgumentInfo::new(argument, value),
        ))
        .map(|r| r.completion.values)
    }

    #[test]
    fn completes_choices_by_prefix() {
        assert_eq!(
            ask("morning_dispatch_briefing", "shift", "").unwrap(),
            SHIFTS
        );
        assert_eq!(
            ask("morning_dispatch_briefing", "shift", "Aft").unwrap(),
            ["afternoon"]
        );
        assert_eq!(
            ask("morning_dispatch_briefing", "priority", "ex").unwrap(),
            ["express"]
        );
        assert!(
            ask("assignment_review", "order_id", "ORD")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn unknown_prompts_and_arguments_are_invalid_params() {
        let err = ask("test_prompt_with_arguments", "arg1", "x").unwrap_err();
        assert_eq!(err.code, rmcp::model::ErrorCode::INVALID_PARAMS);
        assert!(err.message.contains("unknown prompt"));
        let err = ask("assignment_review", "driver", "").unwrap_err();
        assert!(err.message.contains("no argument 'driver'"));
    }

    #[test]
    fn every_tool_a_prompt_names_is_a_real_tool() {
        let texts = [
            briefing_text("morning", "urgent orders first"),
            review_text(Some("ORD-1")),
            review_text(None),
        ];
        let mut named = 0;
        for text in &texts {
            for quoted in text.split('`').skip(1).step_by(2) {
                named += 1;
                assert!(
                    crate::mcp::policy::access_for(quoted).is_some(),
                    "a prompt names `{quoted}`, which is not a FleetMind tool"
                );
            }
        }
        assert!(named >= 15, "{named}");
    }

    #[test]
    fn arguments_are_checked_and_named() {
        assert_eq!(
            choice("shift", Some(" Evening "), &SHIFTS).unwrap(),
            Some("evening")
        );
        assert_eq!(choice("shift", Some(""), &SHIFTS).unwrap(), None);
        let err = choice("shift", Some("night"), &SHIFTS).unwrap_err();
        assert!(err.message.contains("'shift' must be one of"));
        assert_eq!(order_id(Some("ORD-1")).unwrap(), Some("ORD-1"));
        for bad in ["ORD 1", "ORD-1\"; drop", &"A".repeat(65)] {
            let err = order_id(Some(bad)).unwrap_err();
            assert!(err.message.contains("'order_id'"), "{bad}");
        }
    }
}

//! docs/tools.md against the fleet tools' input schemas, as a client lists
//! them: the table of the fleet tools cannot drift from the arguments the
//! tools take (issue 10: a new field of an order or driver is in the doc or
//! this fails, naming it), and its bold names are exactly the required ones.

use crate::support::*;
use fleetmind::mcp::policy::{Access, TOOL_ACCESS};
use fleetmind::scopes::{Scope, Scopes};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// Whether a tool is one of the fleet's (orders, drivers, assignments):
/// those are the rows of the doc's first table.
fn is_fleet_tool(access: Access) -> bool {
    use Scope::*;
    matches!(
        access,
        Access::Needs(
            OrdersRead
                | OrdersWrite
                | DriversRead
                | DriversWrite
                | AssignmentsRead
                | AssignmentsManage
        )
    )
}

/// Each table row of the doc (`` | `tool` | scope | arguments | ``): the
/// tool's name and its arguments cell.
fn rows(doc: &str) -> HashMap<&str, &str> {
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name, *cells.get(3)?))
        })
        .collect()
}

/// The names an arguments cell gives: its words, leaving out what is in
/// parentheses (defaults, choices) and after a `:` or `→` (what the tool
/// does), where an argument's name may appear without naming it.
fn named(cell: &str) -> BTreeSet<String> {
    let cell = cell.split([':', '→']).next().unwrap_or_default();
    let mut depth = 0;
    let outside: String = cell
        .chars()
        .map(|c| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth > 0 || c == ')' { ' ' } else { c }
        })
        .collect();
    words(&outside).into_iter().map(str::to_owned).collect()
}

/// The identifiers in `text` (`customer_name`, `limit`).
fn words(text: &str) -> BTreeSet<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .collect()
}

/// The names in bold (`**a, b**`): the arguments the doc says are
/// required ("required in bold", says the table's header).
fn bold(cell: &str) -> BTreeSet<&str> {
    cell.split("**")
        .skip(1)
        .step_by(2)
        .flat_map(words)
        .collect()
}

#[tokio::test]
async fn the_tools_doc_names_every_argument_of_each_fleet_tool() {
    // The schemas come from types, not from the database: one backend is enough.
    let t = sqlite_db().await;
    let admin = issue_key(&t.db, "docs@example.com", Some(Scopes::admin())).await;
    let server = start_server(t.db.clone()).await;
    let client = connect(&server.mcp_url(), admin.api_key.expose())
        .await
        .expect("connect");
    let tools = client.list_all_tools().await.expect("tools/list");
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/tools.md"))
        .expect("docs/tools.md");
    let rows = rows(&doc);
    let mut wrong = Vec::new();
    for (name, _) in TOOL_ACCESS.iter().filter(|(_, a)| is_fleet_tool(*a)) {
        let Some(cell) = rows.get(name) else {
            wrong.push(format!("{name}: no row"));
            continue;
        };
        let mut names = named(cell);
        // `update_order`: "any create field" names create_order's.
        if cell.contains("any create field") {
            let create = name.replacen("update_", "create_", 1);
            names.extend(
                rows.get(create.as_str())
                    .map(|c| named(c))
                    .unwrap_or_default(),
            );
        }
        let tool = tools
            .iter()
            .find(|tool| tool.name == *name)
            .unwrap_or_else(|| panic!("{name} not listed to an admin"));
        let schema = Value::Object((*tool.input_schema).clone());
        let properties = schema["properties"].as_object().expect("properties");
        for argument in properties.keys() {
            if !names.contains(argument) {
                wrong.push(format!("{name}: `{argument}` is not named"));
            }
        }
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let bold = bold(cell);
        for argument in bold.difference(&required) {
            wrong.push(format!("{name}: `{argument}` is bold but not required"));
        }
        for argument in required.difference(&bold) {
            wrong.push(format!("{name}: `{argument}` is required but not bold"));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/tools.md and the fleet tools' schemas differ:\n{}",
        wrong.join("\n")
    );
    let _ = client.cancel().await;
    server.stop().await;
}

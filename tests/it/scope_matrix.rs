//! Tool × scope, driven by the one policy table: for each kind of key,
//! `tools/list` shows exactly the tools it may call, every other tool is a
//! tool error naming the missing scope, and allowed tools are never refused
//! for scope reasons; the same for resources (`RESOURCE_ACCESS`). New tools
//! and resources are covered as soon as they get a row.

use crate::support::*;
use fleetmind::keys::ApiKey;
use fleetmind::mcp::FleetMind;
use fleetmind::mcp::policy::{Access, RESOURCE_ACCESS, TOOL_ACCESS};
use fleetmind::scopes::{Scope, Scopes};
use fleetmind::store::NewKey;
use rmcp::model::{CallToolRequestParams, ReadResourceRequestParams};
use std::collections::BTreeSet;

const REFUSAL: &str = "permission denied";

/// The rule of the issue, written out independently of `Scopes::allows`:
/// `admin` implies everything, `assignments:manage` implies
/// `assignments:read`.
fn may_call(held: &[Scope], access: Access) -> bool {
    match access {
        Access::AnyKey => true,
        Access::Needs(needed) => {
            held.contains(&Scope::Admin)
                || held.contains(&needed)
                || (needed == Scope::AssignmentsRead && held.contains(&Scope::AssignmentsManage))
        }
    }
}

/// Every kind of key the matrix covers: each scope alone, the predecessor's
/// default set, and a key with no scope at all.
fn key_kinds() -> Vec<(String, Vec<Scope>)> {
    let mut kinds: Vec<_> = Scope::ALL
        .into_iter()
        .map(|s| (s.as_str().to_owned(), vec![s]))
        .collect();
    kinds.push((
        "predecessor default".into(),
        vec![
            Scope::OrdersRead,
            Scope::OrdersWrite,
            Scope::DriversRead,
            Scope::DriversWrite,
            Scope::AssignmentsManage,
            Scope::RoutingUse,
        ],
    ));
    kinds.push(("no scope".into(), vec![]));
    kinds
}

#[test]
fn the_predecessor_default_in_the_matrix_is_the_real_one() {
    let (_, default) = &key_kinds()[Scope::ALL.len()];
    assert_eq!(
        Scopes::from_iter(default.iter().copied()),
        Scopes::PREDECESSOR_DEFAULT
    );
}

#[test]
fn every_served_tool_has_exactly_one_policy_row_and_every_row_a_tool() {
    let served: BTreeSet<String> = FleetMind::tool_names().into_iter().collect();
    let mut rows = BTreeSet::new();
    for (name, _) in TOOL_ACCESS {
        assert!(rows.insert((*name).to_owned()), "duplicate row for {name}");
    }
    let unlisted: Vec<_> = served.difference(&rows).collect();
    let unserved: Vec<_> = rows.difference(&served).collect();
    assert!(
        unlisted.is_empty(),
        "tools without a policy row: {unlisted:?}"
    );
    assert!(
        unserved.is_empty(),
        "policy rows without a tool: {unserved:?}"
    );
}

/// A key with exactly these scopes. Written straight to the store, because
/// the key-issuing rules (rightly) refuse a key without scopes.
async fn key_with(db: &fleetmind::store::Db, n: usize, scopes: &[Scope]) -> ApiKey {
    let key = ApiKey::generate().expect("key");
    db.insert_key(&NewKey {
        user_id: format!("user_matrix{n:07}"),
        email: format!("matrix{n}@example.com"),
        name: None,
        hash: key.hash(),
        prefix: key.display_prefix(),
        scopes: Scopes::from_iter(scopes.iter().copied()),
        expires_at: None,
        created_by: "cli".into(),
        limits: Default::default(),
        created_at: chrono::Utc::now(),
    })
    .await
    .expect("insert key");
    key
}

/// The text of a call's answer, or of its protocol error, and whether it
/// was a tool error.
async fn call_raw(client: &Client, tool: &str) -> (String, Option<bool>) {
    match client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(Default::default()))
        .await
    {
        Ok(result) => (text_of(&result), Some(result.is_error == Some(true))),
        Err(err) => (err.to_string(), None),
    }
}

backend_test!(
    each_key_lists_and_calls_exactly_what_its_scopes_allow,
    |t| async move {
        let server = start_server(t.db.clone()).await;
        for (n, (kind, held)) in key_kinds().into_iter().enumerate() {
            let key = key_with(&t.db, n, &held).await;
            let client = connect(&server.mcp_url(), key.expose())
                .await
                .unwrap_or_else(|e| panic!("{kind}: connect: {e}"));

            let listed: BTreeSet<String> = client
                .list_all_tools()
                .await
                .unwrap_or_else(|e| panic!("{kind}: tools/list: {e}"))
                .into_iter()
                .map(|tool| tool.name.into_owned())
                .collect();
            let expected: BTreeSet<String> = TOOL_ACCESS
                .iter()
                .filter(|(_, access)| may_call(&held, *access))
                .map(|(name, _)| (*name).to_owned())
                .collect();
            assert_eq!(
                listed, expected,
                "{:?}: tools/list of a '{kind}' key",
                t.backend
            );

            for (tool, access) in TOOL_ACCESS {
                let (text, is_error) = call_raw(&client, tool).await;
                if may_call(&held, *access) {
                    // It may still fail (no arguments were given), but not
                    // for want of a scope.
                    assert!(
                        !text.contains(REFUSAL)
                            && !text.contains("which this API key does not have"),
                        "{:?}: '{kind}' key refused {tool}: {text}",
                        t.backend
                    );
                } else {
                    let Access::Needs(scope) = access else {
                        unreachable!("AnyKey tools are always allowed")
                    };
                    assert_eq!(
                        is_error,
                        Some(true),
                        "{:?}: '{kind}' key calling {tool}: want a tool error, got {text}",
                        t.backend
                    );
                    assert!(
                        text.contains(REFUSAL) && text.contains(&format!("'{scope}'")),
                        "{:?}: '{kind}' key calling {tool}: refusal must name '{scope}': {text}",
                        t.backend
                    );
                }
            }
            check_resources(&client, &kind, &held, t.backend).await;
            let _ = client.cancel().await;
        }
        server.stop().await;
    }
);

/// The same rule for resources: listed exactly when readable, and a read
/// without the scope is refused naming it.
async fn check_resources(
    client: &Client,
    kind: &str,
    held: &[Scope],
    backend: fleetmind::store::Backend,
) {
    let listed: BTreeSet<String> = client
        .list_all_resources()
        .await
        .unwrap_or_else(|e| panic!("{kind}: resources/list: {e}"))
        .into_iter()
        .map(|resource| resource.uri.clone())
        .collect();
    let expected: BTreeSet<String> = RESOURCE_ACCESS
        .iter()
        .filter(|(_, access)| may_call(held, *access))
        .map(|(uri, _)| (*uri).to_owned())
        .collect();
    assert_eq!(
        listed, expected,
        "{backend:?}: resources/list of a '{kind}' key"
    );
    for (uri, access) in RESOURCE_ACCESS {
        let read = client
            .read_resource(ReadResourceRequestParams::new(*uri))
            .await;
        match (may_call(held, *access), read) {
            (true, Ok(_)) => {}
            (true, Err(e)) => panic!("{backend:?}: '{kind}' key cannot read {uri}: {e}"),
            (false, Ok(_)) => panic!("{backend:?}: '{kind}' key read {uri}"),
            (false, Err(e)) => {
                let Access::Needs(scope) = access else {
                    unreachable!("AnyKey resources are always readable")
                };
                let text = e.to_string();
                assert!(
                    text.contains(REFUSAL) && text.contains(&format!("'{scope}'")),
                    "{backend:?}: '{kind}' key reading {uri}: refusal must name '{scope}': {text}"
                );
            }
        }
    }
}

// The admin tools write keys, so they show that a refusal happens before
// the tool runs: a valid request from a key without `admin` writes no row.
backend_test!(a_refused_call_changes_nothing, |t| async move {
    let server = start_server(t.db.clone()).await;
    let key = key_with(&t.db, 0, &[Scope::OrdersRead, Scope::OrdersWrite]).await;
    let client = connect(&server.mcp_url(), key.expose())
        .await
        .expect("connect");
    let before = t.db.count_keys().await.expect("count");
    let (value, is_error) = call(
        &client,
        "admin_create_api_key",
        serde_json::json!({"email": "new@example.com", "scopes": ["orders:read"]}),
    )
    .await;
    assert!(is_error, "{value}");
    assert!(value.to_string().contains("'admin'"), "{value}");
    assert_eq!(t.db.count_keys().await.expect("count"), before);
    let _ = client.cancel().await;
    server.stop().await;
});

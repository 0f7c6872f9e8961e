//! `whoami` refuses arguments it does not know, as every other tool does
//! (issue 9): a tool error naming the argument, not a silent answer.

use crate::support::*;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

backend_test!(
    whoami_refuses_unknown_arguments_and_takes_none_or_empty,
    |t| async move {
        let issued = issue_key(&t.db, "ann@example.com", None).await;
        let server = start_server(t.db.clone()).await;
        let client = connect(&server.mcp_url(), issued.api_key.expose())
            .await
            .expect("connect");

        let (refused, is_error) = call(&client, "whoami", json!({"verbose": true})).await;
        assert!(is_error, "{refused}");
        assert_eq!(
            refused,
            json!("unknown argument 'verbose' (this tool takes no arguments)")
        );
        // The same shape as another tool's refusal of an unknown field.
        let (other, other_is_error) = call(&client, "count_orders", json!({"verbose": true})).await;
        assert!(other_is_error, "{other}");
        assert!(other.as_str().unwrap_or("").contains("verbose"), "{other}");

        let (who, is_error) = call(&client, "whoami", json!({})).await;
        assert!(!is_error, "{who}");
        assert_eq!(who["user_id"], json!(issued.record.user_id));
        let absent = client
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .expect("whoami without arguments");
        assert_ne!(absent.is_error, Some(true), "{absent:?}");
        let _ = client.cancel().await;
        server.stop().await;
    }
);

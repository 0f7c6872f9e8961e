//! The smallest end-to-end story: a key issued on each backend, the real
//! server, the real rmcp client, `whoami`.

use crate::support::*;

backend_test!(whoami_answers_with_the_keys_user, |t| async move {
    let issued = issue_key(&t.db, "Alice@Example.com ", None).await;
    let server = start_server(t.db.clone()).await;
    let client = connect(&server.mcp_url(), issued.api_key.expose())
        .await
        .expect("connect");
    let (who, is_error) = call(&client, "whoami", serde_json::json!({})).await;
    assert!(!is_error, "{who}");
    // user_ + md5("alice@example.com")[..12], computed with Python's hashlib.
    assert_eq!(who["user_id"], "user_c160f8cc69a4");
    assert_eq!(who["key_prefix"], issued.api_key.expose()[..12]);
    let _ = client.cancel().await;
    server.stop().await;
});

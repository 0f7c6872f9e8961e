//! The Claude Desktop entries shown with a new key: printed by the CLI at
//! the first start and shown by the web console. Both rooms use this one
//! module, so the web pages never reach into the command line layer.

/// The mcp-remote release the entries run (the one the e2e suite tests).
const MCP_REMOTE: &str = "mcp-remote@0.15.1";

/// The entry with the key in a header (the key in an env var, as Windows
/// needs no spaces in args).
pub fn header_form(url: &str, key: &str) -> serde_json::Value {
    serde_json::json!({
        "mcpServers": {
            "fleetmind": {
                "command": "npx",
                "args": ["-y", MCP_REMOTE, url, "--header", "Authorization:${FLEETMIND_AUTH}"],
                "env": { "FLEETMIND_AUTH": format!("Bearer {key}") }
            }
        }
    })
}

/// The entry with the key in the URL, for clients that cannot send headers.
pub fn query_form(url: &str, key: &str) -> serde_json::Value {
    serde_json::json!({
        "mcpServers": {
            "fleetmind": {
                "command": "npx",
                "args": ["-y", MCP_REMOTE, format!("{url}?api_key={key}")]
            }
        }
    })
}

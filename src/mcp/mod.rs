//! The MCP server: tools, resources and prompts, each call made as the
//! verified [`Caller`](crate::auth::Caller).

mod whoami;

use crate::store::Db;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool_handler};
use std::sync::Arc;

/// One instance per MCP connection (rmcp asks a factory for it); everything
/// in it is shared and cheap to clone. It holds no identity: the caller comes
/// with each request.
#[derive(Clone)]
pub struct FleetMind {
    #[allow(dead_code, reason = "the fleet tools read it")]
    pub(crate) db: Db,
    tool_router: Arc<ToolRouter<FleetMind>>,
}

impl FleetMind {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            tool_router: Arc::new(Self::all_tools()),
        }
    }

    /// Every tool of the server, built once.
    fn all_tools() -> ToolRouter<Self> {
        Self::whoami_router()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for FleetMind {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("fleetmind", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "FleetMind runs a delivery fleet: orders, drivers and their assignments. \
                 Every call acts on the data of the API key's owner only.",
            )
    }
}

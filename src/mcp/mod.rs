//! The MCP server: tools, resources and prompts, each call made as the
//! verified [`Caller`].

mod admin;
mod args;
mod error;
mod fleet;
mod guard;
mod json;
pub mod policy;
mod prompts;
mod routing;
mod usage;
mod whoami;

use crate::auth::{Caller, ClientAddr};
use crate::clock::Clock;
use crate::metrics::{self, Outcome};
use crate::routing::Routing;
use crate::store::Db;
use crate::usage::ToolUsage;
use error::ToolError;
pub use guard::{Caught, catch_panic, install_panic_hook};
use policy::Denied;
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::handler::server::tool::{ToolCallContext, schema_for_input};
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    Implementation, JsonObject, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ResultType,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, prompt_handler, tool_handler};
use std::sync::Arc;
use std::time::Instant;

/// One instance per MCP connection (rmcp asks a factory for it); everything
/// in it is shared and cheap to clone. It holds no identity: the caller comes
/// with each request.
#[derive(Clone)]
pub struct FleetMind {
    pub(crate) db: Db,
    pub(crate) routing: Arc<Routing>,
    /// The wall clock for key states, limits and usage hours.
    pub(crate) clock: Clock,
    /// Where every call is counted per key and tool (see `crate::usage`).
    usage: ToolUsage,
    /// The keys' limits, for `whoami`'s account of them.
    pub(crate) limits: Arc<crate::limits::gate::Limits>,
    tool_router: Arc<ToolRouter<FleetMind>>,
    prompt_router: Arc<PromptRouter<FleetMind>>,
}

impl FleetMind {
    /// The server with the embedded route estimate only.
    pub fn new(db: Db) -> Self {
        Self::with_routing(db, Arc::new(Routing::embedded()))
    }

    pub fn with_routing(db: Db, routing: Arc<Routing>) -> Self {
        Self {
            db,
            routing,
            clock: Clock::system(),
            usage: ToolUsage::new(),
            limits: Arc::new(crate::limits::gate::Limits::new(
                Clock::system(),
                None,
                ToolUsage::new(),
            )),
            tool_router: Arc::new(Self::all_tools()),
            prompt_router: Arc::new(Self::prompt_router()),
        }
    }

    /// The same server reading `clock` (a test's manual clock).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same server, counting calls into `usage` (the one the server's
    /// usage flusher writes).
    pub fn with_usage(mut self, usage: ToolUsage) -> Self {
        self.usage = usage;
        self
    }

    /// The same server, reporting the standing of callers in `limits`
    /// (the ones the auth layer enforces).
    pub fn with_limits(mut self, limits: Arc<crate::limits::gate::Limits>) -> Self {
        self.limits = limits;
        self
    }

    /// Every tool of the server, built once.
    fn all_tools() -> ToolRouter<Self> {
        Self::whoami_router()
            + Self::admin_router()
            + Self::orders_router()
            + Self::drivers_router()
            + Self::assignments_router()
            + Self::routing_router()
            + Self::usage_router()
    }

    /// The names of every tool the router serves (for tests of the policy table).
    pub fn tool_names() -> Vec<String> {
        Self::all_tools()
            .list_all()
            .into_iter()
            .map(|tool| tool.name.into_owned())
            .collect()
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for FleetMind {
    /// Runs the call (see `FleetMind::run_call`). Boxed: rmcp spawns a
    /// task per request whose future is as large as the largest handler's
    /// and copies it as it spawns it; unboxed, this one was the largest
    /// (3.2 of 5.8 KB). Boxing makes that task 1.5 KB smaller; callgrind
    /// counts far fewer bytes copied, though the wall clock did not move
    /// measurably (BENCHMARKS.md, issue 10 re-measured).
    fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, ErrorData>> + Send + '_ {
        Box::pin(self.run_call(request, context))
    }

    /// Lists only the tools this key may call.
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = Caller::of_request(&context)?;
        let tools = self
            .tool_router
            .list_all()
            .into_iter()
            .filter(|tool| policy::check(caller, &tool.name).is_ok())
            .collect();
        let cache_hints = context
            .protocol_version()
            .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28);
        Ok(ListToolsResult {
            result_type: Some(ResultType::COMPLETE),
            tools,
            meta: None,
            next_cursor: None,
            ttl_ms: cache_hints.then_some(0),
            // The list depends on the key: never share it between callers.
            cache_scope: cache_hints.then_some(CacheScope::Private),
        })
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        prompts::complete(&request)
    }

    /// The fleet resources this key may read.
    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let caller = Caller::of_request(&context)?;
        Ok(ListResourcesResult::with_all_items(
            self.fleet_resources(caller),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = Caller::of_request(&context)?;
        let read = guard::catch_panic(self.read_fleet_resource(caller, &request.uri));
        match read.await {
            Ok(contents) => Ok(contents?.into()),
            Err(caught) => Err(panicked("resources/read", caught)),
        }
    }

    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_prompts()
            .enable_completions()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("fleetmind", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "FleetMind runs a delivery fleet: orders, drivers and their assignments. \
                 Every call acts on the data of the API key's owner only.",
            )
    }
}

impl FleetMind {
    /// Runs the call (see `FleetMind::call_allowed_tool`), then writes its
    /// access line, counts it in the metrics and in the key's usage (a call
    /// refused for lack of scope too, as denied).
    async fn run_call(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let started = Instant::now();
        // An Arc clone: the borrow of `context` cannot outlive the move below.
        let caller = Caller::of_request(&context)?.clone();
        let client = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<ClientAddr>())
            .copied();
        let tool = metrics::tool_label(&request.name);
        let (outcome, answer) = self.call_allowed_tool(&caller, request, context).await;
        let elapsed = started.elapsed();
        metrics::tool_call(tool, outcome, elapsed);
        self.usage.record(caller.key_id, tool, outcome, elapsed);
        crate::logging::access::tool_call(&caller, tool, outcome, elapsed, client);
        answer
    }

    /// Refuses a tool the key's scopes do not allow, as a tool error that
    /// names the missing scope; otherwise runs it.
    async fn call_allowed_tool(
        &self,
        caller: &Caller,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> (Outcome, Result<CallToolResponse, ErrorData>) {
        match policy::check(caller, &request.name) {
            Ok(()) => {}
            Err(Denied::UnknownTool) => {
                let error = ErrorData::invalid_params(
                    format!("unknown tool '{}'", truncate(&request.name)),
                    None,
                );
                return (Outcome::Error, Err(error));
            }
            Err(Denied::MissingScope(scope)) => {
                self.record_denial(caller, &request.name, scope).await;
                let denied = ToolError::Refused(format!(
                    "permission denied: the tool '{}' needs the '{scope}' scope, which this API key does not have",
                    request.name
                ))
                .into_call_tool_result();
                return (Outcome::Denied, denied);
            }
        }
        let tool = truncate(&request.name);
        let tcc = ToolCallContext::new(self, request, context);
        let answer = guard::catch_panic(self.tool_router.call(tcc))
            .await
            .unwrap_or_else(|caught| Err(panicked(&tool, caught)));
        let outcome = match &answer {
            Ok(CallToolResponse::Complete(result)) if result.is_error == Some(true) => {
                Outcome::Error
            }
            Ok(_) => Outcome::Ok,
            Err(_) => Outcome::Error,
        };
        (outcome, answer)
    }
}

/// The answer to a call whose handler panicked: an internal error with no
/// detail for the caller, and one ERROR line for the operator.
fn panicked(handler: &str, caught: guard::Caught) -> ErrorData {
    tracing::error!(
        tool = handler,
        at = caught.location.as_deref().unwrap_or("?"),
        message = %caught.message,
        "the tool panicked; the call was answered with an internal error"
    );
    ErrorData::internal_error("internal error: the call failed unexpectedly", None)
}

/// The input schema of a tool, from a type that only describes its
/// arguments: each tool parses them itself, so that every mistake names
/// its field.
///
/// The schema is a pure function of the type (rmcp caches it per type), so
/// a bad one fails the same way on every call: the tool list fails with it,
/// which every test of `tools/list` would show. It cannot turn up first on a
/// request path in a build that passed the tests, hence the panic, the same
/// one rmcp's `#[tool]` macro writes for a tool's parameter type.
#[allow(clippy::panic)]
fn input_schema<T: rmcp::schemars::JsonSchema + 'static>() -> Arc<JsonObject> {
    schema_for_input::<T>().unwrap_or_else(|e| {
        panic!(
            "invalid input schema for {}: {e}",
            std::any::type_name::<T>()
        )
    })
}

/// At most 64 characters of `s`, for echoing untrusted names in errors.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

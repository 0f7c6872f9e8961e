//! The command line: `serve` (the default), `migrate`, and `keys …`.
//! Every flag can also be set by an environment variable.

use crate::app::{self, ServeOptions};
use crate::auth::TrustedProxies;
use crate::edge::EdgeOptions;
use crate::key_admin::{self, CreateKey, IssuedKey};
use crate::scopes::Scopes;
use crate::store::{self, Db, KeyRecord, KeyState, PoolOptions, RevokeTarget};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// FleetMind MCP: a delivery-fleet MCP server for many customers at once.
#[derive(Debug, Parser)]
#[command(name = "fleetmind", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// `serve`'s flags, for when no command is given.
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Where the data lives: sqlite://PATH (embedded, created on first start)
    /// or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://fleetmind.db",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,
    /// Largest number of database connections this process opens.
    #[arg(
        long,
        env = "FLEETMIND_DB_MAX_CONNECTIONS",
        default_value_t = 8,
        global = true
    )]
    pub db_max_connections: u32,
    /// Longest a database call may take, in seconds, waiting for a
    /// connection included; past it the request is answered "unavailable,
    /// retry" (503 with Retry-After for a key check) instead of waiting.
    #[arg(
        long,
        env = "FLEETMIND_DB_TIMEOUT_SECS",
        default_value_t = 5,
        global = true,
        value_parser = clap::value_parser!(u64).range(1..=300)
    )]
    pub db_timeout_secs: u64,
    /// Log filter (tracing syntax), e.g. `info` or `fleetmind=debug`. Whatever
    /// it says, rmcp never logs below warn (it would print whole messages, keys
    /// included); see `src/logging.rs`.
    #[arg(
        long,
        env = "FLEETMIND_LOG",
        default_value = "info,rmcp=warn,sqlx=warn",
        global = true
    )]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over streamable HTTP (the default command).
    Serve(ServeArgs),
    /// Create or update the database schema, then exit.
    Migrate,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FLEETMIND_BIND", default_value = "127.0.0.1:8787")]
    pub bind: SocketAddr,
    /// Host names accepted in the Host header, comma-separated (default:
    /// localhost, 127.0.0.1, ::1). Set this for a public deployment.
    #[arg(long, env = "FLEETMIND_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted, comma-separated, e.g. `https://app.example.com:443`.
    #[arg(long, env = "FLEETMIND_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Seconds between writes of keys' last_used_at.
    #[arg(long, env = "FLEETMIND_USAGE_FLUSH_SECS", default_value_t = 60)]
    pub usage_flush_secs: u64,
    /// The URL clients use, for the setup lines printed on first start
    /// (default: derived from --bind).
    #[arg(long, env = "FLEETMIND_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Reverse proxies (addresses, or CIDR networks holding only proxies;
    /// comma-separated, e.g. 127.0.0.1,10.0.4.17,::1) whose X-Forwarded-For
    /// names the client for the limit on unknown keys. Default: none (the
    /// header is ignored).
    #[arg(
        long,
        env = "FLEETMIND_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "ADDR[/BITS]"
    )]
    pub trusted_proxies: Vec<String>,
    /// Seconds a connection has to send a complete request head; a new
    /// connection that sends nothing is closed after it too.
    #[arg(long, env = "FLEETMIND_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,
    /// Seconds an idle keep-alive connection stays open.
    #[arg(long, env = "FLEETMIND_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,
    /// Seconds a request may take; a longer one is stopped and answered 503.
    #[arg(long, env = "FLEETMIND_REQUEST_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,
    /// Most connections open at once; more are closed at once (default:
    /// the open-file limit, raised to its hard limit at start, minus room
    /// for the database and files).
    #[arg(long, env = "FLEETMIND_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key; it is printed once and never again.
    Create {
        /// The owner's email; keys of one email share one user id (tenant).
        #[arg(long)]
        email: String,
        /// A label for the key.
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated scopes (default: orders:read, orders:write,
        /// drivers:read, drivers:write, assignments:manage).
        #[arg(long)]
        scopes: Option<String>,
        /// Give the key the admin scope (implies every scope).
        #[arg(long)]
        admin: bool,
        /// Make the key stop working after this many days.
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the keys themselves).
    List {
        /// Only the keys of this email.
        #[arg(long)]
        email: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one key, or every key of an email.
    Revoke {
        #[arg(long, conflicts_with = "email", required_unless_present = "email")]
        key_id: Option<i64>,
        #[arg(long)]
        email: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a successor key; the old one works until the grace period ends.
    Rotate {
        #[arg(long)]
        key_id: i64,
        #[arg(long, default_value_t = 60)]
        grace_minutes: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A failure of a command, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Key(#[from] key_admin::KeyAdminError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let pool = PoolOptions {
        max_connections: cli.global.db_max_connections,
        query_timeout: Duration::from_secs(cli.global.db_timeout_secs),
        ..PoolOptions::default()
    };
    match cli.command {
        None => serve(&cli.global, &pool, cli.serve).await,
        Some(Command::Serve(args)) => serve(&cli.global, &pool, args).await,
        Some(Command::Migrate) => {
            store::open(&cli.global.database_url, &pool).await?;
            println!("database schema is up to date");
            Ok(())
        }
        Some(Command::Keys(cmd)) => {
            let db = store::open(&cli.global.database_url, &pool).await?;
            keys(&db, cmd).await
        }
    }
}

async fn serve(global: &GlobalArgs, pool: &PoolOptions, args: ServeArgs) -> Result<(), CliError> {
    // Before anything is opened or printed: a bad entry changes nothing.
    let trusted_proxies = TrustedProxies::parse(&args.trusted_proxies).map_err(|err| {
        CliError::Usage(format!(
            "--trusted-proxies (FLEETMIND_TRUSTED_PROXIES): {err}"
        ))
    })?;
    let db = store::open(&global.database_url, pool).await?;
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    let addr = listener.local_addr()?;
    let url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/mcp", client_addr(addr)));
    if let Some(issued) = key_admin::bootstrap_admin_key(db.as_ref()).await? {
        print_first_key(&issued, &url);
    }
    let options = ServeOptions {
        allowed_hosts: args.allowed_hosts,
        allowed_origins: args.allowed_origins,
        usage_flush_interval: Duration::from_secs(args.usage_flush_secs.max(1)),
        trusted_proxies,
        edge: EdgeOptions {
            header_timeout: Duration::from_secs(args.header_timeout_secs),
            idle_timeout: Duration::from_secs(args.idle_timeout_secs),
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            max_connections: args
                .max_connections
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            db_connections: global.db_max_connections,
        },
        ..ServeOptions::default()
    };
    if !options.trusted_proxies.is_empty() {
        tracing::info!(
            trusted_proxies = %options.trusted_proxies,
            "X-Forwarded-For names the client when the peer is one of these"
        );
        if options.trusted_proxies.trusts_a_whole_family() {
            tracing::warn!(
                "a trusted proxy network is /0: any client can choose the address its \
                 failed key lookups are counted against"
            );
        }
    }
    let shutdown = CancellationToken::new();
    let server = app::start(listener, db, &options, shutdown.clone())?;
    let signal = shutdown_signal();
    println!("FleetMind MCP listening on {url}");
    tracing::info!(
        %addr,
        max_connections = server.max_connections,
        header_timeout_secs = args.header_timeout_secs,
        idle_timeout_secs = args.idle_timeout_secs,
        request_timeout_secs = args.request_timeout_secs,
        "serving"
    );
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    server.wait().await?;
    Ok(())
}

/// An address a local client can dial: a wildcard bind becomes loopback.
fn client_addr(addr: SocketAddr) -> SocketAddr {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// Installs the SIGTERM/Ctrl-C handlers now (so a signal that arrives right
/// after start-up is not fatal) and returns a future that resolves on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}

/// The Claude Desktop entry for a key, in the header form (the key in an
/// env var, as Windows needs no spaces in args).
pub fn claude_desktop_config(url: &str, key: &str) -> serde_json::Value {
    serde_json::json!({
        "mcpServers": {
            "fleetmind": {
                "command": "npx",
                "args": ["-y", "mcp-remote@0.15.1", url, "--header", "Authorization:${FLEETMIND_AUTH}"],
                "env": { "FLEETMIND_AUTH": format!("Bearer {key}") }
            }
        }
    })
}

fn print_first_key(issued: &IssuedKey, url: &str) {
    let key = issued.api_key.expose();
    let config = serde_json::to_string_pretty(&claude_desktop_config(url, key)).unwrap_or_default();
    println!(
        "\nFleetMind: this database had no API key, so an admin key was created.\n\
         It is shown only this once; store it now:\n\n    {key}\n\n\
         user_id: {}   key_id: {}   scopes: {}\n\n\
         To use it from Claude Desktop, put this in claude_desktop_config.json:\n\n{config}\n\n\
         Give other people their own keys: fleetmind keys create --email them@example.com\n",
        issued.record.user_id, issued.record.key_id, issued.record.scopes
    );
}

async fn keys(db: &Db, cmd: KeysCommand) -> Result<(), CliError> {
    match cmd {
        KeysCommand::Create {
            email,
            name,
            scopes,
            admin,
            expires_in_days,
            json,
        } => {
            let mut scopes = scopes
                .map(|s| Scopes::parse_list(&s))
                .transpose()
                .map_err(|e| CliError::Usage(e.to_string()))?;
            if admin {
                let mut with_admin = scopes.unwrap_or_default();
                with_admin.insert(crate::scopes::Scope::Admin);
                scopes = Some(with_admin);
            }
            let issued = key_admin::create_key(
                db.as_ref(),
                CreateKey {
                    email,
                    name,
                    scopes,
                    expires_in_days,
                    created_by: "cli".into(),
                    issuer_scopes: None,
                },
            )
            .await?;
            print_issued(&issued, json, "created");
        }
        KeysCommand::List { email, json } => {
            let keys = db.list_keys(email.as_deref()).await?;
            if json {
                let rows: Vec<_> = keys.iter().map(key_json).collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                print_key_table(&keys);
            }
        }
        KeysCommand::Revoke {
            key_id,
            email,
            json,
        } => {
            let target = match (key_id, email) {
                (Some(id), _) => RevokeTarget::KeyId(id),
                (None, Some(email)) => RevokeTarget::Email(email),
                (None, None) => return Err(CliError::Usage("give --key-id or --email".into())),
            };
            let revoked = key_admin::revoke(db.as_ref(), target, "cli").await?;
            if json {
                let rows: Vec<_> = revoked.iter().map(key_json).collect();
                println!("{}", serde_json::json!({ "revoked": rows }));
            } else if revoked.is_empty() {
                println!("no active key matched; nothing was revoked");
            } else {
                for key in &revoked {
                    println!(
                        "revoked key {} ({}…) of {}",
                        key.key_id, key.prefix, key.user_id
                    );
                }
            }
        }
        KeysCommand::Rotate {
            key_id,
            grace_minutes,
            json,
        } => {
            let issued =
                key_admin::rotate_key(db.as_ref(), key_id, grace_minutes, "cli".into(), None)
                    .await?;
            print_issued(&issued, json, "rotated");
            if !json {
                println!("the old key {key_id} keeps working for {grace_minutes} more minutes");
            }
        }
    }
    Ok(())
}

fn print_issued(issued: &IssuedKey, json: bool, verb: &str) {
    if json {
        println!("{}", issued.to_json());
        return;
    }
    println!(
        "{verb} key {} for {} (user_id {})\nscopes: {}\nexpires: {}\n\n    {}\n\n\
         Store this key now: it is not shown again.",
        issued.record.key_id,
        issued.record.email,
        issued.record.user_id,
        issued.record.scopes,
        issued
            .record
            .expires_at
            .map(|at| at.to_rfc3339())
            .unwrap_or_else(|| "never".into()),
        issued.api_key.expose(),
    );
}

fn key_json(key: &KeyRecord) -> serde_json::Value {
    serde_json::json!({
        "key_id": key.key_id,
        "user_id": key.user_id,
        "email": key.email,
        "name": key.name,
        "key_prefix": key.prefix,
        "scopes": key.scopes,
        "state": key.state(chrono::Utc::now()),
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
    })
}

fn print_key_table(keys: &[KeyRecord]) {
    if keys.is_empty() {
        println!("no keys");
        return;
    }
    let now = chrono::Utc::now();
    println!(
        "{:>6}  {:<18}  {:<13}  {:<8}  {:<20}  {:<20}  SCOPES",
        "KEY_ID", "USER_ID", "PREFIX", "STATE", "LAST_USED", "EXPIRES"
    );
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into())
    };
    for key in keys {
        let state = match key.state(now) {
            KeyState::Active => "active",
            KeyState::Revoked => "revoked",
            KeyState::Expired => "expired",
        };
        println!(
            "{:>6}  {:<18}  {:<13}  {:<8}  {:<20}  {:<20}  {}",
            key.key_id,
            key.user_id,
            key.prefix,
            state,
            when(key.last_used_at),
            when(key.expires_at),
            key.scopes
        );
    }
}

//! The command line: `serve` (the default), `migrate`, and `keys …`, one
//! file per subcommand. Every flag can also be set by an environment
//! variable.

mod database;
mod first_key;
mod keys;
mod migrate;
mod serve;
mod usage;

pub use keys::KeysCommand;
pub use serve::ServeArgs;

use crate::key_admin;
use crate::logging::LogFormat;
use crate::store::{self, PoolOptions};
use clap::{Args, Parser, Subcommand};
use std::time::Duration;

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
    /// Where the data lives: sqlite://PATH (embedded; `serve` and `migrate`
    /// create it, `keys` commands need it to exist) or postgres://USER@HOST/DB.
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
    /// included); see `src/logging/mod.rs`.
    #[arg(
        long,
        env = "FLEETMIND_LOG",
        default_value = "info,rmcp=warn,sqlx=warn",
        global = true
    )]
    pub log: String,
    /// How log lines are written to stderr: `text` (one readable line per
    /// event) or `json` (one JSON object per line). Colours only when stderr
    /// is a terminal and NO_COLOR is unset.
    #[arg(
        long,
        env = "FLEETMIND_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over streamable HTTP (the default command).
    // Boxed: serve's flags outweigh the other commands' many times.
    Serve(Box<ServeArgs>),
    /// Create or update the database schema, then exit.
    Migrate,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// A failure of a command, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// With the driver's cause: it is the operator who reads it.
    #[error("{}", database::cause(.0, ""))]
    Store(#[from] store::StoreError),
    #[error("{}", database::cause(.0, ""))]
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
        None => serve::run(&cli.global, &pool, cli.serve).await,
        Some(Command::Serve(args)) => serve::run(&cli.global, &pool, *args).await,
        Some(Command::Migrate) => migrate::run(&cli.global, &pool).await,
        Some(Command::Keys(cmd)) => keys::run(&cli.global, &pool, cmd).await,
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every flag and argument of every command says what it is for.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        let cli = Cli::command();
        walk(&cli, "fleetmind", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:?}");
        cli.debug_assert();
    }
}

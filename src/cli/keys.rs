//! `fleetmind keys …`: issue, list, revoke and rotate keys from the shell.

use super::{CliError, GlobalArgs};
use crate::key_admin::{self, CreateKey, IssuedKey};
use crate::scopes::Scopes;
use crate::store::{self, Db, KeyRecord, KeyState, PoolOptions, RevokeTarget};
use clap::Subcommand;

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

pub(super) async fn run(
    global: &GlobalArgs,
    pool: &PoolOptions,
    cmd: KeysCommand,
) -> Result<(), CliError> {
    let db = store::open(&global.database_url, pool).await?;
    keys(&db, cmd).await
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

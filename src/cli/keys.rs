//! `fleetmind keys …`: issue, list, revoke and rotate keys from the shell.

use super::database::{self, Missing};
use super::{CliError, GlobalArgs};
use crate::clock::Clock;
use crate::key_admin::{self, CreateKey, IssuedKey};
use crate::limits::{self, AllowedIps, KeyLimits, LimitsChange};
use crate::scopes::Scopes;
use crate::store::{Db, KeyRecord, KeyState, PoolOptions, RevokeTarget};
use chrono::{DateTime, Utc};
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
        /// drivers:read, drivers:write, assignments:manage, routing:use).
        #[arg(long)]
        scopes: Option<String>,
        /// Give the key the admin scope (implies every scope).
        #[arg(long)]
        admin: bool,
        /// Make the key stop working after this many days.
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        limits: CreateLimits,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one key (never the key itself), with its limits and this
    /// month's quota use.
    Show {
        /// The key (its KEY_ID in `keys list`).
        #[arg(long)]
        key_id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a key's rate limit, monthly quota or allowed addresses
    /// (`none` removes one); prints what changed, before → after.
    #[command(group = clap::ArgGroup::new("limit").required(true).multiple(true))]
    Limits {
        /// The key (its KEY_ID in `keys list`).
        #[arg(long)]
        key_id: i64,
        /// Tool calls allowed in any minute, or none.
        #[arg(long, group = "limit", value_name = "N|none", value_parser = rate_or_none)]
        rate_limit_per_minute: Option<OrNone<u32>>,
        /// Tool-call units allowed per calendar month (UTC), or none.
        #[arg(long, group = "limit", value_name = "N|none", value_parser = quota_or_none)]
        monthly_quota: Option<OrNone<u64>>,
        /// Addresses or CIDR networks the key may be used from
        /// (10.0.0.0/8,192.0.2.7), or none.
        #[arg(long, group = "limit", value_name = "LIST|none", value_parser = ips_or_none)]
        allowed_ips: Option<OrNone<AllowedIps>>,
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
    /// Revoke one key, or every active key of an email.
    #[command(group = clap::ArgGroup::new("target").required(true))]
    Revoke {
        /// The key to revoke (its KEY_ID in `keys list`).
        #[arg(long, group = "target")]
        key_id: Option<i64>,
        /// Revoke every active key of this email.
        #[arg(long, group = "target")]
        email: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a successor key; the old one works until the grace period ends.
    Rotate {
        /// The key to replace (its KEY_ID in `keys list`).
        #[arg(long)]
        key_id: i64,
        /// How long the old key keeps working, in minutes (0 ends it now).
        #[arg(long, default_value_t = 60)]
        grace_minutes: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Per-key, per-tool usage by hour (calls, errors, denied, mean, p95).
    Usage(super::usage::UsageArgs),
}

/// The limits `keys create` takes (none by default).
#[derive(Debug, clap::Args)]
pub struct CreateLimits {
    /// At most this many tool calls in any minute.
    #[arg(long, value_name = "N", value_parser = rate_or_none)]
    rate_limit_per_minute: Option<OrNone<u32>>,
    /// At most this many tool-call units per calendar month (UTC).
    #[arg(long, value_name = "N", value_parser = quota_or_none)]
    monthly_quota: Option<OrNone<u64>>,
    /// Only from these addresses or CIDR networks (10.0.0.0/8,192.0.2.7).
    #[arg(long, value_name = "LIST", value_parser = ips_or_none)]
    allowed_ips: Option<OrNone<AllowedIps>>,
}

impl CreateLimits {
    fn limits(self) -> KeyLimits {
        KeyLimits {
            rate_limit_per_minute: self.rate_limit_per_minute.and_then(|v| v.0),
            monthly_quota: self.monthly_quota.and_then(|v| v.0),
            allowed_ips: self.allowed_ips.and_then(|v| v.0),
        }
    }
}

/// A limit given on the command line: a value, or `none` for no limit.
#[derive(Debug, Clone)]
pub struct OrNone<T>(Option<T>);

// clap's value parsers: the message is the limit's own (it names the field
// and the value).
fn rate_or_none(text: &str) -> Result<OrNone<u32>, String> {
    limits::rate_limit_arg(text)
        .map(OrNone)
        .map_err(|e| e.to_string())
}

fn quota_or_none(text: &str) -> Result<OrNone<u64>, String> {
    limits::monthly_quota_arg(text)
        .map(OrNone)
        .map_err(|e| e.to_string())
}

fn ips_or_none(text: &str) -> Result<OrNone<AllowedIps>, String> {
    limits::allowed_ips_arg(text)
        .map(OrNone)
        .map_err(|e| e.to_string())
}

pub(super) async fn run(
    global: &GlobalArgs,
    pool: &PoolOptions,
    cmd: KeysCommand,
) -> Result<(), CliError> {
    let db = database::open(&global.database_url, pool, Missing::Refuse).await?;
    // Said on stderr, so that `--json` output stays one document: a key
    // made in the wrong database is a key no server accepts.
    eprintln!("database: {}", database::shown(&global.database_url));
    keys(&db, cmd).await
}

async fn keys(db: &Db, cmd: KeysCommand) -> Result<(), CliError> {
    // One reading of the system clock for the whole command.
    let now = Clock::system().now();
    match cmd {
        KeysCommand::Usage(args) => super::usage::run(db, args, now).await?,
        KeysCommand::Create {
            email,
            name,
            scopes,
            admin,
            expires_in_days,
            limits,
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
                    limits: limits.limits(),
                },
                now,
            )
            .await?;
            print_issued(&issued, json, "created");
        }
        KeysCommand::Show { key_id, json } => {
            let Some(key) = db.key_by_id(key_id).await? else {
                return Err(CliError::Usage(format!("no key has id {key_id}")));
            };
            let used = db
                .limit_count(key_id, limits::quota::month_of(now))
                .await?
                .map_or(0, |count| count.units.max(0));
            if json {
                let mut row = key_json(&key, now);
                row["units_used_this_month"] = used.into();
                println!("{row}");
            } else {
                print_key_table(std::slice::from_ref(&key), now);
                let quota = key
                    .limits
                    .monthly_quota
                    .map(|q| format!(" of {q}"))
                    .unwrap_or_default();
                println!(
                    "limits: {}\nunits used this month (UTC): {used}{quota}",
                    key.limits
                );
            }
        }
        KeysCommand::Limits {
            key_id,
            rate_limit_per_minute,
            monthly_quota,
            allowed_ips,
            json,
        } => {
            let change = LimitsChange {
                rate_limit_per_minute: rate_limit_per_minute.map(|v| v.0),
                monthly_quota: monthly_quota.map(|v| v.0),
                allowed_ips: allowed_ips.map(|v| v.0),
            };
            let update = key_admin::set_limits(db.as_ref(), key_id, &change, "cli", now).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "key_id": key_id,
                        "changed": update.set.changed(),
                        "before": update.set.before.limits,
                        "after": update.set.after.limits,
                        "units_used_this_month": update.used_this_month,
                        "exhausted": update.exhausted(),
                        "message": update.summary(),
                    })
                );
            } else {
                println!("{}", update.summary());
            }
        }
        KeysCommand::List { email, json } => {
            let keys = db.list_keys(email.as_deref()).await?;
            if json {
                let rows: Vec<_> = keys.iter().map(|key| key_json(key, now)).collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                print_key_table(&keys, now);
            }
        }
        KeysCommand::Revoke {
            key_id,
            email,
            json,
        } => {
            let (target, asked) = match (key_id, email) {
                (Some(id), _) => (RevokeTarget::KeyId(id), format!("--key-id {id}")),
                (None, Some(email)) => (RevokeTarget::Email(email), "--email".to_owned()),
                (None, None) => {
                    return Err(CliError::Usage(
                        "give --key-id KEY_ID or --email EMAIL".into(),
                    ));
                }
            };
            let revoked = key_admin::revoke(db.as_ref(), target, "cli", now).await?;
            if json {
                let rows: Vec<_> = revoked.iter().map(|key| key_json(key, now)).collect();
                println!("{}", serde_json::json!({ "revoked": rows }));
            } else {
                for key in &revoked {
                    println!(
                        "revoked key {} ({}…) of {}",
                        key.key_id, key.key_prefix, key.user_id
                    );
                }
            }
            if revoked.is_empty() {
                // A typo in a key id must not look like a done revocation.
                return Err(CliError::Usage(format!(
                    "no active key matched {asked}; nothing was revoked"
                )));
            }
        }
        KeysCommand::Rotate {
            key_id,
            grace_minutes,
            json,
        } => {
            let issued =
                key_admin::rotate_key(db.as_ref(), key_id, grace_minutes, "cli".into(), None, now)
                    .await?;
            if json {
                print_issued(&issued, true, "");
                return Ok(());
            }
            // What was stored, not what was asked: an old key that expires
            // sooner keeps its own end.
            let until = db
                .key_by_id(key_id)
                .await?
                .and_then(|old| old.expires_at)
                .map(|at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "the end of its grace period".into());
            println!(
                "rotated key {key_id} \u{2192} new key {}; key {key_id} keeps working until {until}",
                issued.record.key_id
            );
            print_issued(&issued, false, "new");
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

/// A key as `--json` shows it; `now` says whether it is active.
fn key_json(key: &KeyRecord, now: DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({
        "key_id": key.key_id,
        "user_id": key.user_id,
        "email": key.email,
        "name": key.name,
        "key_prefix": key.key_prefix,
        "scopes": key.scopes,
        "state": key.state(now),
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "limits": key.limits,
    })
}

/// The table of `keys list`: one row per key, columns as wide as their
/// widest cell, times in UTC; `now` says which keys are active.
fn print_key_table(keys: &[KeyRecord], now: DateTime<Utc>) {
    if keys.is_empty() {
        println!("no keys");
        return;
    }
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let mut rows = vec![
        [
            "KEY_ID",
            "EMAIL",
            "NAME",
            "PREFIX",
            "STATE",
            "CREATED",
            "LAST_USED",
            "EXPIRES",
            "LIMITS",
            "SCOPES",
        ]
        .map(String::from),
    ];
    for key in keys {
        let state = match key.state(now) {
            KeyState::Active => "active",
            KeyState::Revoked => "revoked",
            KeyState::Expired => "expired",
        };
        rows.push([
            key.key_id.to_string(),
            printable(&key.email),
            key.name
                .as_deref()
                .map(printable)
                .unwrap_or_else(|| "-".into()),
            key.key_prefix.clone(),
            state.to_owned(),
            when(key.created_at),
            when(key.last_used_at),
            when(key.expires_at),
            limits_cell(&key.limits),
            key.scopes.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        println!("{line}");
    }
    println!("(times in UTC)");
}

/// The LIMITS cell: `600/min,1000/month,ips 10.0.0.0/8`, or `-`.
fn limits_cell(limits: &KeyLimits) -> String {
    let mut parts = Vec::new();
    if let Some(rate) = limits.rate_limit_per_minute {
        parts.push(format!("{rate}/min"));
    }
    if let Some(quota) = limits.monthly_quota {
        parts.push(format!("{quota}/month"));
    }
    if let Some(ips) = &limits.allowed_ips {
        parts.push(format!("ips {ips}"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

/// A cell as one short line: rows written by older servers may hold
/// anything, so control characters become `?` and a long name is cut.
fn printable(text: &str) -> String {
    const MAX: usize = 32;
    let mut cell: String = text
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > MAX {
        cell.push('…');
    }
    cell
}

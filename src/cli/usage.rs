//! `fleetmind keys usage`: the per-key, per-tool hourly usage rollup (issue
//! 13), as a table or, with `--json`, an array of rows (`key_id`, `tool`,
//! `hour`, `calls`, `errors`, `denied`, `mean_ms`, `p95_ms`).

use super::CliError;
use crate::keys;
use crate::store::Db;
use crate::store::usage::UsageFilter;
use crate::usage::report::{self, DEFAULT_SINCE, MAX_ROWS, UsageView};
use chrono::{DateTime, Utc};
use clap::Args;

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Only this key (its KEY_ID in `keys list`).
    #[arg(long, conflicts_with = "email")]
    key_id: Option<i64>,
    /// Only the keys of this email.
    #[arg(long)]
    email: Option<String>,
    /// How far back: a whole number of hours or days, like 24h or 7d (the
    /// current hour counts as the first).
    #[arg(long, default_value = DEFAULT_SINCE)]
    since: String,
    /// Print JSON: an array of rows.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(db: &Db, args: UsageArgs, now: DateTime<Utc>) -> Result<(), CliError> {
    if let Some(id) = args.key_id
        && id < 1
    {
        return Err(CliError::Usage(format!(
            "--key-id must be a positive key id (got {id})"
        )));
    }
    let email = match &args.email {
        Some(email) => {
            keys::validate_email(email).map_err(|e| CliError::Usage(format!("--email: {e}")))?;
            Some(keys::normalize_email(email))
        }
        None => None,
    };
    let since_hour =
        report::since_hour(&args.since, now).map_err(|e| CliError::Usage(format!("--{e}")))?;
    let filter = UsageFilter {
        key_id: args.key_id,
        email,
        since_hour,
        limit: MAX_ROWS,
    };
    let rows: Vec<UsageView> = db
        .tool_usage(&filter)
        .await?
        .iter()
        .map(UsageView::of)
        .collect();
    if args.json {
        let json = serde_json::to_string(&rows)
            .map_err(|e| CliError::Usage(format!("cannot write JSON: {e}")))?;
        println!("{json}");
    } else {
        print_table(&rows);
    }
    Ok(())
}

/// One line per key, tool and hour, newest hour first.
fn print_table(rows: &[UsageView]) {
    if rows.is_empty() {
        println!("no usage in this period (usage is written every --usage-flush-secs)");
        return;
    }
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    let tool_width = rows.iter().map(|r| r.tool.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<20}  {:>8}  {:<tool_width$}  {:>8}  {:>7}  {:>7}  {:>10}  {:>10}",
        "HOUR", "KEY_ID", "TOOL", "CALLS", "ERRORS", "DENIED", "MEAN_MS", "P95_MS"
    );
    for r in rows {
        println!(
            "{:<20}  {:>8}  {:<tool_width$}  {:>8}  {:>7}  {:>7}  {:>10}  {:>10}",
            r.hour,
            r.key_id,
            r.tool,
            r.calls,
            r.errors,
            r.denied,
            ms(r.mean_ms),
            ms(r.p95_ms)
        );
    }
    println!("(hours in UTC; p95 is the upper bound of its histogram bucket)");
}

//! The first admin key, issued by `serve` on a database without keys: printed
//! once with the lines to paste, or written to a new file that only its
//! owner may read (`--bootstrap-key-file`), so that it never reaches
//! journald or a container log.

use super::{CliError, database};
use crate::key_admin::{self, IssuedKey};
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::io::Write;
use std::path::Path;

/// Issues the first admin key (`now`) if the database has none, and hands it
/// to the operator: into `file` when given, else on stdout.
pub(super) async fn bootstrap(
    db: &dyn Store,
    file: Option<&Path>,
    url: &str,
    database_url: &str,
    now: DateTime<Utc>,
) -> Result<(), CliError> {
    let Some(path) = file else {
        if let Some(issued) = key_admin::bootstrap_admin_key(db, now).await? {
            print_first_key(&issued, url, database_url, None);
        }
        return Ok(());
    };
    if db.count_keys().await? > 0 {
        return Ok(());
    }
    // The file first: if it cannot be made, no key exists that nobody holds.
    let mut out = create_private(path)?;
    let Some(issued) = key_admin::bootstrap_admin_key(db, now).await? else {
        // Another replica issued it between the count and the insert.
        drop(out);
        let _ = std::fs::remove_file(path);
        return Ok(());
    };
    let written = writeln!(out, "{}", issued.api_key.expose()).and_then(|()| out.sync_all());
    written.map_err(|err| {
        CliError::Usage(format!(
            "the first admin key (key_id {}) could not be written to {}: {err}; revoke it with \
             `fleetmind keys revoke --key-id {}` and create another with `fleetmind keys \
             create --admin`",
            issued.record.key_id,
            path.display(),
            issued.record.key_id
        ))
    })?;
    print_first_key(&issued, url, database_url, Some(path));
    Ok(())
}

/// A new file, readable and writable by its owner only; an existing file is
/// an error, never overwritten.
fn create_private(path: &Path) -> Result<std::fs::File, CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|err| {
        let why = if err.kind() == std::io::ErrorKind::AlreadyExists {
            "it already exists, and is never overwritten; move it away or name a new file"
                .to_owned()
        } else {
            err.to_string()
        };
        CliError::Usage(format!(
            "--bootstrap-key-file (FLEETMIND_BOOTSTRAP_KEY_FILE) {}: {why}",
            path.display()
        ))
    })
}

fn print_first_key(issued: &IssuedKey, url: &str, database_url: &str, file: Option<&Path>) {
    let (where_, key) = match file {
        Some(path) => (
            format!(
                "It was written to {} (readable by this user only), not printed.",
                path.display()
            ),
            "fm_your_key_here",
        ),
        None => (
            format!(
                "It is shown only this once; store it now:\n\n    {}",
                issued.api_key.expose()
            ),
            issued.api_key.expose(),
        ),
    };
    let config = serde_json::to_string_pretty(&crate::desktop_config::header_form(url, key))
        .unwrap_or_default();
    println!(
        "\nFleetMind: this database had no API key, so an admin key was created.\n\
         {where_}\n\n\
         user_id: {}   key_id: {}   scopes: {}\n\n\
         To use it from Claude Desktop, put this in claude_desktop_config.json:\n\n{config}\n\n\
         Give other people their own keys:\n\n    {} keys create --database-url {} --email them@example.com\n",
        issued.record.user_id,
        issued.record.key_id,
        issued.record.scopes,
        this_program(),
        pasteable_database(database_url),
    );
}

/// This program as a shell runs it: `fleetmind` when it was found on the
/// PATH, else its absolute path (so the line works from any directory).
fn this_program() -> String {
    let invoked = std::env::args_os().next().unwrap_or_default();
    let path = Path::new(&invoked);
    if path.components().count() == 1 && !invoked.is_empty() {
        return shell_word(&invoked.to_string_lossy());
    }
    let absolute = std::env::current_exe().unwrap_or_else(|_| path.to_owned());
    shell_word(&absolute.to_string_lossy())
}

/// The database for a pasted command: the absolute SQLite file, or the URL;
/// a URL with a password is left to `$DATABASE_URL` (never printed).
fn pasteable_database(url: &str) -> String {
    let shown = database::shown(url);
    if shown.contains(":***@") || shown.contains("password=***") {
        "\"$DATABASE_URL\"".to_owned()
    } else {
        shell_word(&shown)
    }
}

/// A word the shell reads back as itself.
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-:@%+=,".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_the_shell_needs_it() {
        assert_eq!(shell_word("/usr/bin/fleetmind"), "/usr/bin/fleetmind");
        assert_eq!(shell_word("/tmp/my dir/fm"), "'/tmp/my dir/fm'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(
            pasteable_database("postgres://fm:pw@db/fleet"),
            "\"$DATABASE_URL\""
        );
        assert_eq!(
            pasteable_database("postgres://fm@db/fleet?sslmode=require"),
            "'postgres://fm@db/fleet?sslmode=require'"
        );
    }
}

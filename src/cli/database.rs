//! Which database a command uses, and what to tell the operator when it
//! cannot be opened: the driver's cause (the database that does not exist,
//! the address that refused, the file that cannot be opened), with any
//! password in the URL masked. MCP clients never see these texts; they are
//! for the person at the shell.

use super::CliError;
use crate::store::{self, Backend, Db, PoolOptions};
use std::path::PathBuf;
use std::str::FromStr;

/// Whether a command may create a missing SQLite file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Missing {
    /// `serve` and `migrate`: a new file is the first start.
    Create,
    /// `keys …`: a new empty file would hold keys no server reads.
    Refuse,
}

/// Opens the database and brings its schema up to date; a failure names the
/// database (password masked) and the driver's cause.
pub(super) async fn open(url: &str, pool: &PoolOptions, missing: Missing) -> Result<Db, CliError> {
    if missing == Missing::Refuse
        && let Some(path) = sqlite_file(url)
        && !path.exists()
    {
        return Err(CliError::Usage(format!(
            "there is no database at {} (--database-url {}). `fleetmind serve` or \
             `fleetmind migrate` creates it; to use another database, give \
             --database-url (or DATABASE_URL)",
            path.display(),
            masked(url)
        )));
    }
    let err = match store::open(url, pool).await {
        Ok(db) => return Ok(db),
        Err(err) => err,
    };
    let mut message = format!(
        "cannot open the database {}: {}",
        shown(url),
        cause(&err, url)
    );
    if err.is_outage()
        && Backend::from_url(url).ok() == Some(Backend::Postgres)
        && let Some((place, why)) = postgres_cause(url).await
        && !message.contains(&why)
    {
        message.push_str(&format!(" (connecting to {place}: {why})"));
    }
    if let Some(dir) = sqlite_file(url).as_ref().and_then(|p| p.parent())
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        message.push_str(&format!(
            " (the directory {} does not exist)",
            dir.display()
        ));
    }
    Err(CliError::Usage(message))
}

/// The pool says only that it timed out while it kept retrying; one direct
/// connection says why (refused, no route, name not resolved, …) and where.
async fn postgres_cause(url: &str) -> Option<(String, String)> {
    use sqlx::ConnectOptions;
    let options = sqlx::postgres::PgConnectOptions::from_str(url).ok()?;
    let place = format!("{}:{}", options.get_host(), options.get_port());
    let attempt = tokio::time::timeout(std::time::Duration::from_secs(3), options.connect());
    match attempt.await {
        Ok(Ok(_)) => None,
        Ok(Err(err)) => Some((place, cause(&err, url))),
        Err(_) => Some((place, "no answer within 3 s".into())),
    }
}

/// The database as the operator should read it: a SQLite file by its
/// absolute path (a relative one depends on the directory the command runs
/// in), any other URL with its password masked.
pub(super) fn shown(url: &str) -> String {
    match sqlite_file(url) {
        Some(path) => format!("sqlite://{}", path.display()),
        None => masked(url),
    }
}

/// The file a `sqlite://` URL names, made absolute; `None` for any other
/// URL and for an in-memory database.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    if Backend::from_url(url).ok()? != Backend::Sqlite {
        return None;
    }
    if url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    let path = options.get_filename();
    if path.as_os_str().is_empty() {
        return None;
    }
    std::path::absolute(path).ok()
}

/// The URL with the password of its user part, and a `password=` query
/// parameter, replaced by `***`.
pub(super) fn masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                        format!("{name}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The password written in the URL, if any, so that it can be taken out of
/// a driver's message too.
fn password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    Some(password).filter(|p| !p.is_empty())
}

/// An error and its causes, one after the other (a cause already said is not
/// repeated), with the URL's password masked.
pub(super) fn cause(err: &(dyn std::error::Error + 'static), url: &str) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        let said = next.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = next.source();
    }
    match password(url) {
        Some(password) => text.replace(password, "***"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_the_rest_is_kept() {
        for (url, shown) in [
            (
                "postgres://fm:s3cret@db.internal:5432/fleet",
                "postgres://fm:***@db.internal:5432/fleet",
            ),
            (
                "postgres://fm@db.internal/fleet",
                "postgres://fm@db.internal/fleet",
            ),
            (
                "postgres://fm:p@ss@db/fleet?sslmode=require&password=x",
                "postgres://fm:***@db/fleet?sslmode=require&password=***",
            ),
            ("postgres://db/fleet", "postgres://db/fleet"),
        ] {
            assert_eq!(masked(url), shown, "{url}");
        }
        assert_eq!(password("postgres://fm:p@ss@db/x"), Some("p@ss"));
        assert_eq!(password("postgres://fm@db/x"), None);
    }

    #[test]
    fn a_sqlite_url_is_shown_as_an_absolute_file() {
        let shown = shown("sqlite://fleetmind.db");
        assert!(shown.starts_with("sqlite:///"), "{shown}");
        assert!(shown.ends_with("/fleetmind.db"), "{shown}");
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://db/x"), None);
    }
}

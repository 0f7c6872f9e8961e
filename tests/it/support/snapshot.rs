//! Hashes of every table's rows, to prove that something wrote nothing.

use fleetmind::store::Backend;
use sqlx::Connection;

/// Every table's row count and a SHA-256 of its rows (read through a
/// connection of its own, not the server's pool), to prove that something
/// wrote nothing. `only_user`: only rows with that `user_id` (tables without
/// the column are left out). `ignore`: (table, column) pairs left out of the
/// rows; (table, `"*"`) leaves the whole table out.
pub async fn db_snapshot(
    url: &str,
    backend: Backend,
    only_user: Option<&str>,
    ignore: &[(&str, &str)],
) -> std::collections::BTreeMap<String, (usize, String)> {
    use sha2::Digest;
    let mut snapshot = std::collections::BTreeMap::new();
    match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .expect("snapshot: connect");
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
            )
            .fetch_all(&mut conn)
            .await
            .expect("snapshot: tables");
            for table in tables {
                let columns: Vec<String> = sqlx::query_scalar(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(&table)
                .fetch_all(&mut conn)
                .await
                .expect("snapshot: columns");
                let Some(filter) = user_filter(&columns, only_user) else {
                    continue;
                };
                if ignore.contains(&(table.as_str(), "*")) {
                    continue;
                }
                let row = snapshot_columns(&table, &columns, ignore)
                    .iter()
                    .map(|c| format!("coalesce(\"{c}\"::text, '<null>')"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT concat_ws('|', {row}) AS r FROM \"{table}\"{} ORDER BY r",
                    filter.replace('?', "$1")
                );
                let mut query = sqlx::query_scalar::<_, String>(&sql);
                if let Some(user) = only_user {
                    query = query.bind(user);
                }
                let rows = query.fetch_all(&mut conn).await.expect("snapshot: rows");
                let hash = hex::encode(sha2::Sha256::digest(rows.join("\n")));
                snapshot.insert(table, (rows.len(), hash));
            }
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url)
                .await
                .expect("snapshot: connect");
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .fetch_all(&mut conn)
            .await
            .expect("snapshot: tables");
            for table in tables {
                let columns: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                        .bind(&table)
                        .fetch_all(&mut conn)
                        .await
                        .expect("snapshot: columns");
                let Some(filter) = user_filter(&columns, only_user) else {
                    continue;
                };
                if ignore.contains(&(table.as_str(), "*")) {
                    continue;
                }
                let row = snapshot_columns(&table, &columns, ignore)
                    .iter()
                    .map(|c| format!("quote(\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                let sql = format!("SELECT {row} AS r FROM \"{table}\"{filter} ORDER BY r");
                let mut query = sqlx::query_scalar::<_, String>(&sql);
                if let Some(user) = only_user {
                    query = query.bind(user);
                }
                let rows = query.fetch_all(&mut conn).await.expect("snapshot: rows");
                let hash = hex::encode(sha2::Sha256::digest(rows.join("\n")));
                snapshot.insert(table, (rows.len(), hash));
            }
        }
    }
    snapshot
}

/// The WHERE clause for `only_user` (`?` for the bound user id), or `None`
/// when the table is to be left out.
fn user_filter(columns: &[String], only_user: Option<&str>) -> Option<String> {
    match only_user {
        None => Some(String::new()),
        Some(_) if columns.iter().any(|c| c == "user_id") => Some(" WHERE user_id = ?".to_owned()),
        Some(_) => None,
    }
}

fn snapshot_columns<'a>(
    table: &str,
    columns: &'a [String],
    ignore: &[(&str, &str)],
) -> Vec<&'a str> {
    columns
        .iter()
        .map(String::as_str)
        .filter(|c| !ignore.iter().any(|(t, col)| *t == table && col == c))
        .collect()
}

/// Takes snapshots until two in a row agree (writes queued before, such as
/// the usage flush, have landed); gives up after `within`.
pub async fn settled_snapshot(
    url: &str,
    backend: Backend,
    only_user: Option<&str>,
    ignore: &[(&str, &str)],
    pause: std::time::Duration,
    within: std::time::Duration,
) -> std::collections::BTreeMap<String, (usize, String)> {
    let deadline = std::time::Instant::now() + within;
    let mut last = db_snapshot(url, backend, only_user, ignore).await;
    loop {
        tokio::time::sleep(pause).await;
        let next = db_snapshot(url, backend, only_user, ignore).await;
        if next == last || std::time::Instant::now() >= deadline {
            return next;
        }
        last = next;
    }
}

/// The tables whose rows differ between two snapshots.
pub fn snapshot_diff(
    before: &std::collections::BTreeMap<String, (usize, String)>,
    after: &std::collections::BTreeMap<String, (usize, String)>,
) -> Vec<String> {
    let mut tables: std::collections::BTreeSet<&String> = before.keys().collect();
    tables.extend(after.keys());
    tables
        .into_iter()
        .filter(|t| before.get(*t) != after.get(*t))
        .map(|t| format!("{t}: {:?} -> {:?}", before.get(t), after.get(t)))
        .collect()
}

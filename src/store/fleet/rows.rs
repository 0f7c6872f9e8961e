//! The fleet's rows in SQL, the same on both backends: the statements made
//! from a table's columns and small pieces of SQL the queries share. Each
//! table's columns, with how a row's values are bound, are in `sql/` (one
//! file per table), and the reading of a row into a domain value in
//! `sql/from_row.rs`, both compiled per backend.

use crate::fleet::rules;
use crate::fleet::types::*;
use crate::store::StoreError;
use std::sync::OnceLock;

/// A fleet table's names and the statements made from them the first time
/// each is used: one row by id, the insert, the conditional write, the text
/// search and the counts of open assignments (see `sql/table.rs`).
///
/// Each written column comes with `B`, how a row's value for it is bound
/// (a function of the backend's query, in `sql/`): the name and the value
/// are one entry, so a new column is one line and the two cannot drift
/// apart.
pub(super) struct TableSql<B: 'static> {
    /// The row's name in messages (`order`).
    pub(super) what: &'static str,
    table: &'static str,
    pub(super) columns: Columns<B>,
    select_one: OnceLock<String>,
    insert: OnceLock<String>,
    update: OnceLock<String>,
    search: OnceLock<String>,
    open_assignments: OnceLock<String>,
    open_assignments_of_all: OnceLock<String>,
}

impl<B> TableSql<B> {
    pub(super) const fn new(
        what: &'static str,
        table: &'static str,
        id: &'static str,
        writes: &'static [(&'static str, B)],
        once: &'static [(&'static str, B)],
    ) -> Self {
        TableSql {
            what,
            table,
            columns: Columns {
                id,
                writes,
                once,
                list: OnceLock::new(),
            },
            select_one: OnceLock::new(),
            insert: OnceLock::new(),
            update: OnceLock::new(),
            search: OnceLock::new(),
            open_assignments: OnceLock::new(),
            open_assignments_of_all: OnceLock::new(),
        }
    }

    /// One row of the tenant (`$1`) by id (`$2`).
    pub(super) fn select_one(&self) -> &str {
        self.select_one.get_or_init(|| {
            format!(
                "SELECT {} FROM {} WHERE user_id = $1 AND {} = $2",
                self.columns, self.table, self.columns.id
            )
        })
    }

    pub(super) fn insert(&self) -> &str {
        self.insert.get_or_init(|| {
            let c = &self.columns;
            let (writes, once): (Vec<_>, Vec<_>) =
                (names(c.writes).collect(), names(c.once).collect());
            insert_sql(self.table, c.id, &writes, &once)
        })
    }

    pub(super) fn update(&self) -> &str {
        self.update.get_or_init(|| {
            let c = &self.columns;
            update_sql(self.table, c.id, &names(c.writes).collect::<Vec<_>>())
        })
    }

    /// The tenant's rows whose search text matches the pattern (`$2`),
    /// newest first, at most `$3`.
    pub(super) fn search(&self) -> &str {
        self.search.get_or_init(|| {
            let (columns, table, id) = (&self.columns, self.table, self.columns.id);
            format!(
                "SELECT {columns} FROM {table} WHERE user_id = $1 \
                 AND search_text LIKE $2 ESCAPE '\\' ORDER BY created_at DESC, {id} DESC LIMIT $3"
            )
        })
    }

    /// The open assignments of one row (`$2`) of an order or driver table.
    pub(super) fn open_assignments(&self) -> &str {
        self.open_assignments.get_or_init(|| {
            format!(
                "SELECT COUNT(*) FROM assignments WHERE user_id = $1 AND {} = $2 \
                 AND status IN {OPEN_ASSIGNMENT}",
                self.columns.id
            )
        })
    }

    /// The open assignments of the rows of one status (`$2`, or all).
    pub(super) fn open_assignments_of_all(&self) -> &str {
        self.open_assignments_of_all.get_or_init(|| {
            let (table, id) = (self.table, self.columns.id);
            format!(
                "SELECT COUNT(*) FROM assignments a JOIN {table} t \
                 ON t.user_id = a.user_id AND t.{id} = a.{id} \
                 WHERE a.user_id = $1 AND ($2 IS NULL OR t.status = $2) \
                 AND a.status IN {OPEN_ASSIGNMENT}"
            )
        })
    }
}

/// A table's columns: its id, what a write sets (in the order bound, `$3`
/// on) and what is set once, after them. As a column list for `SELECT` (but
/// the search text, which nobody reads), made the first time it is used, it
/// prints as `a, b, c`.
pub(super) struct Columns<B: 'static> {
    id: &'static str,
    pub(super) writes: &'static [(&'static str, B)],
    pub(super) once: &'static [(&'static str, B)],
    list: OnceLock<String>,
}

impl<B> Columns<B> {
    pub(super) fn as_str(&self) -> &str {
        self.list.get_or_init(|| {
            std::iter::once(self.id)
                .chain(names(self.writes))
                .chain(names(self.once))
                .filter(|column| *column != "search_text")
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

impl<B> std::fmt::Display for Columns<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn names<B>(columns: &[(&'static str, B)]) -> impl Iterator<Item = &'static str> {
    columns.iter().map(|(name, _)| *name)
}

/// `INSERT INTO table (user_id, id, writes…, then…) VALUES ($1, $2, …)`:
/// the tenant and the row's id, then the columns in the order they are
/// bound, numbered for them, so that a new column is one more name.
fn insert_sql(table: &str, id: &str, writes: &[&str], then: &[&str]) -> String {
    let columns: Vec<&str> = ["user_id", id]
        .iter()
        .chain(writes)
        .chain(then)
        .copied()
        .collect();
    let values: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        columns.join(", "),
        values.join(", ")
    )
}

/// `UPDATE table SET writes… = $3 … WHERE user_id = $1 AND id = $2 AND
/// status = $n`: the write of a changeable row, conditional on the status it
/// was read with.
fn update_sql(table: &str, id: &str, writes: &[&str]) -> String {
    let set: Vec<String> = writes
        .iter()
        .zip(3..)
        .map(|(column, n)| format!("{column} = ${n}"))
        .collect();
    format!(
        "UPDATE {table} SET {} WHERE user_id = $1 AND {id} = $2 AND status = ${}",
        set.join(", "),
        writes.len() + 3
    )
}

/// The condition of `orders` and `count_orders`: the tenant ($1) and the
/// `OrderFilter` ($2 status, $3 priority, $4 payment status, $5 driver).
pub(super) const ORDER_FILTER: &str = "user_id = $1 \
     AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR priority = $3) \
     AND ($4 IS NULL OR payment_status = $4) \
     AND ($5 IS NULL OR assigned_driver_id = $5)";

/// The condition of `drivers` and `count_drivers`: the tenant ($1) and the
/// `DriverFilter` ($2 status, $3 vehicle type).
pub(super) const DRIVER_FILTER: &str =
    "user_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR vehicle_type = $3)";

/// The open assignment statuses, for SQL.
pub(super) const OPEN_ASSIGNMENT: &str = "('active', 'in_progress')";

/// Orders by urgency, for SQL.
pub(super) const PRIORITY_RANK: &str =
    "CASE priority WHEN 'urgent' THEN 3 WHEN 'express' THEN 2 ELSE 1 END";

/// The sort direction, for SQL.
pub(super) fn dir(descending: bool) -> &'static str {
    if descending { "DESC" } else { "ASC" }
}

pub(super) fn counts(rows: Vec<(String, i64)>) -> StatusCounts {
    StatusCounts {
        total: rows.iter().map(|(_, n)| n).sum(),
        by_status: rows,
    }
}

pub(super) fn changed_meanwhile(what: &str, id: &str) -> StoreError {
    StoreError::Conflict(format!(
        "{what} {id} was changed by another call meanwhile; try again"
    ))
}

/// The text `search_orders` matches against.
pub(super) fn order_search_text(o: &Order) -> String {
    rules::search_text(&[
        Some(&o.order_id),
        Some(&o.customer_name),
        o.customer_email.as_deref(),
        o.customer_phone.as_deref(),
    ])
}

/// The text `search_drivers` matches against.
pub(super) fn driver_search_text(d: &Driver) -> String {
    rules::search_text(&[
        Some(&d.driver_id),
        Some(&d.name),
        d.email.as_deref(),
        d.phone.as_deref(),
        d.vehicle_plate.as_deref(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_numbered_in_bind_order() {
        assert_eq!(
            insert_sql("t", "t_id", &["a", "b"], &["created_at"]),
            "INSERT INTO t (user_id, t_id, a, b, created_at) VALUES ($1, $2, $3, $4, $5)"
        );
        assert_eq!(
            update_sql("t", "t_id", &["a", "b"]),
            "UPDATE t SET a = $3, b = $4 WHERE user_id = $1 AND t_id = $2 AND status = $5"
        );
    }

    #[test]
    fn the_columns_read_are_the_id_the_writes_and_the_set_once_ones() {
        assert_eq!(
            TableSql::new(
                "t",
                "ts",
                "t_id",
                &[("a", ()), ("search_text", ()), ("b", ())],
                &[("created_at", ())]
            )
            .columns
            .as_str(),
            "t_id, a, b, created_at"
        );
    }
}

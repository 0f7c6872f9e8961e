//! The fleet's rows in SQL, the same on both backends: the statements made
//! from a table's columns and small pieces of SQL the queries share. Each
//! table's columns, with how a row's values are bound and read, are in
//! `sql/` (one file per table), compiled per backend.

use crate::fleet::rules;
use crate::fleet::types::*;
use crate::store::StoreError;
use std::sync::OnceLock;

/// One column of a fleet table, one line of its list: its name, how a
/// row's value is bound (`B`, a function of the backend's query) and how
/// it is read back (`R`, a function of the backend's row), so that a new
/// column is one line and its name, its value and its reading cannot drift
/// apart.
pub(super) struct Column<B, R> {
    pub(super) name: &'static str,
    pub(super) bind: B,
    /// Whether the conditional write sets it too, not only the insert.
    pub(super) rewritten: bool,
    /// `None`: written, never read (the search text).
    pub(super) read: Option<R>,
}

/// A column every write sets, read back.
pub(super) const fn column<B, R>(name: &'static str, bind: B, read: R) -> Column<B, R> {
    Column {
        name,
        bind,
        rewritten: true,
        read: Some(read),
    }
}

/// A column the insert sets and no write changes (the id, the creation
/// time), read back.
pub(super) const fn set_once<B, R>(name: &'static str, bind: B, read: R) -> Column<B, R> {
    Column {
        name,
        bind,
        rewritten: false,
        read: Some(read),
    }
}

/// A column every write sets and nobody reads (what a search matches).
pub(super) const fn unread<B, R>(name: &'static str, bind: B) -> Column<B, R> {
    Column {
        name,
        bind,
        rewritten: true,
        read: None,
    }
}

/// A fleet table's names and the statements made from them the first time
/// each is used: one row by id, the insert, the conditional write, the text
/// search and the counts of open assignments (see `sql/table.rs`).
pub(super) struct TableSql<B: 'static, R: 'static> {
    /// The row's name in messages (`order`).
    pub(super) what: &'static str,
    table: &'static str,
    pub(super) columns: Columns<B, R>,
    select_one: OnceLock<String>,
    insert: OnceLock<String>,
    update: OnceLock<String>,
    search: OnceLock<String>,
    open_assignments: OnceLock<String>,
    open_assignments_of_all: OnceLock<String>,
}

impl<B, R> TableSql<B, R> {
    pub(super) const fn new(
        what: &'static str,
        table: &'static str,
        id: &'static str,
        all: &'static [Column<B, R>],
    ) -> Self {
        TableSql {
            what,
            table,
            columns: Columns {
                id,
                all,
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

    /// Every column, bound in their order after the tenant (`$1`).
    pub(super) fn insert(&self) -> &str {
        self.insert.get_or_init(|| {
            let names: Vec<_> = self.columns.all.iter().map(|c| c.name).collect();
            insert_sql(self.table, &names)
        })
    }

    /// The rewritten columns, bound in their order after the tenant (`$1`)
    /// and the id (`$2`).
    pub(super) fn update(&self) -> &str {
        self.update.get_or_init(|| {
            let c = &self.columns;
            let names: Vec<_> = c.rewritten().map(|c| c.name).collect();
            update_sql(self.table, c.id, &names)
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

/// A table's columns (the id's name apart, for the statements' `WHERE`).
/// As a column list for `SELECT`, made the first time it is used, it
/// prints the columns read, in their order, as `a, b, c`: the row is read
/// by position (`sql/table.rs`), so a `SELECT` of a row's columns must be
/// this list.
pub(super) struct Columns<B: 'static, R: 'static> {
    id: &'static str,
    pub(super) all: &'static [Column<B, R>],
    list: OnceLock<String>,
}

impl<B, R> Columns<B, R> {
    pub(super) fn as_str(&self) -> &str {
        self.list.get_or_init(|| {
            self.read()
                .map(|(column, _)| column.name)
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    /// The columns read, each with its reading, in the order selected.
    pub(super) fn read(&self) -> impl Iterator<Item = (&Column<B, R>, &R)> {
        self.all
            .iter()
            .filter_map(|column| Some((column, column.read.as_ref()?)))
    }

    /// The columns the conditional write sets, in the order bound.
    pub(super) fn rewritten(&self) -> impl Iterator<Item = &Column<B, R>> {
        self.all.iter().filter(|column| column.rewritten)
    }
}

impl<B, R> std::fmt::Display for Columns<B, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `INSERT INTO table (user_id, columns…) VALUES ($1, $2, …)`: the tenant,
/// then the columns in the order they are bound, numbered for them, so that
/// a new column is one more name.
fn insert_sql(table: &str, columns: &[&str]) -> String {
    let columns: Vec<&str> = std::iter::once("user_id")
        .chain(columns.iter().copied())
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
            insert_sql("t", &["t_id", "a", "b", "created_at"]),
            "INSERT INTO t (user_id, t_id, a, b, created_at) VALUES ($1, $2, $3, $4, $5)"
        );
        assert_eq!(
            update_sql("t", "t_id", &["a", "b"]),
            "UPDATE t SET a = $3, b = $4 WHERE user_id = $1 AND t_id = $2 AND status = $5"
        );
    }

    #[test]
    fn a_table_reads_its_read_columns_and_writes_its_rewritten_ones() {
        static T: TableSql<(), ()> = TableSql::new(
            "t",
            "ts",
            "t_id",
            &[
                set_once("t_id", (), ()),
                column("a", (), ()),
                unread("search_text", ()),
                set_once("created_at", (), ()),
                column("b", (), ()),
            ],
        );
        assert_eq!(T.columns.as_str(), "t_id, a, created_at, b");
        assert_eq!(
            T.insert(),
            "INSERT INTO ts (user_id, t_id, a, search_text, created_at, b) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        );
        assert_eq!(
            T.update(),
            "UPDATE ts SET a = $3, search_text = $4, b = $5 \
             WHERE user_id = $1 AND t_id = $2 AND status = $6"
        );
    }
}

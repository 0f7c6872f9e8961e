//! What the three tables do alike, written once: read a row of the tenant
//! by its id, insert it, write it back only if its status is still the one
//! read, search it by text, and refuse to delete an order or driver while
//! an assignment of it is open; and read a row from its columns. Each table
//! says how through [`Table`].

use super::{Conn, Db, DbRow, Q, This};
use crate::fleet::rules;
use crate::store::StoreError;
use crate::store::fleet::rows::{self, TableSql};
use crate::store::sql_backend::SqlBackend;
use crate::tenant::UserId;
use sqlx::Row;

/// How a row's value for one column is bound.
pub(super) type Bind<T> = for<'q> fn(&'q T, Q<'q>) -> Q<'q>;

/// How one column of a selected row is read into the row's value.
pub(super) type Read<T> = for<'r> fn(&mut T, Cell<'r>) -> Result<(), sqlx::Error>;

/// One line of a table's columns (see [`rows::Column`]).
pub(super) type Column<T> = rows::Column<Bind<T>, Read<T>>;

/// A fleet table's row type and its statements.
pub(super) trait Table:
    for<'r> sqlx::FromRow<'r, DbRow> + Default + Send + Unpin + 'static
{
    /// The row's status (what a write is conditional on), stored by name.
    type Status: Copy + Into<&'static str>;
    /// The table's names and statements, and how each column is bound and
    /// read.
    const SQL: &'static TableSql<Bind<Self>, Read<Self>>;
    fn id(&self) -> &str;
}

/// A row selected with its table's columns (`SELECT {columns}`), read
/// into a blank one (`Default`) column by column, by position: the list
/// that made the `SELECT` says which column is where, so no column is
/// looked up by name. `FromRow` of each table is this.
pub(super) fn read_row<T: Table>(row: &DbRow) -> Result<T, sqlx::Error> {
    let mut value = T::default();
    let mut index = 0;
    for (column, read) in T::SQL.columns.read() {
        let cell = Cell {
            row,
            index,
            name: column.name,
        };
        // The tests (debug builds) check the name too: a `SELECT` written
        // by hand, not from the list, fails there instead of misreading.
        if cfg!(debug_assertions) && cell.selected_name()? != column.name {
            return Err(sqlx::Error::ColumnNotFound(column.name.into()));
        }
        read(&mut value, cell)?;
        index += 1;
    }
    // More columns than the list reads: not selected from it.
    if row.len() != index {
        return Err(sqlx::Error::ColumnIndexOutOfBounds {
            index,
            len: row.len(),
        });
    }
    Ok(value)
}

/// One column of a row being read: where it is, and its name for the
/// errors, which are those of a read by name.
#[derive(Clone, Copy)]
pub(super) struct Cell<'r> {
    row: &'r DbRow,
    index: usize,
    name: &'static str,
}

impl<'r> Cell<'r> {
    /// Sets `field` to the column's value.
    pub(super) fn get<V>(self, field: &mut V) -> Result<(), sqlx::Error>
    where
        V: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
    {
        *field = self.value()?;
        Ok(())
    }

    /// Sets `field` to the value whose name the column holds (a status, a
    /// vehicle type, …).
    pub(super) fn named<V>(
        self,
        field: &mut V,
        parse: fn(&str) -> Option<V>,
    ) -> Result<(), sqlx::Error> {
        let text: &str = self.value()?;
        *field = parse(text).ok_or_else(|| self.unknown())?;
        Ok(())
    }

    /// [`Cell::named`] for a column that may be NULL.
    pub(super) fn named_opt<V>(
        self,
        field: &mut Option<V>,
        parse: fn(&str) -> Option<V>,
    ) -> Result<(), sqlx::Error> {
        let text: Option<&str> = self.value()?;
        *field = text
            .map(|text| parse(text).ok_or_else(|| self.unknown()))
            .transpose()?;
        Ok(())
    }

    /// The column's value, or the error a read by its name gives.
    fn value<V>(self) -> Result<V, sqlx::Error>
    where
        V: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
    {
        self.row.try_get(self.index).map_err(|err| match err {
            sqlx::Error::ColumnDecode { source, .. } => sqlx::Error::ColumnDecode {
                index: format!("{:?}", self.name),
                source,
            },
            sqlx::Error::ColumnIndexOutOfBounds { .. } => {
                sqlx::Error::ColumnNotFound(self.name.into())
            }
            other => other,
        })
    }

    fn selected_name(self) -> Result<&'r str, sqlx::Error> {
        use sqlx::Column as _;
        Ok(self.row.try_column(self.index)?.name())
    }

    /// A name the domain does not know.
    fn unknown(self) -> sqlx::Error {
        sqlx::Error::ColumnDecode {
            index: self.name.into(),
            source: format!("unknown value in {}", self.name).into(),
        }
    }
}

/// The tenant's row, or `NotFound`.
pub(super) async fn read<T: Table>(
    conn: &mut Conn,
    user: &UserId,
    id: &str,
) -> Result<T, StoreError> {
    sqlx::query_as(T::SQL.select_one())
        .bind(user.as_str())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound(T::SQL.what))
}

pub(super) async fn insert<T: Table>(
    conn: &mut Conn,
    user: &UserId,
    row: &T,
) -> Result<(), StoreError> {
    let q = sqlx::query(T::SQL.insert()).bind(user.as_str());
    T::SQL
        .columns
        .all
        .iter()
        .fold(q, |q, column| (column.bind)(row, q))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Writes every changeable column if the row still has `expected` status;
/// `false` if it does not (someone else changed it).
pub(super) async fn write<T: Table>(
    conn: &mut Conn,
    user: &UserId,
    row: &T,
    expected: T::Status,
) -> Result<bool, StoreError> {
    let q = sqlx::query(T::SQL.update())
        .bind(user.as_str())
        .bind(row.id());
    let done = T::SQL
        .columns
        .rewritten()
        .fold(q, |q, column| (column.bind)(row, q))
        .bind(expected.into())
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The tenant's rows whose id or contact texts contain `term`.
pub(super) async fn search<T: Table>(
    store: &This,
    user: &UserId,
    term: &str,
    limit: i64,
) -> Result<Vec<T>, StoreError> {
    Ok(sqlx::query_as(T::SQL.search())
        .bind(user.as_str())
        .bind(rules::like_pattern(term))
        .bind(limit.clamp(0, 1000))
        .fetch_all(store.pool())
        .await?)
}

/// Refuses while the row has an open assignment (an order or a driver).
pub(super) async fn refuse_if_assigned<T: Table>(
    conn: &mut Conn,
    user: &UserId,
    id: &str,
) -> Result<(), StoreError> {
    if count_open(conn, T::SQL.open_assignments(), user, Some(id)).await? > 0 {
        return Err(StoreError::Conflict(format!(
            "{} {id} has an open assignment; unassign, complete or fail it first",
            T::SQL.what
        )));
    }
    Ok(())
}

/// Refuses while any row of the status (or any at all) has an open
/// assignment.
pub(super) async fn refuse_if_any_assigned<T: Table>(
    conn: &mut Conn,
    user: &UserId,
    status: Option<&str>,
) -> Result<(), StoreError> {
    let open = count_open(conn, T::SQL.open_assignments_of_all(), user, status).await?;
    if open > 0 {
        return Err(StoreError::Conflict(format!(
            "{open} of these {}s have open assignments; complete, fail or unassign them first",
            T::SQL.what
        )));
    }
    Ok(())
}

/// How many open assignments `sql` counts, for the tenant and one argument.
async fn count_open(
    conn: &mut Conn,
    sql: &str,
    user: &UserId,
    arg: Option<&str>,
) -> Result<i64, StoreError> {
    let n: i64 = sqlx::query_scalar(sql)
        .bind(user.as_str())
        .bind(arg)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n)
}

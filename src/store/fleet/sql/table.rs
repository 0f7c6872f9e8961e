//! What the three tables do alike, written once: read a row of the tenant
//! by its id, insert it, write it back only if its status is still the one
//! read, search it by text, and refuse to delete an order or driver while
//! an assignment of it is open. Each table says how through [`Table`].

use super::{Conn, DbRow, Q, This};
use crate::fleet::rules;
use crate::store::StoreError;
use crate::store::fleet::rows::TableSql;
use crate::store::sql_backend::SqlBackend;
use crate::tenant::UserId;

/// How a row's value for one column is bound (an entry of a table's
/// columns, beside the column's name).
pub(super) type Bind<T> = for<'q> fn(&'q T, Q<'q>) -> Q<'q>;

/// A fleet table's row type and its statements.
pub(super) trait Table: for<'r> sqlx::FromRow<'r, DbRow> + Send + Unpin + 'static {
    /// The row's status (what a write is conditional on), stored by name.
    type Status: Copy + Into<&'static str>;
    /// The table's names and statements, and how each column is bound.
    const SQL: &'static TableSql<Bind<Self>>;
    fn id(&self) -> &str;
}

/// Binds `row`'s values for `columns`, in their order.
fn bind_columns<'q, T>(row: &'q T, columns: &[(&str, Bind<T>)], q: Q<'q>) -> Q<'q> {
    columns.iter().fold(q, |q, (_, bind)| bind(row, q))
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
    let q = sqlx::query(T::SQL.insert())
        .bind(user.as_str())
        .bind(row.id());
    let columns = &T::SQL.columns;
    bind_columns(row, columns.once, bind_columns(row, columns.writes, q))
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
    let done = bind_columns(row, T::SQL.columns.writes, q)
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

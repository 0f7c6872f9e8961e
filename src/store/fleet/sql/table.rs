//! What the three tables do alike, written once: read a row of the tenant
//! by its id, insert it, and write it back only if its status is still the
//! one read. Each table says how through [`Table`].

use super::{Conn, DbRow, Q};
use crate::store::StoreError;
use crate::store::fleet::rows::TableSql;
use crate::tenant::UserId;

/// A fleet table's row type and its statements.
pub(super) trait Table: for<'r> sqlx::FromRow<'r, DbRow> + Send + Unpin {
    /// The row's status (what a write is conditional on), stored by name.
    type Status: Copy + Into<&'static str>;
    /// The table's names and statements.
    const SQL: &'static TableSql;
    fn id(&self) -> &str;
    /// Binds the changeable columns, `$3` on.
    fn bind_changes<'q>(&'q self, q: Q<'q>) -> Q<'q>;
    /// Binds the columns set once, after the changeable ones.
    fn bind_once<'q>(&'q self, q: Q<'q>) -> Q<'q>;
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
    row.bind_once(row.bind_changes(q))
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
    let done = row
        .bind_changes(q)
        .bind(expected.into())
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

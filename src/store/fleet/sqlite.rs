//! The fleet on SQLite: the shared SQL of `sql/`, compiled for this backend.

/// The store the shared SQL is compiled for (see `store/sql_backend.rs`).
type This = crate::store::sqlite::SqliteStore;

/// This backend's row, named concretely: the shared `FromRow` impls are one
/// per backend, and the compiler tells them apart only by a concrete type.
type DbRow = sqlx::sqlite::SqliteRow;

// Included by both backends on purpose: one text, two sets of concrete types.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

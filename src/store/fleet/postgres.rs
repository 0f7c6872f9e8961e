//! The fleet on Postgres: the shared SQL of `sql/`, compiled for this backend.

/// The store the shared SQL is compiled for (see `store/sql_backend.rs`).
type This = crate::store::postgres::PgStore;

// Included by both backends on purpose: one text, two sets of concrete types.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

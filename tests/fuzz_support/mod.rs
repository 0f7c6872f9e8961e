//! The HTTP fuzz of tests/fuzz_http.rs: what it generates, how it writes
//! requests, and what it checks.

pub mod cases;
pub mod check;
pub mod generate;
pub mod request;

//! Control-plane integration tests, compiled as one binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code"
)]

mod api;
mod db;
mod docs;
mod isolation;
mod protocol;
mod store;
mod support;

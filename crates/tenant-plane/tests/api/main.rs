//! Tenant-plane integration tests, compiled as one binary. Most start the real `atlasai-tp`
//! binary against fake providers on 127.0.0.1; API-shape tests drive the app in-process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly by design"
)]

mod support;

mod api;
mod config_errors;
mod conformance;
mod doc_examples;
mod docs;
mod gateway;
mod reload;
mod secrets;

//! Tenant-plane integration tests, compiled as one binary. Most start the real `atlasai-tp`
//! binary against fake providers on 127.0.0.1; API-shape tests drive the app in-process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test helpers outside #[test] functions fail loudly by design"
)]

mod support;

#[path = "../common/pg.rs"]
mod pg;

mod client;

mod ai_features;
mod ai_queue;
mod api;
mod config_errors;
mod conformance;
mod data_api;
mod data_isolation;
mod data_resilience;
mod doc_examples;
mod docs;
mod gateway;
mod reload;
mod secrets;

//! AtlasAI tenant plane (`atlasai-tp`): runs inside the customer's network, reads `BYOC_*`
//! settings or Helm values, serves the AI features on the customer's own model, and keeps
//! incident data inside the network. It runs alone, air-gapped, with no control plane, or
//! enrolled with one (`TP_CP_URL`) that distributes portal settings and the managed model.
//!
//! `main.rs` only parses the command line and calls [`cli::main`]; the server is built by
//! [`http::app`] so tests can drive it in-process or spawn it on port 0.

pub mod admin_token;
pub mod ai;
pub mod audit;
pub mod calls;
pub mod cli;
pub mod config;
pub mod connection_test;
pub mod cp;
pub mod data;
pub mod gateway;
pub mod http;
pub mod incidents;
pub mod ingest;
pub mod jobs;
pub mod logfields;
pub mod logwriter;
pub mod metrics;
pub mod reload;
pub mod routing;
pub mod runbooks;
pub mod search;
pub mod state;
pub mod store;
pub mod validate;

//! AtlasAI control plane (`atlasai-cp`): the SaaS side. It keeps tenants, users and their
//! portal AI settings (validated on save, secrets encrypted at rest), distributes the
//! effective settings to enrolled tenant planes, serves the managed default model metered in
//! AI credits, and serves the Settings → AI portal page.
//!
//! `main.rs` only calls [`cli::main`]; the server is built by [`http::app`] so tests can
//! drive it.

pub mod ai_settings;
pub mod cli;
pub mod config;
pub mod credits;
pub mod crypto;
pub mod error;
pub mod http;
pub mod identity;
pub mod jwt;
pub mod metrics;
pub mod state;
pub mod store;
pub mod tp;

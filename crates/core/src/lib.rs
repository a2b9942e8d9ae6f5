//! Shared types for both planes: provider kinds, provider-neutral chat and embedding types,
//! resolved AI settings, error kinds, tenant identifiers, portal AI settings and the
//! control-plane/tenant-plane protocol messages.
//!
//! Architecture invariant: this crate does no IO and has no async runtime, so every other crate
//! and every test can use it freely.

pub mod chat;
pub mod error;
pub mod net;
pub mod portal;
pub mod protocol;
pub mod provider;
pub mod secret;
pub mod settings;
pub mod tenant;

pub use chat::*;
pub use error::ProviderErrorKind;
pub use provider::{Dialect, ProviderKind};
pub use settings::*;
pub use tenant::TenantId;

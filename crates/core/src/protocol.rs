//! The versioned protocol between a tenant plane and the control plane. Only settings,
//! status and usage counts cross it (plus managed-model requests when the tenant uses the
//! managed model); incident data never does.
//!
//! The tenant plane always calls the control plane, never the reverse, so it works behind NAT
//! and firewalls:
//!
//! 1. `POST` [`ENROLL_PATH`] with a one-time enrollment token, once; the answer carries the
//!    cluster's own credential, which every later call presents as `Authorization: Bearer`.
//! 2. `GET` [`SETTINGS_PATH`] with `If-None-Match` and `?wait=<seconds>` (long poll): `304`
//!    when nothing changed, else the effective settings.
//! 3. `POST` [`STATUS_PATH`], [`USAGE_PATH`] and [`validation_path`] to report.
//! 4. `POST` [`MANAGED_CHAT_PATH`] to use the managed model, metered in AI credits.
//!
//! Version rule: fields may be added (readers ignore unknown fields); removing or changing a
//! field's meaning needs a new path prefix (`/api/tp/v2`).

use serde::{Deserialize, Serialize};

use crate::chat::{ChatRequest, ChatResponse};
use crate::portal::{AiSettings, WireSecret};
use crate::settings::FallbackPolicy;
use crate::tenant::TenantId;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Enrollment.
pub const ENROLL_PATH: &str = "/api/tp/v1/enroll";
/// Effective settings, polled.
pub const SETTINGS_PATH: &str = "/api/tp/v1/settings";
/// Status reports.
pub const STATUS_PATH: &str = "/api/tp/v1/status";
/// Usage reports.
pub const USAGE_PATH: &str = "/api/tp/v1/usage";
/// Managed-model chat.
pub const MANAGED_CHAT_PATH: &str = "/api/tp/v1/managed/chat";
/// The longest long poll the control plane holds, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 60;

/// Where a tenant plane reports the outcome of a validation it was asked to run.
pub fn validation_path(id: &str) -> String {
    format!("/api/tp/v1/validations/{id}")
}

/// `POST /api/tp/v1/enroll`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The one-time token the portal showed when the cluster was created.
    pub enroll_token: WireSecret,
    /// The tenant plane's version, for the portal.
    pub tp_version: String,
}

/// The answer to enrollment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The protocol version the control plane speaks.
    pub protocol_version: u32,
    /// The tenant this cluster belongs to; portal settings apply to requests whose
    /// `x-tenant-id` is this tenant.
    pub tenant_id: TenantId,
    /// The cluster's id.
    pub cluster_id: String,
    /// The cluster's credential for every later call. Keep it secret.
    pub credential: WireSecret,
    /// How to verify admin tokens the control plane issues for this cluster.
    pub admin_tokens: AdminTokenKey,
}

/// The public half of the key the control plane signs tenant-plane admin tokens with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminTokenKey {
    /// Always `EdDSA` (Ed25519).
    pub algorithm: String,
    /// The Ed25519 public key, base64url without padding (a JWK's `x`).
    pub public_key: String,
    /// The `iss` claim to require.
    pub issuer: String,
    /// The `aud` claim to require.
    pub audience: String,
}

/// The claims of an admin token for a tenant plane's admin endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminClaims {
    /// The user it was issued to.
    pub sub: String,
    /// The issuer.
    pub iss: String,
    /// The audience (`atlasai-tp`).
    pub aud: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// The tenant.
    pub tenant: String,
    /// The only cluster that accepts it.
    pub cluster: String,
    /// The user's role.
    pub role: String,
}

/// `GET /api/tp/v1/settings`: what the portal says for this cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettingsResponse {
    /// The protocol version.
    pub protocol_version: u32,
    /// Identifies this content; send it back as `If-None-Match`.
    pub etag: String,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The cluster.
    pub cluster_id: String,
    /// The active portal settings (the cluster's override, else the tenant's), with secrets;
    /// `None` when the portal has none.
    pub ai: Option<AiSettings>,
    /// `cluster` or `tenant`: which level `ai` came from.
    pub scope: Option<String>,
    /// The fallback policy in force.
    pub fallback_policy: FallbackPolicy,
    /// The managed model, when the control plane offers one.
    pub managed: Option<ManagedInfo>,
    /// Settings the control plane could not check itself (a private endpoint, or Bedrock with
    /// the tenant plane's role); the tenant plane checks each from inside its network and
    /// reports the outcome.
    pub pending_validations: Vec<PendingValidation>,
    /// The admin-token key (repeated here so a rotation reaches every tenant plane).
    pub admin_tokens: AdminTokenKey,
}

/// The managed model the control plane serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedInfo {
    /// The provider behind it.
    pub provider: String,
    /// Its model.
    pub model: String,
}

/// One setting waiting for a tenant plane to check it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingValidation {
    /// Report the outcome under this id.
    pub id: String,
    /// The settings to check.
    pub settings: AiSettings,
}

/// `POST /api/tp/v1/validations/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidationResult {
    /// Whether the provider answered.
    pub ok: bool,
    /// The provider's reason, secrets removed, when it failed.
    pub error: Option<String>,
    /// How long the check took.
    pub latency_ms: u64,
}

/// Where the settings a tenant plane runs with came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    /// `BYOC_*` variables or Helm values on the tenant plane (these win over the portal).
    Local,
    /// Portal settings distributed by the control plane.
    Portal,
    /// The managed model through the control plane.
    Managed,
    /// Nothing: AI features answer "AI provider not configured".
    None,
}

impl ConfigSource {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigSource::Local => "local",
            ConfigSource::Portal => "portal",
            ConfigSource::Managed => "managed",
            ConfigSource::None => "none",
        }
    }
}

/// The outcome of the last connection test on the tenant plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTest {
    /// Whether it passed.
    pub ok: bool,
    /// How long it took.
    pub latency_ms: u64,
    /// When, seconds since the Unix epoch.
    pub at_unix: u64,
    /// Why it failed (secrets removed).
    pub error: Option<String>,
}

/// `POST /api/tp/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// The tenant plane's version.
    pub tp_version: String,
    /// The chat provider in force for the enrolled tenant.
    pub provider: Option<String>,
    /// Its model.
    pub model: Option<String>,
    /// Where those came from.
    pub config_source: ConfigSource,
    /// The last connection test, if one ran since start.
    pub last_test: Option<LastTest>,
}

/// Which route served some calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageRoute {
    /// The customer's own provider (local or portal settings): recorded at zero credits.
    Byoc,
    /// The managed model (already metered by the control plane when it served the call).
    Managed,
}

/// Counts for one tenant, provider and model since the last report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEntry {
    /// The tenant the calls were for.
    pub tenant_id: String,
    /// The route.
    pub route: UsageRoute,
    /// The provider kind.
    pub provider: String,
    /// The model.
    pub model: String,
    /// Calls made.
    pub calls: u64,
    /// Calls that failed.
    pub failed_calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

/// `POST /api/tp/v1/usage`. Retried with the same `report_id` until acknowledged; the
/// control plane records each id once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsageReport {
    /// Unique per report.
    pub report_id: String,
    /// The counts.
    pub entries: Vec<UsageEntry>,
}

/// The answer to a usage report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsageAck {
    /// False when this `report_id` had been recorded before (a retry).
    pub recorded: bool,
}

/// Why the tenant plane asks for the managed model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManagedReason {
    /// No BYOC provider is configured for the tenant.
    #[default]
    Default,
    /// The tenant's own provider is down and the cloud-fallback policy allows this.
    CloudFallback,
}

/// `POST /api/tp/v1/managed/chat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManagedChatRequest {
    /// Unique per logical request: a retry with the same id is never charged twice and gets
    /// the first answer back.
    pub request_id: String,
    /// Why.
    #[serde(default)]
    pub reason: ManagedReason,
    /// The chat request.
    pub request: ChatRequest,
}

/// The answer from the managed model, with what it cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManagedChatResponse {
    /// The model's answer.
    pub response: ChatResponse,
    /// Credits charged, in thousandths of a credit.
    pub charged_millicredits: i64,
    /// The balance after the charge, in thousandths of a credit.
    pub balance_millicredits: i64,
}

/// The error body both planes' APIs use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong and what to do about it.
    pub error: String,
    /// A stable machine-readable code.
    pub code: String,
}

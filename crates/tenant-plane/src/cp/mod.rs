//! The tenant plane's side of the control-plane protocol (`atlasai_core::protocol`).
//!
//! The tenant plane calls the control plane, never the reverse: it enrolls once with
//! `TP_CP_ENROLL_TOKEN`, keeps its credential in the data directory, long-polls for the
//! portal settings of its tenant, reports status and usage counts, checks settings the
//! control plane may not call itself, and reaches the managed model through it. Local
//! `BYOC_*` settings always win over the portal's. When the control plane is unreachable the
//! last settings it sent (kept in the data directory) stay in force.

mod client;
pub mod fallback;
pub mod managed;
pub mod persist;
mod sync;
pub mod usage;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;
use atlasai_core::portal::ValidatedSettings;
use atlasai_core::protocol::{AdminClaims, AdminTokenKey, LastTest, ManagedInfo, SettingsResponse};
use atlasai_core::{FallbackPolicy, TenantId};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

pub use self::client::CpLink;
pub use self::sync::spawn;

/// The portal's settings for this tenant plane, as last received and validated.
#[derive(Debug)]
pub struct Snapshot {
    /// The tenant portal settings apply to.
    pub tenant: TenantId,
    /// This cluster.
    pub cluster_id: String,
    /// The active portal settings, validated into client settings.
    pub ai: Option<ValidatedSettings>,
    /// Why settings the control plane sent could not be used (never expected: the control
    /// plane validates with the same rules).
    pub ai_error: Option<String>,
    /// The fallback policy the portal sets.
    pub fallback_policy: FallbackPolicy,
    /// Whether the portal has settings for this tenant at all.
    pub has_portal_settings: bool,
    /// The managed model, when offered.
    pub managed: Option<ManagedInfo>,
    /// The admin-token key.
    pub admin_key: AdminTokenKey,
    /// The response it came from (kept for the cache file and the ETag).
    pub raw: SettingsResponse,
}

impl Snapshot {
    /// Validates a settings response.
    pub fn from_response(raw: SettingsResponse) -> Snapshot {
        let (ai, ai_error) = match &raw.ai {
            None => (None, None),
            Some(s) => match s.validate() {
                Ok(v) => (Some(v), None),
                Err(errs) => (
                    None,
                    Some(
                        errs.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                ),
            },
        };
        Snapshot {
            tenant: raw.tenant_id.clone(),
            cluster_id: raw.cluster_id.clone(),
            has_portal_settings: raw.ai.is_some(),
            fallback_policy: raw.fallback_policy,
            managed: raw.managed.clone(),
            admin_key: raw.admin_tokens.clone(),
            ai,
            ai_error,
            raw,
        }
    }
}

/// Everything the tenant plane knows about its control plane.
#[derive(Debug, Default)]
pub struct CpState {
    snapshot: ArcSwapOption<Snapshot>,
    generation: AtomicU64,
    link: ArcSwapOption<CpLink>,
    fail_open: AtomicBool,
    connected: AtomicBool,
    last_test: Mutex<Option<LastTest>>,
}

impl CpState {
    /// The current snapshot.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.load_full()
    }

    /// Publishes a new snapshot; routes built from the old one are rebuilt at once.
    pub fn publish(&self, s: Snapshot) {
        self.snapshot.store(Some(Arc::new(s)));
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Bumps on every published snapshot.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The connection to the control plane, once enrolled.
    pub fn link(&self) -> Option<Arc<CpLink>> {
        self.link.load_full()
    }

    pub(crate) fn set_link(&self, link: CpLink) {
        self.link.store(Some(Arc::new(link)));
    }

    /// Whether the last exchange with the control plane succeeded.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub(crate) fn set_connected(&self, v: bool) {
        self.connected.store(v, Ordering::Relaxed);
    }

    /// Whether `AI_CREDITS_FAIL_OPEN=1` is set.
    pub fn fail_open(&self) -> bool {
        self.fail_open.load(Ordering::Relaxed)
    }

    pub(crate) fn set_fail_open(&self, v: bool) {
        self.fail_open.store(v, Ordering::Relaxed);
    }

    /// The portal's settings for a tenant, if this tenant plane's portal tenant is that one.
    pub fn portal_for(&self, tenant: &TenantId) -> Option<(Arc<Snapshot>, ValidatedSettings)> {
        let s = self.snapshot()?;
        if &s.tenant != tenant {
            return None;
        }
        let ai = s.ai.clone()?;
        Some((s, ai))
    }

    /// The managed model, for a tenant of this tenant plane, when offered.
    pub fn managed_for(&self, tenant: &TenantId) -> Option<ManagedInfo> {
        let s = self.snapshot()?;
        (&s.tenant == tenant).then(|| s.managed.clone()).flatten()
    }

    /// Whether the managed model may stand in for a tenant's failing provider right now:
    /// the policy allows it, `AI_CREDITS_FAIL_OPEN=1` is set, and the control plane is
    /// reachable. Without portal settings the variable alone is the customer's choice.
    pub fn cloud_fallback_allowed(&self, tenant: &TenantId) -> bool {
        if !self.fail_open() || !self.connected() {
            return false;
        }
        match self.snapshot() {
            Some(s) if &s.tenant == tenant && s.managed.is_some() => {
                !s.has_portal_settings || s.fallback_policy == FallbackPolicy::CloudFallback
            }
            _ => false,
        }
    }

    /// Remembers a connection test's outcome for the next status report.
    pub fn record_test(&self, t: LastTest) {
        *self
            .last_test
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(t);
    }

    /// The last connection test.
    pub fn last_test(&self) -> Option<LastTest> {
        self.last_test
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether a bearer token is an admin token the control plane issued for this cluster:
    /// EdDSA only, signed by the key received at enrollment, right issuer and audience, not
    /// expired, naming this cluster, with the owner or admin role.
    pub fn verify_admin_token(&self, token: &str) -> bool {
        let Some(s) = self.snapshot() else {
            return false;
        };
        let key = &s.admin_key;
        if key.algorithm != "EdDSA" {
            return false;
        }
        let Ok(decoding) = DecodingKey::from_ed_components(&key.public_key) else {
            return false;
        };
        let mut v = Validation::new(Algorithm::EdDSA);
        v.algorithms = vec![Algorithm::EdDSA];
        v.set_issuer(&[&key.issuer]);
        v.set_audience(&[&key.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 30;
        match jsonwebtoken::decode::<AdminClaims>(token, &decoding, &v) {
            Ok(d) => {
                d.claims.cluster == s.cluster_id
                    && d.claims.tenant == s.tenant.as_str()
                    && matches!(d.claims.role.as_str(), "owner" | "admin")
            }
            Err(_) => false,
        }
    }
}

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
pub use self::sync::{in_force, spawn};

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

    /// The portal's fallback policy for a tenant, when the portal has settings for it.
    pub fn portal_policy(&self, tenant: &TenantId) -> Option<FallbackPolicy> {
        let s = self.snapshot()?;
        (&s.tenant == tenant && s.has_portal_settings).then_some(s.fallback_policy)
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

/// Settings from the control plane as unit tests start from: tenant `acme`, cluster `c1`,
/// fail closed, no portal provider, no managed model, and an EdDSA admin-token key with this
/// public key (base64url; empty when a test issues no tokens).
#[cfg(test)]
pub(crate) fn test_settings(public_key: String) -> SettingsResponse {
    SettingsResponse {
        protocol_version: atlasai_core::protocol::PROTOCOL_VERSION,
        etag: "\"1\"".into(),
        tenant_id: TenantId::parse("acme").expect("a valid tenant id"),
        cluster_id: "c1".into(),
        ai: None,
        scope: None,
        fallback_policy: FallbackPolicy::FailClosed,
        managed: None,
        pending_validations: vec![],
        admin_tokens: AdminTokenKey {
            algorithm: "EdDSA".into(),
            public_key,
            issuer: "atlasai-cp".into(),
            audience: "atlasai-tp".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const PKCS8_PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    const SEED: [u8; 32] = [3u8; 32];

    fn signer(seed: [u8; 32]) -> EncodingKey {
        let mut der = PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        EncodingKey::from_ed_der(&der)
    }

    fn state(managed: bool, portal_policy: Option<FallbackPolicy>) -> CpState {
        let public = ed25519_dalek::SigningKey::from_bytes(&SEED)
            .verifying_key()
            .to_bytes();
        let ai = portal_policy.map(|p| atlasai_core::portal::AiSettings {
            provider: "openai".into(),
            model: "m".into(),
            endpoint_url: Some("http://127.0.0.1:9/v1".into()),
            fallback_policy: p,
            ..Default::default()
        });
        let raw = SettingsResponse {
            fallback_policy: portal_policy.unwrap_or_default(),
            scope: ai.as_ref().map(|_| "tenant".to_owned()),
            ai,
            managed: managed.then(|| ManagedInfo {
                provider: "openai".into(),
                model: "gpt-4o-mini".into(),
            }),
            ..test_settings(URL_SAFE_NO_PAD.encode(public))
        };
        let s = CpState::default();
        s.publish(Snapshot::from_response(raw));
        s
    }

    fn claims(exp_in: i64, aud: &str, cluster: &str, role: &str) -> serde_json::Value {
        let now = crate::state::unix_now() as i64;
        json!({"sub": "u1", "iss": "atlasai-cp", "aud": aud, "exp": now + exp_in, "iat": now, "tenant": "acme", "cluster": cluster, "role": role})
    }

    #[test]
    fn admin_tokens_are_verified_strictly() {
        let s = state(false, None);
        let key = signer(SEED);
        let sign = |c: &serde_json::Value| {
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), c, &key).unwrap()
        };
        let good = sign(&claims(600, "atlasai-tp", "c1", "admin"));
        assert!(s.verify_admin_token(&good));
        assert!(s.verify_admin_token(&sign(&claims(600, "atlasai-tp", "c1", "owner"))));
        // Refused: expired, portal audience, another cluster, a viewer, another key, HS256,
        // alg none, a tampered signature.
        assert!(!s.verify_admin_token(&sign(&claims(-3600, "atlasai-tp", "c1", "admin"))));
        assert!(!s.verify_admin_token(&sign(&claims(600, "atlasai-cp", "c1", "admin"))));
        assert!(!s.verify_admin_token(&sign(&claims(600, "atlasai-tp", "c2", "admin"))));
        assert!(!s.verify_admin_token(&sign(&claims(600, "atlasai-tp", "c1", "viewer"))));
        let other = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims(600, "atlasai-tp", "c1", "admin"),
            &signer([4u8; 32]),
        )
        .unwrap();
        assert!(!s.verify_admin_token(&other));
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(600, "atlasai-tp", "c1", "admin"),
            &EncodingKey::from_secret(s.snapshot().unwrap().admin_key.public_key.as_bytes()),
        )
        .unwrap();
        assert!(!s.verify_admin_token(&hs));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims(600, "atlasai-tp", "c1", "admin").to_string())
        );
        assert!(!s.verify_admin_token(&none));
        let mut tampered = good.clone();
        tampered.pop();
        tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
        assert!(!s.verify_admin_token(&tampered));
        assert!(
            !CpState::default().verify_admin_token(&good),
            "no key before enrollment"
        );
    }

    #[test]
    fn cloud_fallback_needs_the_variable_the_connection_a_managed_model_and_the_policy() {
        let acme = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("globex").unwrap();
        let s = state(true, Some(FallbackPolicy::CloudFallback));
        assert!(
            !s.cloud_fallback_allowed(&acme),
            "AI_CREDITS_FAIL_OPEN unset"
        );
        s.set_fail_open(true);
        assert!(
            !s.cloud_fallback_allowed(&acme),
            "control plane not reachable"
        );
        s.set_connected(true);
        assert!(s.cloud_fallback_allowed(&acme));
        assert!(!s.cloud_fallback_allowed(&other), "another tenant");
        let closed = state(true, Some(FallbackPolicy::FailClosed));
        closed.set_fail_open(true);
        closed.set_connected(true);
        assert!(
            !closed.cloud_fallback_allowed(&acme),
            "the portal says fail closed"
        );
        let env_only = state(true, None);
        env_only.set_fail_open(true);
        env_only.set_connected(true);
        assert!(
            env_only.cloud_fallback_allowed(&acme),
            "no portal settings: the variable decides"
        );
        let no_managed = state(false, Some(FallbackPolicy::CloudFallback));
        no_managed.set_fail_open(true);
        no_managed.set_connected(true);
        assert!(
            !no_managed.cloud_fallback_allowed(&acme),
            "no managed model offered"
        );
    }
}

//! JSON Web Tokens: portal access tokens (audience `atlasai-cp`) and tenant-plane admin tokens
//! (audience `atlasai-tp`), both signed with one Ed25519 key. Verification accepts only
//! EdDSA, requires `exp`, `iss` and `aud`, and checks them; `none` and every other algorithm
//! are refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use atlasai_core::protocol::{AdminClaims, AdminTokenKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::SecretSeed;

/// The audience of portal access tokens.
pub const PORTAL_AUDIENCE: &str = "atlasai-cp";
/// The audience of tenant-plane admin tokens.
pub const TP_AUDIENCE: &str = "atlasai-tp";

/// The DER prefix of an Ed25519 private key in PKCS#8 v1 (RFC 8410), before the 32-byte seed.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A signing seed derived from the secret key, so a control plane without
/// `CP_JWT_SIGNING_KEY` still has one key shared by every replica. The label separates it from
/// the key's other use (encryption).
pub fn derive_seed(secret_key: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"atlasai-cp jwt signing key v1\0");
    h.update(secret_key);
    h.finalize().into()
}

/// The seed of an Ed25519 private key in PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
pub fn seed_from_pem(pem: &str) -> Option<[u8; 32]> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(body).ok()?;
    let seed = der.strip_prefix(&PKCS8_ED25519_PREFIX[..])?;
    seed.try_into().ok()
}

/// The claims of a portal access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// The user's tenant.
    pub tenant: String,
    /// The user's role.
    pub role: String,
}

/// Why a token was refused (the message is safe to show).
#[derive(Debug, thiserror::Error)]
#[error("invalid access token: {0}")]
pub struct TokenError(pub String);

/// The signing and verification keys.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_x: String,
    issuer: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("public_x", &self.public_x)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Keys {
    /// Keys from a seed.
    pub fn new(seed: &SecretSeed, issuer: &str) -> Self {
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&seed.0);
        let public = ed25519_dalek::SigningKey::from_bytes(&seed.0)
            .verifying_key()
            .to_bytes();
        Keys {
            encoding: EncodingKey::from_ed_der(&der),
            decoding: DecodingKey::from_ed_der(&public),
            public_x: URL_SAFE_NO_PAD.encode(public),
            issuer: issuer.to_owned(),
        }
    }

    /// What tenant planes need to verify admin tokens.
    pub fn admin_token_key(&self) -> AdminTokenKey {
        AdminTokenKey {
            algorithm: "EdDSA".to_owned(),
            public_key: self.public_x.clone(),
            issuer: self.issuer.clone(),
            audience: TP_AUDIENCE.to_owned(),
        }
    }

    /// Signs any claims.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &self.encoding)
            .map_err(|e| TokenError(format!("could not sign: {e}")))
    }

    /// A portal access token.
    pub fn issue_access(
        &self,
        user: &str,
        tenant: &str,
        role: &str,
        ttl: Duration,
    ) -> Result<String, TokenError> {
        let iat = now();
        self.sign(&AccessClaims {
            sub: user.to_owned(),
            iss: self.issuer.clone(),
            aud: PORTAL_AUDIENCE.to_owned(),
            exp: iat + ttl.as_secs(),
            iat,
            tenant: tenant.to_owned(),
            role: role.to_owned(),
        })
    }

    /// A tenant-plane admin token for one cluster.
    pub fn issue_tp_admin(
        &self,
        user: &str,
        tenant: &str,
        cluster: &str,
        role: &str,
        ttl: Duration,
    ) -> Result<(String, u64), TokenError> {
        let iat = now();
        let exp = iat + ttl.as_secs();
        let token = self.sign(&AdminClaims {
            sub: user.to_owned(),
            iss: self.issuer.clone(),
            aud: TP_AUDIENCE.to_owned(),
            exp,
            iat,
            tenant: tenant.to_owned(),
            cluster: cluster.to_owned(),
            role: role.to_owned(),
        })?;
        Ok((token, exp))
    }

    /// Verifies a portal access token.
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        verify(token, &self.decoding, &self.issuer, PORTAL_AUDIENCE)
    }
}

/// Verifies an EdDSA token for an issuer and audience. Shared with tests and mirrored by the
/// tenant plane.
pub fn verify<C: serde::de::DeserializeOwned>(
    token: &str,
    key: &DecodingKey,
    issuer: &str,
    audience: &str,
) -> Result<C, TokenError> {
    let mut v = Validation::new(Algorithm::EdDSA);
    v.algorithms = vec![Algorithm::EdDSA];
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 30;
    jsonwebtoken::decode::<C>(token, key, &v)
        .map(|d| d.claims)
        .map_err(|e| TokenError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys() -> Keys {
        Keys::new(&SecretSeed(derive_seed(&[1u8; 32])), "atlasai-cp")
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn a_valid_token_verifies() {
        let k = keys();
        let t = k
            .issue_access("u1", "acme", "admin", Duration::from_secs(60))
            .unwrap();
        let c = k.verify_access(&t).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.tenant.as_str(), c.role.as_str()),
            ("u1", "acme", "admin")
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let k = keys();
        let claims = json!({"sub":"u1","iss":"atlasai-cp","aud":"atlasai-cp","exp":now()+600,"iat":now(),"tenant":"acme","role":"owner"});
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg":"none","typ":"JWT"})),
            b64(&claims)
        );
        assert!(k.verify_access(&token).is_err());
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg":"None","typ":"JWT"})),
            b64(&claims)
        );
        assert!(k.verify_access(&token).is_err());
    }

    #[test]
    fn wrong_algorithm_is_refused_even_when_keyed_with_the_public_key() {
        // The classic confusion attack: HS256 "signed" with the public key's bytes.
        let k = keys();
        let claims = AccessClaims {
            sub: "u1".into(),
            iss: "atlasai-cp".into(),
            aud: PORTAL_AUDIENCE.into(),
            exp: now() + 600,
            iat: now(),
            tenant: "acme".into(),
            role: "owner".into(),
        };
        let public = URL_SAFE_NO_PAD.decode(&k.public_x).unwrap();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&public),
        )
        .unwrap();
        let err = k.verify_access(&token).unwrap_err();
        assert!(err.to_string().contains("invalid"), "{err}");
        // Another Ed25519 key is refused too.
        let other = Keys::new(&SecretSeed([9u8; 32]), "atlasai-cp");
        let forged = other.sign(&claims).unwrap();
        assert!(k.verify_access(&forged).is_err());
    }

    #[test]
    fn expired_wrong_audience_and_wrong_issuer_are_refused() {
        let k = keys();
        let base = AccessClaims {
            sub: "u1".into(),
            iss: "atlasai-cp".into(),
            aud: PORTAL_AUDIENCE.into(),
            exp: now() + 600,
            iat: now(),
            tenant: "acme".into(),
            role: "owner".into(),
        };
        let expired = AccessClaims {
            exp: now() - 3600,
            ..base.clone()
        };
        let err = k.verify_access(&k.sign(&expired).unwrap()).unwrap_err();
        assert!(err.to_string().contains("Expired"), "{err}");
        let tp = AccessClaims {
            aud: TP_AUDIENCE.into(),
            ..base.clone()
        };
        let err = k.verify_access(&k.sign(&tp).unwrap()).unwrap_err();
        assert!(err.to_string().contains("Audience"), "{err}");
        let iss = AccessClaims {
            iss: "someone-else".into(),
            ..base.clone()
        };
        let err = k.verify_access(&k.sign(&iss).unwrap()).unwrap_err();
        assert!(err.to_string().contains("Issuer"), "{err}");
        let no_exp = json!({"sub":"u1","iss":"atlasai-cp","aud":"atlasai-cp","tenant":"acme","role":"owner"});
        assert!(k.verify_access(&k.sign(&no_exp).unwrap()).is_err());
        assert!(k.verify_access(&k.sign(&base).unwrap()).is_ok());
    }

    #[test]
    fn pem_keys_are_read() {
        let seed = [5u8; 32];
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der)
        );
        assert_eq!(seed_from_pem(&pem), Some(seed));
        assert_eq!(seed_from_pem("nonsense"), None);
    }
}

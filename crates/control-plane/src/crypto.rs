//! Secrets at rest: AES-256-GCM under `CP_SECRET_KEY`, a fresh random 96-bit nonce for every
//! encryption, and the owner (tenant, cluster, field) bound in as associated data so a
//! ciphertext copied to another row does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::config::SecretKey;

/// Stored ciphertexts start with this, so a later key rotation can tell versions apart.
const VERSION: &str = "v1:";

/// Why a secret could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The system has no randomness to draw a nonce from.
    #[error("no system randomness for a nonce: {0}")]
    Random(String),
    /// Encryption failed (never happens with a valid key and sane sizes).
    #[error("encryption failed")]
    Encrypt,
    /// The stored value is not ours, was altered, belongs to another row, or the key changed.
    #[error(
        "a stored secret could not be decrypted (was CP_SECRET_KEY changed, or the row altered?)"
    )]
    Decrypt,
}

/// Encrypts and decrypts stored secrets.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox")
    }
}

impl SecretBox {
    /// A box for a key.
    pub fn new(key: &SecretKey) -> Self {
        SecretBox {
            cipher: Aes256Gcm::new(&key.0.into()),
        }
    }

    /// Encrypts `plain` for the owner described by `aad`; the result is printable text.
    pub fn seal(&self, plain: &[u8], aad: &str) -> Result<String, CryptoError> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce).map_err(|e| CryptoError::Random(e.to_string()))?;
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Encrypt)?;
        let mut out = Vec::with_capacity(12 + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!("{VERSION}{}", STANDARD.encode(out)))
    }

    /// Decrypts what [`SecretBox::seal`] produced for the same `aad`.
    pub fn open(&self, stored: &str, aad: &str) -> Result<Vec<u8>, CryptoError> {
        let body = stored.strip_prefix(VERSION).ok_or(CryptoError::Decrypt)?;
        let bytes = STANDARD.decode(body).map_err(|_| CryptoError::Decrypt)?;
        if bytes.len() < 12 + 16 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| CryptoError::Decrypt)?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_fresh_nonces_and_binds_the_owner() {
        let b = SecretBox::new(&SecretKey([7u8; 32]));
        let one = b.seal(b"sk-secret", "acme/tenant/api_key").unwrap();
        let two = b.seal(b"sk-secret", "acme/tenant/api_key").unwrap();
        assert_ne!(one, two, "every encryption uses a new nonce");
        assert!(!one.contains("sk-secret"));
        assert_eq!(b.open(&one, "acme/tenant/api_key").unwrap(), b"sk-secret");
        assert!(
            b.open(&one, "globex/tenant/api_key").is_err(),
            "another owner's row"
        );
        let other = SecretBox::new(&SecretKey([8u8; 32]));
        assert!(
            other.open(&one, "acme/tenant/api_key").is_err(),
            "another key"
        );
        let mut tampered = one.clone();
        tampered.pop();
        tampered.push('A');
        assert!(b.open(&tampered, "acme/tenant/api_key").is_err());
    }
}

//! Service-account authentication for Vertex AI: the JSON key file is parsed once, and OAuth
//! access tokens are obtained with the JWT bearer grant (RFC 7523) and cached until shortly
//! before they expire.
//!
//! Wire format, as Google's auth libraries implement it (google-auth-library-python
//! `google/oauth2/service_account.py` and `_client.py`): an RS256 JWT with header `kid` =
//! `private_key_id` and claims `iss` = `client_email`, `scope`, `aud` = the token URI, `iat`,
//! `exp` = `iat` + 3600, POSTed form-encoded as
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>` to the key's
//! `token_uri`; the answer is `{access_token, expires_in, token_type}` or
//! `{error, error_description}`.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atlasai_core::ProviderErrorKind;
use bytes::Bytes;
use http::HeaderMap;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::error::{ProviderError, kind_for_status};
use crate::http::{HttpOptions, read_json, send_with_retry};

/// The scope every Vertex AI call needs.
pub(super) const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint, for key files that do not name one.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google rejects assertions that live longer than an hour.
const ASSERTION_LIFETIME_SECS: u64 = 3600;
/// Tokens are refreshed this long before they expire, so that a request never leaves with a
/// token that expires in flight.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The parts of a service-account key file we use. The private key never leaves this struct
/// and is never printed.
pub(super) struct ServiceAccount {
    client_email: String,
    key_id: Option<String>,
    token_uri: Url,
    /// The project the account belongs to; used when no project is configured.
    pub(super) project_id: Option<String>,
    key: EncodingKey,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("key_id", &self.key_id)
            .field("token_uri", &self.token_uri.as_str())
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

fn key_error(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::Authentication, message)
        .with_code("invalid_service_account")
}

impl ServiceAccount {
    /// Parses the content of a JSON key file. Every error names the field that is wrong and
    /// none repeats any of the file's content.
    pub(super) fn parse(json: &str) -> Result<Self, ProviderError> {
        // Parse into a `Value` first: serde's typed errors can quote the offending value, and
        // that value could be the private key.
        let value: Value = serde_json::from_str(json.trim()).map_err(|e| {
            key_error(format!(
                "the service-account key is not valid JSON (line {}, column {}); paste the whole key file",
                e.line(),
                e.column()
            ))
        })?;
        let Some(obj) = value.as_object() else {
            return Err(key_error(
                "the service-account key is not a JSON object; paste the whole key file",
            ));
        };
        let text = |field: &str| -> Option<String> {
            obj.get(field)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        match text("type").as_deref() {
            None | Some("service_account") => {}
            Some(other) => {
                return Err(key_error(format!(
                    "the service-account key has type {other:?}; Vertex AI needs a key of type \"service_account\" (IAM > Service accounts > Keys > Add key > JSON)"
                )));
            }
        }
        let client_email = text("client_email")
            .ok_or_else(|| key_error("the service-account key has no client_email"))?;
        let pem = text("private_key")
            .ok_or_else(|| key_error("the service-account key has no private_key"))?;
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
            key_error(format!(
                "the service-account key's private_key is not a PEM-encoded RSA private key ({e})"
            ))
        })?;
        // Parsing the PEM only checks its outer structure; signing once proves the RSA key
        // itself is usable, so a broken key is reported now rather than on the first call.
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &Value::Null, &key).map_err(|e| {
            key_error(format!(
                "the service-account key's private_key cannot sign ({e}); download a new key"
            ))
        })?;
        let token_uri_text = text("token_uri").unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
        let token_uri = Url::parse(&token_uri_text)
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http"))
            .ok_or_else(|| {
                key_error(format!(
                    "the service-account key's token_uri {token_uri_text:?} is not an http(s) URL"
                ))
            })?;
        Ok(ServiceAccount {
            client_email,
            key_id: text("private_key_id"),
            token_uri,
            project_id: text("project_id"),
            key,
        })
    }

    /// The signed JWT that asks for an access token.
    fn assertion(&self, now: u64) -> Result<String, ProviderError> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            scope: &'a str,
            aud: &'a str,
            iat: u64,
            exp: u64,
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.key_id);
        let claims = Claims {
            iss: &self.client_email,
            scope: CLOUD_PLATFORM_SCOPE,
            aud: self.token_uri.as_str(),
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| {
            key_error(format!(
                "could not sign the token request with the service-account key's private_key ({e})"
            ))
        })
    }
}

/// A cached access token.
struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

/// Hands out access tokens, exchanging the service-account key for a new one only when the
/// cached token is about to expire or was rejected.
pub(super) struct TokenSource {
    account: ServiceAccount,
    http: reqwest::Client,
    opts: HttpOptions,
    // A tokio mutex held across the exchange: concurrent callers wait for one exchange instead
    // of each starting their own.
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub(super) fn new(account: ServiceAccount, http: reqwest::Client, opts: HttpOptions) -> Self {
        TokenSource {
            account,
            http,
            opts,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A valid access token: the cached one, or a new one from the token endpoint.
    pub(super) async fn token(&self) -> Result<SecretString, ProviderError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.exchange().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Whether a still-valid token is cached (so that a 401 may mean it was revoked).
    pub(super) async fn has_cached(&self) -> bool {
        self.cached
            .lock()
            .await
            .as_ref()
            .is_some_and(|c| Instant::now() < c.refresh_at)
    }

    /// Forgets the cached token, after Vertex rejected it.
    pub(super) async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn exchange(&self) -> Result<Cached, ProviderError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let assertion = self.account.assertion(now)?;
        let body: Bytes = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", JWT_BEARER_GRANT)
            .append_pair("assertion", &assertion)
            .finish()
            .into();
        let uri = &self.account.token_uri;
        let started = Instant::now();
        let resp = send_with_retry(&self.opts, false, map_token_error, || {
            let req = self
                .http
                .post(uri.clone())
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body.clone());
            async move { Ok(req) }
        })
        .await
        .map_err(|mut e| {
            e.message = format!(
                "could not get an access token for {} from {uri}: {}",
                self.account.client_email, e.message
            );
            e
        })?;
        let wire: TokenResponse = read_json(resp, "the token endpoint's response").await?;
        let token = wire.access_token.filter(|t| !t.is_empty()).ok_or_else(|| {
            ProviderError::invalid_response("the token endpoint's response has no access_token")
        })?;
        let lifetime = Duration::from_secs(wire.expires_in.unwrap_or(ASSERTION_LIFETIME_SECS));
        // Short-lived tokens (tests, some proxies) would always be "about to expire" with a
        // fixed margin, so the margin is at most half the lifetime.
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        Ok(Cached {
            token: SecretString::from(token),
            refresh_at: started + lifetime - margin,
        })
    }
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Reads an OAuth error (`{"error":"invalid_grant","error_description":"Invalid JWT
/// Signature."}`). Any 4xx from the token endpoint means the key itself is not accepted.
fn map_token_error(status: u16, _headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let description = parsed
        .as_ref()
        .and_then(|v| v.get("error_description"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let message = match (&error, description) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e.clone(),
        (None, Some(d)) => d,
        (None, None) => format!("HTTP {status} from the token endpoint"),
    };
    let kind = match status {
        429 => ProviderErrorKind::RateLimited,
        400..=499 => ProviderErrorKind::Authentication,
        other => kind_for_status(other),
    };
    let mut err = ProviderError::new(kind, message);
    err.code = error;
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_KEY: &str = atlasai_fakes::vertex::TEST_PRIVATE_KEY;

    fn key_json(fields: Value) -> String {
        fields.to_string()
    }

    #[test]
    fn key_errors_name_the_missing_field_and_never_repeat_the_key() {
        let full = serde_json::json!({
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "kid1",
            "private_key": TEST_KEY,
            "client_email": "sa@p.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        assert!(ServiceAccount::parse(&key_json(full.clone())).is_ok());

        let mut no_email = full.clone();
        no_email.as_object_mut().unwrap().remove("client_email");
        let err = ServiceAccount::parse(&key_json(no_email)).unwrap_err();
        assert_eq!(err.message, "the service-account key has no client_email");
        assert_eq!(err.kind, ProviderErrorKind::Authentication);

        let mut no_key = full.clone();
        no_key.as_object_mut().unwrap().remove("private_key");
        let err = ServiceAccount::parse(&key_json(no_key)).unwrap_err();
        assert_eq!(err.message, "the service-account key has no private_key");

        let mut bad_key = full.clone();
        bad_key["private_key"] = Value::from(
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n",
        );
        let err = ServiceAccount::parse(&key_json(bad_key)).unwrap_err();
        assert!(
            err.message
                .contains("private_key is not a PEM-encoded RSA private key"),
            "{err}"
        );
        assert!(!err.message.contains("c2VjcmV0"), "{err}");

        let mut user = full.clone();
        user["type"] = Value::from("authorized_user");
        let err = ServiceAccount::parse(&key_json(user)).unwrap_err();
        assert!(err.message.contains("\"authorized_user\""), "{err}");

        // A truncated paste: the error points at the position, not at the content.
        let text = key_json(full);
        let err = ServiceAccount::parse(&text[..text.len() / 2]).unwrap_err();
        assert!(
            err.message
                .starts_with("the service-account key is not valid JSON"),
            "{err}"
        );
        assert!(!err.message.contains("PRIVATE KEY"), "{err}");

        let dbg = format!("{:?}", ServiceAccount::parse(&text).unwrap());
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
    }

    #[test]
    fn assertion_carries_the_claims_google_checks() {
        let json = serde_json::json!({
            "type": "service_account",
            "private_key_id": "kid1",
            "private_key": TEST_KEY,
            "client_email": "sa@p.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        let account = ServiceAccount::parse(&json.to_string()).unwrap();
        let jwt = account.assertion(1_700_000_000).unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("kid1"));
        // The signature verifies with the key pair's public half.
        let public = atlasai_fakes::vertex::TEST_PUBLIC_KEY;
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap();
        let claims: Value = jsonwebtoken::decode(&jwt, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "sa@p.iam.gserviceaccount.com",
                "scope": CLOUD_PLATFORM_SCOPE,
                "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_700_000_000u64,
                "exp": 1_700_003_600u64,
            })
        );
    }

    #[test]
    fn token_endpoint_errors_are_authentication_failures_with_googles_reason() {
        let h = HeaderMap::new();
        let e = map_token_error(
            400,
            &h,
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::Authentication);
        assert_eq!(e.message, "invalid_grant: Invalid JWT Signature.");
        assert_eq!(e.code.as_deref(), Some("invalid_grant"));
        assert_eq!(
            map_token_error(503, &h, b"").kind,
            ProviderErrorKind::Unavailable
        );
    }
}

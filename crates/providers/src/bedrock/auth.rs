//! AWS credentials for Bedrock (static keys, or the default chain with a cache) and SigV4
//! signing of each request attempt.

use std::fmt;
use std::time::{Duration, SystemTime};

use atlasai_core::{AwsAuth, ProviderErrorKind};
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use secrecy::ExposeSecret;
use url::Url;

use crate::error::ProviderError;

/// The SigV4 service name for both the runtime and the control-plane API.
pub(crate) const SIGNING_NAME: &str = "bedrock";

/// Credentials are refreshed this long before they expire, so a request signed just before
/// expiry is not rejected in flight. Shorter-lived credentials refresh at half their life.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Where credentials come from.
enum Source {
    /// Keys from configuration; they never change.
    Static(Credentials),
    /// The default chain (environment, profile, web identity, ECS, IMDS) behind our own cache:
    /// the chain itself does not cache, and an uncached chain would call IMDS or the ECS agent
    /// on every request.
    Chain {
        provider: SharedCredentialsProvider,
        cached: tokio::sync::Mutex<Option<Cached>>,
    },
}

struct Cached {
    credentials: Credentials,
    refresh_at: Option<SystemTime>,
}

/// Resolves credentials and signs requests for one region.
pub(crate) struct Signer {
    source: Source,
    region: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Static(_) => "static keys",
            Source::Chain { .. } => "default credential chain",
        };
        f.debug_struct("Signer")
            .field("source", &source)
            .field("region", &self.region)
            .finish()
    }
}

impl Signer {
    /// Builds the credential source. The default chain is assembled here (which may read
    /// profile files) but asked for credentials only on the first request, so a briefly
    /// unreachable metadata service does not stop the client from being built.
    pub(crate) async fn new(auth: &AwsAuth, region: &str) -> Self {
        let source = match auth {
            AwsAuth::StaticKeys {
                access_key_id,
                secret_access_key,
                session_token,
            } => Source::Static(Credentials::new(
                access_key_id.clone(),
                secret_access_key.expose_secret().to_owned(),
                session_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned())
                    .filter(|t| !t.is_empty()),
                None,
                "atlasai-static-keys",
            )),
            AwsAuth::DefaultChain => {
                let region = Region::new(region.to_owned());
                // aws-config is built without its default HTTPS client (which would compile
                // aws-lc), so the chain's HTTP lookups (STS for web identity, the ECS agent,
                // IMDS) get a rustls client on ring. It also speaks plain HTTP, which the ECS
                // agent at 169.254.170.2 and loopback full URIs need.
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https();
                let config = ProviderConfig::default()
                    .with_http_client(http)
                    .with_behavior_version(Some(BehaviorVersion::latest()))
                    .with_region(Some(region.clone()));
                let chain = DefaultCredentialsChain::builder()
                    .configure(config)
                    .region(region)
                    .build()
                    .await;
                Source::Chain {
                    provider: SharedCredentialsProvider::new(chain),
                    cached: tokio::sync::Mutex::new(None),
                }
            }
        };
        Signer {
            source,
            region: region.to_owned(),
        }
    }

    /// Credentials for the next request: static keys, or the cached chain result, refreshed
    /// shortly before it expires. Concurrent callers wait for one refresh instead of each
    /// starting their own.
    pub(crate) async fn credentials(&self) -> Result<Credentials, ProviderError> {
        match &self.source {
            Source::Static(c) => Ok(c.clone()),
            Source::Chain { provider, cached } => {
                let mut slot = cached.lock().await;
                let now = SystemTime::now();
                if let Some(c) = slot.as_ref()
                    && c.refresh_at.is_none_or(|at| now < at)
                {
                    return Ok(c.credentials.clone());
                }
                let credentials = provider
                    .provide_credentials()
                    .await
                    .map_err(|e| credentials_error(&e))?;
                let refresh_at = credentials.expiry().map(|exp| refresh_time(now, exp));
                *slot = Some(Cached {
                    credentials: credentials.clone(),
                    refresh_at,
                });
                Ok(credentials)
            }
        }
    }

    /// Signs one request with SigV4 and returns the headers to add (`authorization`,
    /// `x-amz-date`, and `x-amz-security-token` for temporary credentials). `url` must be
    /// percent-encoded once; aws-sigv4 encodes the canonical path a second time, as every
    /// service but S3 expects.
    pub(crate) fn sign(
        &self,
        credentials: &Credentials,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        body: &[u8],
        time: SystemTime,
    ) -> Result<Vec<(&'static str, String)>, ProviderError> {
        let identity: Identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SIGNING_NAME)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing_error(&e))?
            .into();
        let request = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| signing_error(&e))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| signing_error(&e))?
            .into_parts();
        let (headers, _params) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|h| (h.name(), h.value().to_owned()))
            .collect())
    }
}

/// When to refresh credentials that expire at `expiry`: `REFRESH_MARGIN` before, or halfway
/// for credentials that live shorter than twice the margin, so that a short-lived answer does
/// not make every request fetch again.
fn refresh_time(now: SystemTime, expiry: SystemTime) -> SystemTime {
    let life = expiry.duration_since(now).unwrap_or(Duration::ZERO);
    let margin = REFRESH_MARGIN.min(life / 2);
    expiry.checked_sub(margin).unwrap_or(now)
}

/// A failure of the credential chain. Its messages name the providers tried and why each
/// failed; they never contain key material.
fn credentials_error(e: &aws_credential_types::provider::error::CredentialsError) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Authentication,
        format!("could not load AWS credentials: {}", error_chain(e)),
    )
    .with_code("credentials")
}

/// An error and its sources joined with `: `, the way operators read causes. (aws-smithy's
/// `DisplayErrorContext` appends a `Debug` dump, which is noise in a status page.)
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Wrappers often repeat their source's text; say it once.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn signing_error(e: &dyn std::error::Error) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::BadRequest,
        format!("could not sign the request: {e}"),
    )
    .with_code("signing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_refresh_before_expiry_and_short_lived_ones_halfway() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = now + Duration::from_secs(3600);
        assert_eq!(refresh_time(now, hour), hour - REFRESH_MARGIN);
        let two_minutes = now + Duration::from_secs(120);
        assert_eq!(
            refresh_time(now, two_minutes),
            now + Duration::from_secs(60)
        );
        let past = now - Duration::from_secs(10);
        assert!(refresh_time(now, past) <= now);
    }

    #[tokio::test]
    async fn signing_adds_the_date_the_token_and_a_signature_over_the_encoded_path() {
        let auth = AwsAuth::StaticKeys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("session-token-1".into()),
        };
        let signer = Signer::new(&auth, "eu-west-1").await;
        let creds = signer.credentials().await.unwrap();
        let url = Url::parse(
            "https://bedrock-runtime.eu-west-1.amazonaws.com/model/anthropic.claude-v2%3A1/converse",
        )
        .unwrap();
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let headers = signer
            .sign(
                &creds,
                "POST",
                &url,
                &[("content-type", "application/json")],
                b"{}",
                time,
            )
            .unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("x-amz-date").as_deref(), Some("20231114T221320Z"));
        assert_eq!(
            get("x-amz-security-token").as_deref(),
            Some("session-token-1")
        );
        let auth = get("authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
            ),
            "{auth}"
        );
    }
}

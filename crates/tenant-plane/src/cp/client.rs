//! HTTP calls to the control plane. Every call after enrollment presents the cluster's
//! credential; errors say which call failed and why, never with the credential in them.

use std::time::Duration;

use atlasai_core::portal::WireSecret;
use atlasai_core::protocol::{
    self, EnrollRequest, EnrollResponse, ErrorBody, ManagedChatRequest, ManagedChatResponse,
    SettingsResponse, StatusReport, UsageAck, UsageReport, ValidationResult,
};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// A failed call to the control plane.
#[derive(Debug, thiserror::Error)]
pub enum CpError {
    /// It could not be reached (or answered with a server error): keep the last settings.
    #[error("control plane unreachable during {what}: {detail}")]
    Unreachable {
        /// The call.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// It refused the call.
    #[error("control plane refused {what} with HTTP {status}: {message}")]
    Refused {
        /// The call.
        what: &'static str,
        /// The status.
        status: u16,
        /// Its message.
        message: String,
    },
}

impl CpError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            CpError::Refused { status, .. } => Some(*status),
            CpError::Unreachable { .. } => None,
        }
    }
}

/// A reqwest client for the control plane (system trust store is not used: rustls with
/// webpki roots through reqwest's defaults).
pub fn http_client() -> Result<reqwest::Client, CpError> {
    atlasai_providers::http::install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("atlasai-tp/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CpError::Unreachable {
            what: "building the HTTP client",
            detail: e.to_string(),
        })
}

fn join(base: &Url, path: &str) -> Result<Url, CpError> {
    let text = format!("{}{path}", base.as_str().trim_end_matches('/'));
    Url::parse(&text).map_err(|e| CpError::Unreachable {
        what: "forming a URL",
        detail: e.to_string(),
    })
}

async fn refused(what: &'static str, resp: reqwest::Response) -> CpError {
    let status = resp.status().as_u16();
    let message = match resp.json::<ErrorBody>().await {
        Ok(b) => b.error,
        Err(_) => "no details".to_owned(),
    };
    if status >= 500 {
        CpError::Unreachable {
            what,
            detail: format!("HTTP {status}: {message}"),
        }
    } else {
        CpError::Refused {
            what,
            status,
            message,
        }
    }
}

fn transport(what: &'static str) -> impl Fn(reqwest::Error) -> CpError {
    move |e| {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail.push_str(&format!(": {s}"));
            source = s.source();
        }
        CpError::Unreachable { what, detail }
    }
}

/// Enrolls with a one-time token.
pub async fn enroll(
    http: &reqwest::Client,
    base: &Url,
    token: &SecretString,
) -> Result<EnrollResponse, CpError> {
    let what = "enrollment";
    let resp = http
        .post(join(base, protocol::ENROLL_PATH)?)
        .timeout(Duration::from_secs(30))
        .json(&EnrollRequest {
            enroll_token: WireSecret(token.clone()),
            tp_version: env!("CARGO_PKG_VERSION").to_owned(),
        })
        .send()
        .await
        .map_err(transport(what))?;
    if resp.status() != StatusCode::CREATED {
        return Err(refused(what, resp).await);
    }
    resp.json().await.map_err(transport(what))
}

/// An enrolled connection.
#[derive(Debug)]
pub struct CpLink {
    http: reqwest::Client,
    /// The control plane's base URL.
    pub base: Url,
    credential: SecretString,
    /// This cluster.
    pub cluster_id: String,
    /// Its tenant.
    pub tenant_id: String,
}

/// The answer to a settings poll.
#[derive(Debug)]
pub enum Poll {
    /// Unchanged since the ETag sent.
    NotModified,
    /// New settings.
    Changed(Box<SettingsResponse>),
}

impl CpLink {
    /// A link with a credential.
    pub fn new(
        http: reqwest::Client,
        base: Url,
        credential: SecretString,
        cluster_id: String,
        tenant_id: String,
    ) -> Self {
        CpLink {
            http,
            base,
            credential,
            cluster_id,
            tenant_id,
        }
    }

    fn post(&self, path: &str) -> Result<reqwest::RequestBuilder, CpError> {
        Ok(self
            .http
            .post(join(&self.base, path)?)
            .bearer_auth(self.credential.expose_secret()))
    }

    /// Long-polls the settings.
    pub async fn poll(&self, etag: Option<&str>, wait: Duration) -> Result<Poll, CpError> {
        let what = "the settings poll";
        let mut url = join(&self.base, protocol::SETTINGS_PATH)?;
        url.query_pairs_mut()
            .append_pair("wait", &wait.as_secs().to_string());
        let mut req = self
            .http
            .get(url)
            .bearer_auth(self.credential.expose_secret())
            .timeout(wait + Duration::from_secs(30));
        if let Some(e) = etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, e);
        }
        let resp = req.send().await.map_err(transport(what))?;
        match resp.status() {
            StatusCode::NOT_MODIFIED => Ok(Poll::NotModified),
            StatusCode::OK => Ok(Poll::Changed(Box::new(
                resp.json().await.map_err(transport(what))?,
            ))),
            _ => Err(refused(what, resp).await),
        }
    }

    /// Reports status.
    pub async fn status(&self, report: &StatusReport) -> Result<(), CpError> {
        let what = "the status report";
        let resp = self
            .post(protocol::STATUS_PATH)?
            .timeout(Duration::from_secs(30))
            .json(report)
            .send()
            .await
            .map_err(transport(what))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(refused(what, resp).await)
        }
    }

    /// Reports usage.
    pub async fn usage(&self, report: &UsageReport) -> Result<UsageAck, CpError> {
        let what = "the usage report";
        let resp = self
            .post(protocol::USAGE_PATH)?
            .timeout(Duration::from_secs(30))
            .json(report)
            .send()
            .await
            .map_err(transport(what))?;
        if resp.status().is_success() {
            resp.json().await.map_err(transport(what))
        } else {
            Err(refused(what, resp).await)
        }
    }

    /// Reports a validation's outcome.
    pub async fn validation(&self, id: &str, result: &ValidationResult) -> Result<(), CpError> {
        let what = "a validation result";
        let resp = self
            .post(&protocol::validation_path(id))?
            .timeout(Duration::from_secs(30))
            .json(result)
            .send()
            .await
            .map_err(transport(what))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(refused(what, resp).await)
        }
    }

    /// Asks the managed model.
    pub async fn managed_chat(
        &self,
        req: &ManagedChatRequest,
        timeout: Duration,
    ) -> Result<ManagedChatResponse, CpError> {
        let what = "a managed-model request";
        let resp = self
            .post(protocol::MANAGED_CHAT_PATH)?
            .timeout(timeout)
            .json(req)
            .send()
            .await
            .map_err(transport(what))?;
        if resp.status().is_success() {
            resp.json().await.map_err(transport(what))
        } else {
            Err(refused(what, resp).await)
        }
    }

    /// The managed endpoint's URL, for provider info.
    pub fn managed_url(&self) -> Url {
        join(&self.base, protocol::MANAGED_CHAT_PATH).unwrap_or_else(|_| self.base.clone())
    }
}

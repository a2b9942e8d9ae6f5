//! AI settings as the portal stores and distributes them (one flat record per tenant or
//! cluster), and their validation into the [`ProviderSettings`] a provider client is built
//! from. Both planes use the same rules: the control plane when a setting is saved, the tenant
//! plane when it receives one.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::provider::ProviderKind;
use crate::settings::{
    AwsAuth, DEFAULT_AZURE_API_VERSION, DEFAULT_BEDROCK_EMBEDDING_MODEL,
    DEFAULT_OPENAI_EMBEDDING_MODEL, EmbeddingSettings, FallbackPolicy, OPENAI_BASE_URL,
    ProviderSettings, RedactionPolicy,
};

/// A secret inside a protocol message or stored record. Serialises as the plain string
/// (it only ever travels over the authenticated control-plane channel or into the encrypted
/// column), but never shows in `Debug`.
#[derive(Clone)]
pub struct WireSecret(pub SecretString);

impl WireSecret {
    /// Wraps a string.
    pub fn new(s: impl Into<String>) -> Self {
        WireSecret(SecretString::from(s.into()))
    }

    /// The secret text.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for WireSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl PartialEq for WireSecret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Serialize for WireSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for WireSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(WireSecret::new)
    }
}

/// The AI settings of one tenant or cluster, with secrets. Field names are the portal
/// form's and the API's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiSettings {
    /// `openai`, `azure`, `bedrock`, `anthropic`, `vertex`, `ollama`, `vllm`,
    /// `openai-compatible`.
    pub provider: String,
    /// The model; for Azure the deployment name; for Bedrock the model id.
    pub model: String,
    /// Base URL (Azure resource, self-hosted server, VPC or private endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The API key (for Vertex: not used; see `vertex_service_account_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<WireSecret>,
    /// OpenAI organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Azure API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// AWS region (Bedrock) or Vertex location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Bedrock access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_access_key_id: Option<String>,
    /// Bedrock secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secret_access_key: Option<WireSecret>,
    /// Bedrock session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_session_token: Option<WireSecret>,
    /// Bedrock through the tenant plane's own AWS role (ECS task role, instance profile,
    /// IRSA). Only a tenant plane can check this, never the control plane.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bedrock_use_task_role: bool,
    /// Google Cloud project (Vertex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_project: Option<String>,
    /// The Vertex service-account JSON key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertex_service_account_key: Option<WireSecret>,
    /// `openai`, `bedrock` or `fallback` (keyword search only). Unset: keyword search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_provider: Option<String>,
    /// The embedding model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_model: Option<String>,
    /// The embedding endpoint (OpenAI-compatible base URL or Bedrock endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_endpoint_url: Option<String>,
    /// The embedding API key; the chat key is used when unset and the providers match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_api_key: Option<WireSecret>,
    /// What happens when the provider is down.
    #[serde(default)]
    pub fallback_policy: FallbackPolicy,
    /// Prompt redaction for this tenant: `auto` (public endpoints), `on` or `off`; `None`
    /// leaves it to the tenant plane (`TP_REDACTION`, default auto). A tenant plane set to
    /// `on` or `off` locally keeps its own setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redaction: Option<RedactionPolicy>,
}

/// The names of the secret fields, for write-only handling in APIs.
pub const SECRET_FIELDS: [&str; 5] = [
    "api_key",
    "aws_secret_access_key",
    "aws_session_token",
    "vertex_service_account_key",
    "embedding_api_key",
];

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field, as named in [`AiSettings`].
    pub field: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Settings that passed validation, ready to build clients from.
#[derive(Debug, Clone)]
pub struct ValidatedSettings {
    /// The chat provider.
    pub chat: ProviderSettings,
    /// The embedding backend.
    pub embeddings: EmbeddingSettings,
    /// The fallback policy.
    pub fallback_policy: FallbackPolicy,
    /// Prompt redaction, when the portal sets it.
    pub redaction: Option<RedactionPolicy>,
    /// Every URL a client built from these settings will call first: the chat endpoint, the
    /// embedding endpoint, and a Vertex key's `token_uri`. The control plane checks each one
    /// against its private-network guard.
    pub urls: Vec<Url>,
    /// Whether only a tenant plane can check these settings (Bedrock with the tenant plane's
    /// own AWS role).
    pub needs_tenant_plane: bool,
}

impl AiSettings {
    /// Every secret in these settings, for redaction.
    pub fn secrets(&self) -> Vec<SecretString> {
        [
            &self.api_key,
            &self.aws_secret_access_key,
            &self.aws_session_token,
            &self.vertex_service_account_key,
            &self.embedding_api_key,
        ]
        .into_iter()
        .flatten()
        .map(|s| s.0.clone())
        .collect()
    }

    /// Checks every field, collecting every problem, and builds the client settings.
    pub fn validate(&self) -> Result<ValidatedSettings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut err = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.to_owned(),
                message,
            });
        };
        let kind = match self.provider.parse::<ProviderKind>() {
            Ok(k) => Some(k),
            Err(e) => {
                err("provider", e.to_string());
                None
            }
        };
        let model = self.model.trim();
        if model.is_empty() {
            err(
                "model",
                "is required (for Azure: the deployment name)".to_owned(),
            );
        } else if model.len() > 256 || model.chars().any(char::is_control) {
            err(
                "model",
                "must be at most 256 characters without control characters".to_owned(),
            );
        }
        let endpoint = match non_empty(&self.endpoint_url) {
            Some(text) => match kind.map(|k| normalise_endpoint(k, text)) {
                Some(Ok(u)) => Some(u),
                Some(Err(m)) => {
                    err("endpoint_url", m);
                    None
                }
                None => None,
            },
            None => None,
        };
        let api_key = self
            .api_key
            .as_ref()
            .filter(|k| !k.expose().trim().is_empty())
            .map(|k| SecretString::from(k.expose().trim().to_owned()));
        let region = non_empty(&self.region).map(str::to_owned);
        if let Some(r) = &region
            && !valid_region(r)
        {
            err(
                "region",
                format!("{r:?} is not a region; use for example us-east-1 or us-central1"),
            );
        }
        let mut chat = ProviderSettings::new(kind.unwrap_or(ProviderKind::OpenAi), model);
        chat.endpoint = endpoint.clone();
        chat.region = region.clone();
        let mut needs_tenant_plane = false;
        let mut urls = Vec::new();
        if let Some(kind) = kind {
            match kind {
                ProviderKind::OpenAi
                | ProviderKind::Ollama
                | ProviderKind::Vllm
                | ProviderKind::OpenAiCompatible => {
                    let self_hosted = kind.is_self_hosted() || self.endpoint_url_set();
                    if self_hosted && !self.endpoint_url_set() {
                        err(
                            "endpoint_url",
                            format!(
                                "is required for provider {kind}: the server's OpenAI-compatible base URL, for example http://vllm-server:8000/v1"
                            ),
                        );
                    }
                    if !self_hosted && api_key.is_none() {
                        err("api_key", "is required for provider openai (or set endpoint_url for an OpenAI-compatible server)".to_owned());
                    }
                    chat.api_key = api_key.clone();
                    chat.organization = non_empty(&self.organization).map(str::to_owned);
                    urls.push(
                        endpoint
                            .clone()
                            .unwrap_or_else(|| parse_static(OPENAI_BASE_URL)),
                    );
                }
                ProviderKind::Azure => {
                    if !self.endpoint_url_set() {
                        err("endpoint_url", "is required for provider azure: your resource endpoint, for example https://your-resource-name.openai.azure.com".to_owned());
                    }
                    if api_key.is_none() {
                        err("api_key", "is required for provider azure".to_owned());
                    }
                    let version = non_empty(&self.api_version)
                        .unwrap_or(DEFAULT_AZURE_API_VERSION)
                        .to_owned();
                    if !valid_api_version(&version) {
                        err(
                            "api_version",
                            format!(
                                "{version:?} is not an Azure OpenAI API version; use a date such as {DEFAULT_AZURE_API_VERSION} or 2024-02-15-preview"
                            ),
                        );
                    }
                    chat.api_key = api_key.clone();
                    chat.api_version = Some(version);
                    urls.extend(endpoint.clone());
                }
                ProviderKind::Anthropic => {
                    if api_key.is_none() {
                        err("api_key", "is required for provider anthropic".to_owned());
                    }
                    chat.api_key = api_key.clone();
                    urls.push(
                        endpoint
                            .clone()
                            .unwrap_or_else(|| parse_static(crate::ANTHROPIC_BASE_URL)),
                    );
                }
                ProviderKind::Bedrock => {
                    if region.is_none() {
                        err(
                            "region",
                            "is required for provider bedrock, for example us-east-1".to_owned(),
                        );
                    }
                    let id = non_empty(&self.aws_access_key_id);
                    let secret = self
                        .aws_secret_access_key
                        .as_ref()
                        .filter(|s| !s.expose().trim().is_empty());
                    chat.aws = match (id, secret, self.bedrock_use_task_role) {
                        (Some(_), _, true) | (_, Some(_), true) => {
                            err("bedrock_use_task_role", "credentials are given twice: access keys and the task role; use one".to_owned());
                            None
                        }
                        (Some(id), Some(secret), false) => Some(AwsAuth::StaticKeys {
                            access_key_id: id.to_owned(),
                            secret_access_key: SecretString::from(
                                secret.expose().trim().to_owned(),
                            ),
                            session_token: self
                                .aws_session_token
                                .as_ref()
                                .filter(|t| !t.expose().trim().is_empty())
                                .map(|t| SecretString::from(t.expose().trim().to_owned())),
                        }),
                        (Some(_), None, false) => {
                            err(
                                "aws_secret_access_key",
                                "is required with aws_access_key_id".to_owned(),
                            );
                            None
                        }
                        (None, Some(_), false) => {
                            err(
                                "aws_access_key_id",
                                "is required with aws_secret_access_key".to_owned(),
                            );
                            None
                        }
                        (None, None, true) => {
                            needs_tenant_plane = true;
                            Some(AwsAuth::DefaultChain)
                        }
                        (None, None, false) => {
                            err("aws_access_key_id", "Bedrock needs credentials: aws_access_key_id and aws_secret_access_key, or bedrock_use_task_role".to_owned());
                            None
                        }
                    };
                    match &endpoint {
                        Some(e) => urls.push(e.clone()),
                        None => urls.extend(region.as_ref().and_then(|r| {
                            Url::parse(&format!("https://bedrock-runtime.{r}.amazonaws.com")).ok()
                        })),
                    }
                }
                ProviderKind::Vertex => {
                    if non_empty(&self.gcp_project).is_none() {
                        err("gcp_project", "is required for provider vertex".to_owned());
                    }
                    if region.is_none() {
                        err(
                            "region",
                            "is required for provider vertex, for example us-central1".to_owned(),
                        );
                    }
                    let key = self
                        .vertex_service_account_key
                        .as_ref()
                        .filter(|k| !k.expose().trim().is_empty());
                    match key {
                        None => err(
                            "vertex_service_account_key",
                            "is required for provider vertex: the service account's JSON key"
                                .to_owned(),
                        ),
                        Some(k) => match vertex_token_uri(k.expose()) {
                            Ok(u) => urls.push(u),
                            Err(m) => err("vertex_service_account_key", m),
                        },
                    }
                    chat.gcp_project = non_empty(&self.gcp_project).map(str::to_owned);
                    chat.service_account = key.map(|k| SecretString::from(k.expose().to_owned()));
                    match &endpoint {
                        Some(e) => urls.push(e.clone()),
                        None => urls.extend(region.as_ref().and_then(|r| {
                            Url::parse(&format!("https://{r}-aiplatform.googleapis.com")).ok()
                        })),
                    }
                }
            }
            if kind != ProviderKind::Azure && non_empty(&self.api_version).is_some() {
                err("api_version", format!("only applies to azure, not {kind}"));
            }
        }
        let embeddings = self.embeddings(&chat, &mut err, &mut urls);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ValidatedSettings {
            chat,
            embeddings,
            fallback_policy: self.fallback_policy,
            redaction: self.redaction,
            urls,
            needs_tenant_plane,
        })
    }

    fn endpoint_url_set(&self) -> bool {
        non_empty(&self.endpoint_url).is_some()
    }

    fn embeddings(
        &self,
        chat: &ProviderSettings,
        err: &mut impl FnMut(&str, String),
        urls: &mut Vec<Url>,
    ) -> EmbeddingSettings {
        let provider = non_empty(&self.embedding_provider).unwrap_or("fallback");
        let model = non_empty(&self.embedding_model).map(str::to_owned);
        let endpoint = match non_empty(&self.embedding_endpoint_url) {
            Some(text) => match normalise_endpoint(ProviderKind::OpenAiCompatible, text) {
                Ok(u) => Some(u),
                Err(m) => {
                    err("embedding_endpoint_url", m);
                    None
                }
            },
            None => None,
        };
        let key = self
            .embedding_api_key
            .as_ref()
            .filter(|k| !k.expose().trim().is_empty())
            .map(|k| SecretString::from(k.expose().trim().to_owned()));
        match provider {
            "fallback" => EmbeddingSettings::Fallback,
            "openai" => {
                let endpoint = endpoint.unwrap_or_else(|| parse_static(OPENAI_BASE_URL));
                let key = key.or_else(|| {
                    (chat.kind.dialect() == crate::Dialect::OpenAi)
                        .then(|| chat.api_key.clone())
                        .flatten()
                });
                urls.push(endpoint.clone());
                let azure = endpoint
                    .host_str()
                    .is_some_and(|h| h.ends_with(".openai.azure.com"));
                EmbeddingSettings::OpenAi {
                    model: model.unwrap_or_else(|| DEFAULT_OPENAI_EMBEDDING_MODEL.to_owned()),
                    endpoint,
                    api_key: key,
                    azure_api_version: azure.then(|| {
                        chat.api_version
                            .clone()
                            .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned())
                    }),
                }
            }
            "bedrock" => {
                let Some(region) = chat.region.clone() else {
                    err(
                        "embedding_provider",
                        "bedrock embeddings need the region field".to_owned(),
                    );
                    return EmbeddingSettings::Fallback;
                };
                let Some(aws) = chat.aws.clone() else {
                    err("embedding_provider", "bedrock embeddings use the Bedrock credentials; set provider bedrock with its credentials".to_owned());
                    return EmbeddingSettings::Fallback;
                };
                urls.extend(endpoint.clone());
                EmbeddingSettings::Bedrock {
                    model: model.unwrap_or_else(|| DEFAULT_BEDROCK_EMBEDDING_MODEL.to_owned()),
                    region,
                    endpoint,
                    aws,
                }
            }
            other => {
                err(
                    "embedding_provider",
                    format!(
                        "{other:?} is not an embedding provider; use openai, bedrock or fallback"
                    ),
                );
                EmbeddingSettings::Fallback
            }
        }
    }
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

#[expect(
    clippy::expect_used,
    reason = "only called with the crate's constant, well-formed base URLs"
)]
fn parse_static(s: &'static str) -> Url {
    Url::parse(s).expect("constant URL")
}

/// Whether a text looks like a cloud region or location (`us-east-1`, `us-central1`, `global`).
pub fn valid_region(r: &str) -> bool {
    r == "global"
        || (!r.is_empty()
            && r.len() <= 32
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && r.bytes().any(|b| b.is_ascii_digit()))
}

/// Whether a text is an Azure OpenAI API version (`2024-10-21`, `2024-02-15-preview`).
pub fn valid_api_version(v: &str) -> bool {
    let b = v.as_bytes();
    let date = b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    (date && (b.len() == 10 || &v[10..] == "-preview")) || v == "preview" || v == "latest"
}

/// Parses and normalises an endpoint URL for a provider, the same way the tenant plane treats
/// `BYOC_ENDPOINT_URL`.
pub fn normalise_endpoint(kind: ProviderKind, text: &str) -> Result<Url, String> {
    let mut url = match Url::parse(text.trim()) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => u,
        _ => {
            return Err(format!(
                "{text:?} is not an http(s) URL; use for example https://your-resource-name.openai.azure.com or http://vllm-server:8000/v1"
            ));
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not contain credentials; put the key in api_key".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL must not have a query string or fragment".to_owned());
    }
    let path = url.path().trim_end_matches('/').to_owned();
    match kind {
        ProviderKind::Azure => {
            if path.contains("/openai/deployments") {
                return Err("use the resource endpoint (https://your-resource-name.openai.azure.com), not a deployment URL; put the deployment name in model".to_owned());
            }
            if !(path.is_empty() || path.ends_with("/openai/v1")) {
                return Err(format!(
                    "unexpected path {path:?}; use the resource endpoint (https://your-resource-name.openai.azure.com) or the v1 API (…/openai/v1)"
                ));
            }
        }
        ProviderKind::OpenAi
        | ProviderKind::Ollama
        | ProviderKind::Vllm
        | ProviderKind::OpenAiCompatible => {
            let base = path.trim_end_matches("/chat/completions");
            let base = if base.is_empty() { "/v1" } else { base };
            url.set_path(base);
        }
        _ => {}
    }
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(if trimmed.is_empty() { "/" } else { &trimmed });
    Ok(url)
}

/// The `token_uri` of a Vertex service-account key (Google's default when absent).
fn vertex_token_uri(key_json: &str) -> Result<Url, String> {
    let value: serde_json::Value = serde_json::from_str(key_json)
        .map_err(|_| "is not a JSON service-account key".to_owned())?;
    let text = value
        .get("token_uri")
        .and_then(|v| v.as_str())
        .unwrap_or("https://oauth2.googleapis.com/token");
    match Url::parse(text) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(u),
        _ => Err(format!(
            "the key's token_uri {text:?} is not an http(s) URL"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openai_compatible(endpoint: &str) -> AiSettings {
        AiSettings {
            provider: "openai".into(),
            model: "llama3.2".into(),
            endpoint_url: Some(endpoint.into()),
            ..AiSettings::default()
        }
    }

    #[test]
    fn every_problem_is_reported_by_field() {
        let s = AiSettings {
            provider: "azure".into(),
            model: String::new(),
            api_version: Some("yesterday".into()),
            ..AiSettings::default()
        };
        let errs = s.validate().unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["model", "endpoint_url", "api_key", "api_version"],
            "{errs:?}"
        );
        let bad = AiSettings {
            provider: "openia".into(),
            model: "m".into(),
            ..AiSettings::default()
        };
        let errs = bad.validate().unwrap_err();
        assert!(errs[0].message.contains("valid providers are"), "{errs:?}");
    }

    #[test]
    fn endpoints_are_normalised_and_collected_for_the_guard() {
        let v = openai_compatible("http://gpu-server.internal:8000/v1/chat/completions")
            .validate()
            .unwrap();
        assert_eq!(
            v.chat.endpoint.as_ref().unwrap().as_str(),
            "http://gpu-server.internal:8000/v1"
        );
        assert_eq!(v.urls.len(), 1);
        let err = openai_compatible("http://user:pw@host/v1")
            .validate()
            .unwrap_err();
        assert_eq!(err[0].field, "endpoint_url");
    }

    #[test]
    fn bedrock_task_role_needs_a_tenant_plane_and_vertex_token_uri_is_checked() {
        let s = AiSettings {
            provider: "bedrock".into(),
            model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
            region: Some("us-east-1".into()),
            bedrock_use_task_role: true,
            ..AiSettings::default()
        };
        assert!(s.validate().unwrap().needs_tenant_plane);
        let v = AiSettings {
            provider: "vertex".into(),
            model: "gemini-2.0-flash".into(),
            region: Some("us-central1".into()),
            gcp_project: Some("p".into()),
            vertex_service_account_key: Some(WireSecret::new(
                r#"{"token_uri":"http://10.0.0.1/token"}"#,
            )),
            ..AiSettings::default()
        }
        .validate()
        .unwrap();
        assert!(
            v.urls.iter().any(|u| u.host_str() == Some("10.0.0.1")),
            "{:?}",
            v.urls
        );
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = AiSettings {
            api_key: Some(WireSecret::new("sk-very-secret-value")),
            ..AiSettings::default()
        };
        assert!(!format!("{s:?}").contains("sk-very-secret-value"));
        assert!(
            serde_json::to_string(&s)
                .unwrap()
                .contains("sk-very-secret-value")
        );
    }
}

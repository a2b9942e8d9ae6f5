//! AI settings as resolved from configuration: what a provider client is built from.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::provider::ProviderKind;

/// The Azure OpenAI data-plane API version used when none is configured (a GA version).
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";
/// The embedding model used with `EMBEDDING_PROVIDER=openai` when none is configured.
pub const DEFAULT_OPENAI_EMBEDDING_MODEL: &str = "text-embedding-3-small";
/// The embedding model used with `EMBEDDING_PROVIDER=bedrock` when none is configured.
pub const DEFAULT_BEDROCK_EMBEDDING_MODEL: &str = "amazon.titan-embed-text-v2:0";
/// OpenAI's public API base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Anthropic's public API base URL.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// Everything needed to build a chat provider client.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Which provider.
    pub kind: ProviderKind,
    /// The model id; for Azure the deployment name; for Bedrock the model or inference
    /// profile id.
    pub model: String,
    /// Base URL override (`BYOC_ENDPOINT_URL`), already normalised.
    pub endpoint: Option<Url>,
    /// The API key, when the provider uses one.
    pub api_key: Option<SecretString>,
    /// OpenAI organization (`BYOC_API_KEY_ORG`).
    pub organization: Option<String>,
    /// Azure API version.
    pub api_version: Option<String>,
    /// AWS region for Bedrock; location for Vertex.
    pub region: Option<String>,
    /// AWS credentials for Bedrock.
    pub aws: Option<AwsAuth>,
    /// Google Cloud project for Vertex.
    pub gcp_project: Option<String>,
    /// Vertex service-account key (the JSON key file's content).
    pub service_account: Option<SecretString>,
}

impl ProviderSettings {
    /// Settings with only a kind and model; the rest empty.
    pub fn new(kind: ProviderKind, model: impl Into<String>) -> Self {
        ProviderSettings {
            kind,
            model: model.into(),
            endpoint: None,
            api_key: None,
            organization: None,
            api_version: None,
            region: None,
            aws: None,
            gcp_project: None,
            service_account: None,
        }
    }

    /// Every secret in these settings, for redaction.
    pub fn secrets(&self) -> Vec<&SecretString> {
        let mut out: Vec<&SecretString> = Vec::new();
        out.extend(self.api_key.as_ref());
        out.extend(self.service_account.as_ref());
        if let Some(AwsAuth::StaticKeys {
            secret_access_key,
            session_token,
            ..
        }) = &self.aws
        {
            out.push(secret_access_key);
            out.extend(session_token.as_ref());
        }
        out
    }
}

/// How Bedrock requests get AWS credentials.
#[derive(Debug, Clone)]
pub enum AwsAuth {
    /// Keys given in configuration (`BYOC_AWS_ACCESS_KEY_ID` and friends).
    StaticKeys {
        /// The access key id (not secret on its own, but never logged whole either).
        access_key_id: String,
        /// The secret access key.
        secret_access_key: SecretString,
        /// A session token for temporary credentials.
        session_token: Option<SecretString>,
    },
    /// The standard AWS credential chain: environment, profile, web identity (IRSA),
    /// ECS container credentials, EC2 instance metadata.
    DefaultChain,
}

/// Which embedding backend serves vector search.
#[derive(Debug, Clone)]
pub enum EmbeddingSettings {
    /// No vectors: keyword search only. Needs no model.
    Fallback,
    /// OpenAI `/v1/embeddings`, Azure deployments, or any OpenAI-compatible server.
    OpenAi {
        /// Model id (Azure: deployment name).
        model: String,
        /// Base URL.
        endpoint: Url,
        /// Key, if the endpoint needs one.
        api_key: Option<SecretString>,
        /// Set for Azure endpoints: the API version to send.
        azure_api_version: Option<String>,
    },
    /// Bedrock InvokeModel with Titan Text Embeddings v2 or Cohere Embed.
    Bedrock {
        /// Model id.
        model: String,
        /// AWS region.
        region: String,
        /// Endpoint override (VPC endpoint).
        endpoint: Option<Url>,
        /// Credentials.
        aws: AwsAuth,
    },
}

impl EmbeddingSettings {
    /// The provider name shown in status and connection tests.
    pub fn provider_name(&self) -> &'static str {
        match self {
            EmbeddingSettings::Fallback => "fallback",
            EmbeddingSettings::OpenAi { .. } => "openai",
            EmbeddingSettings::Bedrock { .. } => "bedrock",
        }
    }

    /// The model, or `keyword` for the fallback.
    pub fn model(&self) -> &str {
        match self {
            EmbeddingSettings::Fallback => "keyword",
            EmbeddingSettings::OpenAi { model, .. } | EmbeddingSettings::Bedrock { model, .. } => {
                model
            }
        }
    }
}

/// What AI features do when the customer's provider is unavailable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackPolicy {
    /// Return "AI provider temporarily unavailable"; send nothing anywhere else.
    #[default]
    FailClosed,
    /// Accept the request, store it, and retry with backoff.
    QueueAndRetry,
    /// Use the managed cloud model (data leaves the customer's network).
    CloudFallback,
}

/// When prompts are redacted (secrets, e-mail and IP addresses replaced by placeholders)
/// before they leave for the provider, as the portal sets it per tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactionPolicy {
    /// For endpoints outside private address space (the default).
    #[default]
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

impl FallbackPolicy {
    /// The name used in configuration and the API (`fail_closed`, `queue_and_retry`,
    /// `cloud_fallback`).
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackPolicy::FailClosed => "fail_closed",
            FallbackPolicy::QueueAndRetry => "queue_and_retry",
            FallbackPolicy::CloudFallback => "cloud_fallback",
        }
    }
}

//! Provider kinds as customers name them, and the wire dialect each one speaks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A provider as named in `BYOC_PROVIDER`, the Helm value `byoc.provider` and the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// OpenAI's API, or any OpenAI-compatible server when an endpoint URL is given.
    #[serde(rename = "openai")]
    OpenAi,
    /// Azure OpenAI: a resource endpoint plus a deployment name.
    Azure,
    /// AWS Bedrock Runtime (Converse).
    Bedrock,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google Vertex AI (Gemini).
    Vertex,
    /// Ollama through its OpenAI-compatible API.
    Ollama,
    /// vLLM (or TGI) through its OpenAI-compatible API.
    Vllm,
    /// Any other OpenAI-compatible server.
    #[serde(rename = "openai-compatible")]
    OpenAiCompatible,
}

impl ProviderKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [ProviderKind; 8] = [
        ProviderKind::OpenAi,
        ProviderKind::Azure,
        ProviderKind::Bedrock,
        ProviderKind::Anthropic,
        ProviderKind::Vertex,
        ProviderKind::Ollama,
        ProviderKind::Vllm,
        ProviderKind::OpenAiCompatible,
    ];

    /// The name customers write in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Azure => "azure",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Vertex => "vertex",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Vllm => "vllm",
            ProviderKind::OpenAiCompatible => "openai-compatible",
        }
    }

    /// The valid names joined for error messages: `openai, azure, ...`.
    pub fn valid_names() -> String {
        Self::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The wire dialect this kind speaks.
    pub fn dialect(self) -> Dialect {
        match self {
            ProviderKind::OpenAi
            | ProviderKind::Azure
            | ProviderKind::Ollama
            | ProviderKind::Vllm
            | ProviderKind::OpenAiCompatible => Dialect::OpenAi,
            ProviderKind::Bedrock => Dialect::Bedrock,
            ProviderKind::Anthropic => Dialect::Anthropic,
            ProviderKind::Vertex => Dialect::Vertex,
        }
    }

    /// Whether this kind is a self-hosted OpenAI-compatible server that needs an endpoint URL.
    pub fn is_self_hosted(self) -> bool {
        matches!(
            self,
            ProviderKind::Ollama | ProviderKind::Vllm | ProviderKind::OpenAiCompatible
        )
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a provider name we do not know; its message lists the valid names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {given:?}; valid providers are {valid}", valid = ProviderKind::valid_names())]
pub struct UnknownProvider {
    /// What the customer wrote.
    pub given: String,
}

impl FromStr for ProviderKind {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let normalized = s.trim().to_ascii_lowercase();
        // Accept the spellings customers commonly use for the same thing.
        let kind = match normalized.as_str() {
            "openai" => ProviderKind::OpenAi,
            "azure" | "azure-openai" | "azure_openai" => ProviderKind::Azure,
            "bedrock" | "aws-bedrock" | "aws_bedrock" => ProviderKind::Bedrock,
            "anthropic" => ProviderKind::Anthropic,
            "vertex" | "vertex-ai" | "vertexai" | "gemini" => ProviderKind::Vertex,
            "ollama" => ProviderKind::Ollama,
            "vllm" | "tgi" => ProviderKind::Vllm,
            "openai-compatible" | "openai_compatible" => ProviderKind::OpenAiCompatible,
            _ => {
                return Err(UnknownProvider {
                    given: s.to_owned(),
                });
            }
        };
        Ok(kind)
    }
}

/// A wire format. Several provider kinds share the OpenAI dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// OpenAI chat completions (also Azure and OpenAI-compatible servers).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// AWS Bedrock Converse and InvokeModel.
    Bedrock,
    /// Google Vertex AI Gemini `generateContent`.
    Vertex,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for kind in ProviderKind::ALL {
            assert_eq!(kind.as_str().parse::<ProviderKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn unknown_provider_lists_the_valid_ones() {
        let err = "openia".parse::<ProviderKind>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"openia\""), "{msg}");
        for kind in ProviderKind::ALL {
            assert!(msg.contains(kind.as_str()), "{msg} lacks {kind}");
        }
    }
}

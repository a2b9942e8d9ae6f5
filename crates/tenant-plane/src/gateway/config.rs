//! The gateway's settings: API keys (`TP_API_KEYS`, `TP_API_KEYS_FILE`) and model aliases
//! (`TP_MODEL_ALIASES`), resolved with the rest of the configuration and checked before any
//! port is bound.

use atlasai_core::{EmbeddingSettings, ProviderSettings};

use super::keys::{ApiKeys, KeysFrom};
use super::models::ModelCatalog;
use crate::config::ReportRow;
use crate::config::sources::{Layers, Source};

/// What the OpenAI-compatible endpoint runs with.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    /// The keys that may call it, each bound to a tenant. Empty: every request is refused.
    pub api_keys: ApiKeys,
    /// The models and aliases it answers to.
    pub models: ModelCatalog,
    /// When this configuration was read (seconds since the Unix epoch); `GET /v1/models`
    /// reports it as `created`.
    pub loaded_at_unix: u64,
}

/// Reads the gateway's settings, recording problems in the layers.
pub(crate) fn resolve(
    l: &mut Layers<'_>,
    report: &mut Vec<ReportRow>,
    warnings: &mut Vec<String>,
    provider: Option<&ProviderSettings>,
    embeddings: &EmbeddingSettings,
) -> GatewayConfig {
    let api_keys = match l.secret("TP_API_KEYS", None) {
        None => {
            report.push(ReportRow {
                setting: "api keys",
                value: "none (the OpenAI-compatible API under /v1 refuses every request)"
                    .to_owned(),
                source: Source::Default,
            });
            ApiKeys::default()
        }
        Some(text) => {
            let from = match text.source {
                Source::SecretFile { .. } => KeysFrom::File,
                _ => KeysFrom::Variable,
            };
            let name = text.source.setting_name();
            match ApiKeys::parse(secrecy::ExposeSecret::expose_secret(&text.value), from) {
                Ok(keys) => {
                    let tenants: Vec<&str> = keys.tenants().iter().map(|t| t.as_str()).collect();
                    report.push(ReportRow {
                        setting: "api keys",
                        value: format!(
                            "{} key{} for tenant{} {}",
                            keys.len(),
                            if keys.len() == 1 { "" } else { "s" },
                            if tenants.len() == 1 { "" } else { "s" },
                            tenants.join(", ")
                        ),
                        source: text.source,
                    });
                    keys
                }
                Err(problems) => {
                    for p in problems {
                        l.error(format!("{name}: {p}"));
                    }
                    ApiKeys::default()
                }
            }
        }
    };

    let chat = provider.map(|p| (p.model.clone(), p.kind.as_str().to_owned()));
    let embedding = match embeddings {
        EmbeddingSettings::Fallback => None,
        other => Some((other.model().to_owned(), other.provider_name().to_owned())),
    };
    let mut models = ModelCatalog::new(chat, embedding);
    if let Some(aliases) = l.get("TP_MODEL_ALIASES", None) {
        let (errors, notes) = models.add_aliases(&aliases.value);
        for e in errors {
            l.error(format!("TP_MODEL_ALIASES: {e}"));
        }
        warnings.extend(notes);
        let shown: Vec<String> = models
            .aliases()
            .iter()
            .map(|a| format!("{} → {}", a.name, a.purpose))
            .collect();
        report.push(ReportRow {
            setting: "model aliases",
            value: shown.join(", "),
            source: aliases.source,
        });
    }

    GatewayConfig {
        api_keys,
        models,
        loaded_at_unix: crate::state::unix_now(),
    }
}

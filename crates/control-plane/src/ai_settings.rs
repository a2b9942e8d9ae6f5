//! Portal AI settings: saving (validated on save with the same provider clients the tenant
//! plane uses), testing, listing models, and the read-only view with secrets write-only.
//!
//! Saving never replaces a working setting with a broken one: only a setting whose check
//! passes becomes active; a failing one is kept as a draft with the provider's reason; one
//! the control plane must not or cannot check (a private endpoint, a name that only resolves
//! inside the customer's network, Bedrock with the tenant plane's own role) waits as "pending
//! validation" until a tenant plane of the tenant checks it from inside its network.

use std::collections::BTreeMap;
use std::time::Duration;

use atlasai_core::ModelInfo;
use atlasai_core::portal::{AiSettings, SECRET_FIELDS, ValidatedSettings, WireSecret};
use atlasai_core::protocol::{ManagedInfo, StatusReport};
use atlasai_core::secret::{Redactor, last_four};
use atlasai_providers::egress::{self, Egress};
use atlasai_providers::{HttpOptions, RetryPolicy};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Map, Value, json};
use url::{Host, Url};

use crate::error::Error;
use crate::identity::{Caller, Role};
use crate::state::AppState;
use crate::store::{SettingsRow, new_id, now};

/// Where a setting lives: the tenant level (`""`) or a cluster's override.
fn level_id(cluster: Option<&str>) -> &str {
    cluster.unwrap_or("")
}

fn aad(tenant: &str, cluster: &str) -> String {
    format!("ai-settings/{tenant}/{cluster}")
}

/// Splits settings into the stored non-secret JSON and the sealed secrets.
fn seal(
    state: &AppState,
    tenant: &str,
    cluster: &str,
    s: &AiSettings,
) -> Result<(String, Option<String>), Error> {
    let mut public = s.clone();
    let mut secrets = BTreeMap::new();
    for (name, field) in [
        ("api_key", &mut public.api_key),
        ("aws_secret_access_key", &mut public.aws_secret_access_key),
        ("aws_session_token", &mut public.aws_session_token),
        (
            "vertex_service_account_key",
            &mut public.vertex_service_account_key,
        ),
        ("embedding_api_key", &mut public.embedding_api_key),
    ] {
        if let Some(v) = field.take()
            && !v.expose().is_empty()
        {
            secrets.insert(name, v);
        }
    }
    let json =
        serde_json::to_string(&public).map_err(|e| Error::internal("storing settings", e))?;
    let sealed = if secrets.is_empty() {
        None
    } else {
        let plain =
            serde_json::to_vec(&secrets).map_err(|e| Error::internal("storing settings", e))?;
        Some(state.secrets.seal(&plain, &aad(tenant, cluster))?)
    };
    Ok((json, sealed))
}

/// The full settings of a stored row, secrets decrypted.
pub fn unseal(
    state: &AppState,
    row_tenant: &str,
    row_cluster: &str,
    json: &str,
    sealed: Option<&str>,
) -> Result<AiSettings, Error> {
    let mut s: AiSettings =
        serde_json::from_str(json).map_err(|e| Error::internal("reading stored settings", e))?;
    if let Some(sealed) = sealed {
        let plain = state.secrets.open(sealed, &aad(row_tenant, row_cluster))?;
        let secrets: BTreeMap<String, WireSecret> = serde_json::from_slice(&plain)
            .map_err(|e| Error::internal("reading stored secrets", e))?;
        for (name, v) in secrets {
            match name.as_str() {
                "api_key" => s.api_key = Some(v),
                "aws_secret_access_key" => s.aws_secret_access_key = Some(v),
                "aws_session_token" => s.aws_session_token = Some(v),
                "vertex_service_account_key" => s.vertex_service_account_key = Some(v),
                "embedding_api_key" => s.embedding_api_key = Some(v),
                _ => {}
            }
        }
    }
    Ok(s)
}

/// Write-only secrets: a secret field left out of a save keeps the stored value (when the
/// provider is unchanged); an empty string clears it.
fn merge_secrets(input: &mut AiSettings, base: Option<&AiSettings>) {
    let same_provider = base.is_some_and(|b| {
        b.provider
            .trim()
            .eq_ignore_ascii_case(input.provider.trim())
    });
    let base = base.filter(|_| same_provider);
    let pairs: [(&mut Option<WireSecret>, Option<&Option<WireSecret>>); 5] = [
        (&mut input.api_key, base.map(|b| &b.api_key)),
        (
            &mut input.aws_secret_access_key,
            base.map(|b| &b.aws_secret_access_key),
        ),
        (
            &mut input.aws_session_token,
            base.map(|b| &b.aws_session_token),
        ),
        (
            &mut input.vertex_service_account_key,
            base.map(|b| &b.vertex_service_account_key),
        ),
        (
            &mut input.embedding_api_key,
            base.map(|b| &b.embedding_api_key),
        ),
    ];
    for (field, stored) in pairs {
        match field {
            None => *field = stored.cloned().flatten(),
            Some(v) if v.expose().is_empty() => *field = None,
            Some(_) => {}
        }
    }
}

async fn stored_rows(state: &AppState, tenant: &str) -> Result<Vec<SettingsRow>, Error> {
    Ok(state.store.list_settings(tenant).await?)
}

/// The stored settings a save at this level builds on: the candidate, else the active one.
async fn base_settings(
    state: &AppState,
    tenant: &str,
    cluster: &str,
) -> Result<Option<AiSettings>, Error> {
    let rows = stored_rows(state, tenant).await?;
    let pick = rows
        .iter()
        .filter(|r| r.cluster_id == cluster)
        .min_by_key(|r| if r.slot == "candidate" { 0 } else { 1 });
    match pick {
        Some(r) => Ok(Some(unseal(
            state,
            tenant,
            cluster,
            &r.settings_json,
            r.secrets_sealed.as_deref(),
        )?)),
        None => Ok(None),
    }
}

/// How a setting can be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The control plane calls the provider itself.
    Direct,
    /// Only a tenant plane can check it; why.
    TenantPlane(String),
}

/// Decides whether the control plane may call every URL these settings use. Names are
/// resolved here only to decide; the connection itself is made by a client whose resolver
/// vets the addresses again at connect time (see `atlasai_providers::egress`), so a name that
/// changes its answer in between is still refused.
pub async fn plan(state: &AppState, v: &ValidatedSettings) -> Plan {
    if v.needs_tenant_plane {
        return Plan::TenantPlane(
            "Bedrock with the tenant plane's own AWS role can only be checked by the tenant plane"
                .to_owned(),
        );
    }
    if state.config.allow_private_endpoints {
        return Plan::Direct;
    }
    for url in &v.urls {
        if let Some(why) = private_reason(url).await {
            return Plan::TenantPlane(why);
        }
    }
    Plan::Direct
}

async fn private_reason(url: &Url) -> Option<String> {
    match url.host() {
        Some(Host::Ipv4(_)) | Some(Host::Ipv6(_)) => egress::check_url(url).err().map(|e| {
            format!("{e}; a tenant plane of this tenant will check it from inside your network")
        }),
        Some(Host::Domain(name)) => {
            let port = url.port_or_known_default().unwrap_or(443);
            match tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::lookup_host((name, port)),
            )
            .await
            {
                Ok(Ok(addrs)) => {
                    let addrs: Vec<_> = addrs.collect();
                    if addrs.is_empty() {
                        return Some(format!(
                            "{name} does not resolve from the control plane; a tenant plane of this tenant will check it from inside your network"
                        ));
                    }
                    addrs.iter().find(|a| !egress::is_public(a.ip())).map(|a| {
                        format!(
                            "{name} resolves to the {} address {}; the control plane does not call private networks, so a tenant plane of this tenant will check it from inside your network",
                            egress::describe(a.ip()),
                            a.ip()
                        )
                    })
                }
                _ => Some(format!(
                    "{name} does not resolve from the control plane; a tenant plane of this tenant will check it from inside your network"
                )),
            }
        }
        None => Some("the URL has no host".to_owned()),
    }
}

/// Client options for calls to tenants' providers from the control plane.
pub fn check_options(state: &AppState) -> HttpOptions {
    HttpOptions {
        timeout: state.config.validation_timeout,
        connect_timeout: Duration::from_secs(10),
        retry: RetryPolicy::none(),
        egress: if state.config.allow_private_endpoints {
            Egress::Any
        } else {
            Egress::PublicOnly
        },
        ..HttpOptions::default()
    }
}

/// Checks settings against the provider with the shared check (a small completion, or for
/// Anthropic a models list, as the portal documentation promises; an embedding when
/// embeddings are set). Returns the latency, or the provider's reason with every secret
/// removed.
pub async fn check(
    settings: &ValidatedSettings,
    secrets: &[SecretString],
    opts: &HttpOptions,
) -> Result<u64, String> {
    let redactor = Redactor::new(secrets.iter());
    atlasai_providers::check::check_settings(&settings.chat, &settings.embeddings, opts)
        .await
        .map_err(|e| redactor.scrub(&e))
}

/// The outcome of a save.
#[derive(Debug, Serialize)]
pub struct SaveOutcome {
    /// `active`, `draft` or `pending_validation`.
    pub state: &'static str,
    /// Why it is a draft or pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long the check took, when the control plane ran it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// The validation a tenant plane will run, when pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_id: Option<String>,
    /// The settings revision.
    pub revision: i64,
}

async fn require_cluster(
    state: &AppState,
    tenant: &str,
    cluster: Option<&str>,
) -> Result<(), Error> {
    if let Some(c) = cluster {
        state
            .store
            .get_cluster(tenant, c)
            .await?
            .ok_or(Error::NotFound("cluster"))?;
    }
    Ok(())
}

/// Saves settings for a tenant or one of its clusters (admin).
pub async fn save(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    cluster: Option<&str>,
    mut input: AiSettings,
) -> Result<SaveOutcome, Error> {
    caller.require(tenant, Role::Admin)?;
    require_cluster(state, tenant, cluster).await?;
    let level = level_id(cluster);
    let base = base_settings(state, tenant, level).await?;
    merge_secrets(&mut input, base.as_ref());
    let validated = input.validate().map_err(Error::Invalid)?;
    let provider = validated.chat.kind.as_str();
    let (json, sealed) = seal(state, tenant, level, &input)?;
    let row = |state_name: &str, reason: Option<String>, validated_at: Option<i64>| SettingsRow {
        tenant_id: tenant.to_owned(),
        cluster_id: level.to_owned(),
        slot: String::new(),
        state: state_name.to_owned(),
        settings_json: json.clone(),
        secrets_sealed: sealed.clone(),
        reason,
        validated_at,
        updated_at: now(),
        updated_by: caller.user_id.clone(),
        revision: 0,
    };
    let outcome = match plan(state, &validated).await {
        Plan::TenantPlane(why) => {
            let id = new_id();
            let revision = state
                .store
                .save_candidate(
                    row("pending_validation", Some(why.clone()), None),
                    Some(&id),
                )
                .await?;
            SaveOutcome {
                state: "pending_validation",
                reason: Some(why),
                latency_ms: None,
                validation_id: Some(id),
                revision,
            }
        }
        Plan::Direct => match check(&validated, &input.secrets(), &check_options(state)).await {
            Ok(latency) => {
                let revision = state
                    .store
                    .save_active(row("active", None, Some(now())))
                    .await?;
                SaveOutcome {
                    state: "active",
                    reason: None,
                    latency_ms: Some(latency),
                    validation_id: None,
                    revision,
                }
            }
            Err(reason) => {
                let revision = state
                    .store
                    .save_candidate(row("draft", Some(reason.clone()), None), None)
                    .await?;
                SaveOutcome {
                    state: "draft",
                    reason: Some(reason),
                    latency_ms: None,
                    validation_id: None,
                    revision,
                }
            }
        },
    };
    state.metrics.validation(provider, outcome.state);
    tracing::info!(
        tenant,
        cluster = level,
        provider,
        outcome = outcome.state,
        "AI settings saved"
    );
    state.changed.notify_waiters();
    Ok(outcome)
}

/// Removes a cluster's override (admin).
pub async fn delete_override(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    cluster: &str,
) -> Result<(), Error> {
    caller.require(tenant, Role::Admin)?;
    require_cluster(state, tenant, Some(cluster)).await?;
    state.store.delete_cluster_settings(tenant, cluster).await?;
    state.changed.notify_waiters();
    Ok(())
}

/// The outcome of Test Connection.
#[derive(Debug, Serialize)]
pub struct TestOutcome {
    /// `ok`, `error` or `pending_validation` (only a tenant plane can check it).
    pub status: &'static str,
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// How long it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Why it failed, or why it is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Tests settings without saving them (admin). Secret fields left out use the stored ones.
pub async fn test(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    cluster: Option<&str>,
    mut input: AiSettings,
) -> Result<TestOutcome, Error> {
    caller.require(tenant, Role::Admin)?;
    require_cluster(state, tenant, cluster).await?;
    let base = base_settings(state, tenant, level_id(cluster)).await?;
    merge_secrets(&mut input, base.as_ref());
    let validated = input.validate().map_err(Error::Invalid)?;
    let (provider, model) = (
        validated.chat.kind.to_string(),
        validated.chat.model.clone(),
    );
    Ok(match plan(state, &validated).await {
        Plan::TenantPlane(why) => TestOutcome {
            status: "pending_validation",
            provider,
            model,
            latency_ms: None,
            detail: Some(why),
        },
        Plan::Direct => match check(&validated, &input.secrets(), &check_options(state)).await {
            Ok(ms) => TestOutcome {
                status: "ok",
                provider,
                model,
                latency_ms: Some(ms),
                detail: None,
            },
            Err(e) => TestOutcome {
                status: "error",
                provider,
                model,
                latency_ms: None,
                detail: Some(e),
            },
        },
    })
}

/// Lists the models a key can use, from the provider, for the model picker (admin).
pub async fn models(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    cluster: Option<&str>,
    mut input: AiSettings,
) -> Result<Vec<ModelInfo>, Error> {
    caller.require(tenant, Role::Admin)?;
    require_cluster(state, tenant, cluster).await?;
    let base = base_settings(state, tenant, level_id(cluster)).await?;
    merge_secrets(&mut input, base.as_ref());
    if input.model.trim().is_empty() {
        // The picker is used before a model is chosen.
        input.model = "model-list".to_owned();
    }
    let validated = input.validate().map_err(Error::Invalid)?;
    if let Plan::TenantPlane(why) = plan(state, &validated).await {
        return Err(Error::bad(
            "private_endpoint",
            format!(
                "cannot list models from the control plane: {why}; enter the model name instead"
            ),
        ));
    }
    let redactor = Redactor::new(input.secrets().iter());
    let client = atlasai_providers::build_chat_provider(&validated.chat, &check_options(state))
        .await
        .map_err(|e| Error::bad("provider_error", redactor.scrub(&e.to_string())))?;
    client.list_models().await.map_err(|e| {
        Error::bad(
            "provider_error",
            format!(
                "the provider refused to list models: {}",
                redactor.scrub(&e.to_string())
            ),
        )
    })
}

/// One level's settings as the API shows them: secrets only as "set" and their last four.
#[derive(Debug, Serialize)]
pub struct StoredView {
    /// `active`, `draft` or `pending_validation`.
    pub state: String,
    /// The settings without secrets, plus `secrets: {field: {set, last_four}}`.
    pub settings: Value,
    /// Why a draft failed, or why it is pending.
    pub reason: Option<String>,
    /// When it passed validation.
    pub validated_at: Option<i64>,
    /// When it was saved.
    pub updated_at: i64,
    /// Who saved it.
    pub updated_by: String,
    /// The revision.
    pub revision: i64,
}

/// A level's active and candidate settings.
#[derive(Debug, Default, Serialize)]
pub struct LevelView {
    /// What is in force.
    pub active: Option<StoredView>,
    /// The latest save that is not in force (draft or pending).
    pub candidate: Option<StoredView>,
}

/// A cluster with what it reports.
#[derive(Debug, Serialize)]
pub struct ClusterView {
    /// The cluster id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether it has enrolled.
    pub enrolled: bool,
    /// When it last called.
    pub last_seen_at: Option<i64>,
    /// Whether it called within the last two minutes.
    pub connected: bool,
    /// Which settings are in force on it, as it reports: `local` (BYOC variables or Helm
    /// values on the tenant plane, which win), `portal`, `managed`, `none`, or `unknown`.
    pub source_in_force: String,
    /// Its last status report.
    pub status: Option<StatusReport>,
    /// Its override of the tenant's settings.
    #[serde(rename = "override")]
    pub override_settings: LevelView,
}

/// The Settings → AI document.
#[derive(Debug, Serialize)]
pub struct SettingsView {
    /// The tenant.
    pub tenant_id: String,
    /// The tenant-level settings.
    pub tenant: LevelView,
    /// The clusters and their overrides.
    pub clusters: Vec<ClusterView>,
    /// The managed model, if offered.
    pub managed: Option<ManagedInfo>,
    /// Whether the control plane may call private endpoints itself.
    pub allow_private_endpoints: bool,
    /// The secret fields, which are write-only.
    pub secret_fields: [&'static str; 5],
}

fn view(state: &AppState, r: &SettingsRow) -> Result<StoredView, Error> {
    let full = unseal(
        state,
        &r.tenant_id,
        &r.cluster_id,
        &r.settings_json,
        r.secrets_sealed.as_deref(),
    )?;
    let mut public = serde_json::to_value(AiSettings {
        api_key: None,
        aws_secret_access_key: None,
        aws_session_token: None,
        vertex_service_account_key: None,
        embedding_api_key: None,
        ..full.clone()
    })
    .map_err(|e| Error::internal("showing settings", e))?;
    let mut secrets = Map::new();
    for (name, v) in [
        ("api_key", &full.api_key),
        ("aws_secret_access_key", &full.aws_secret_access_key),
        ("aws_session_token", &full.aws_session_token),
        (
            "vertex_service_account_key",
            &full.vertex_service_account_key,
        ),
        ("embedding_api_key", &full.embedding_api_key),
    ] {
        if let Some(v) = v {
            // Vertex keys are JSON documents; their last characters are punctuation, not a hint.
            let tail = if name == "vertex_service_account_key" {
                None
            } else {
                last_four(&v.0)
            };
            secrets.insert(name.to_owned(), json!({"set": true, "last_four": tail}));
        }
    }
    if let Value::Object(o) = &mut public {
        o.insert("secrets".to_owned(), Value::Object(secrets));
    }
    Ok(StoredView {
        state: r.state.clone(),
        settings: public,
        reason: r.reason.clone(),
        validated_at: r.validated_at,
        updated_at: r.updated_at,
        updated_by: r.updated_by.clone(),
        revision: r.revision,
    })
}

fn level(state: &AppState, rows: &[SettingsRow], cluster: &str) -> Result<LevelView, Error> {
    let mut out = LevelView::default();
    for r in rows.iter().filter(|r| r.cluster_id == cluster) {
        let v = view(state, r)?;
        if r.slot == "active" {
            out.active = Some(v);
        } else {
            out.candidate = Some(v);
        }
    }
    Ok(out)
}

/// The Settings → AI document for a tenant (viewer).
pub async fn get(state: &AppState, caller: &Caller, tenant: &str) -> Result<SettingsView, Error> {
    caller.require(tenant, Role::Viewer)?;
    let rows = stored_rows(state, tenant).await?;
    let t = now();
    let mut clusters = Vec::new();
    for c in state.store.list_clusters(tenant).await? {
        let status: Option<StatusReport> = c
            .status_json
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok());
        let connected = c.last_seen_at.is_some_and(|s| t - s < 120);
        clusters.push(ClusterView {
            source_in_force: status
                .as_ref()
                .map(|s| s.config_source.as_str().to_owned())
                .unwrap_or_else(|| "unknown".to_owned()),
            override_settings: level(state, &rows, &c.id)?,
            enrolled: c.enrolled_at.is_some(),
            last_seen_at: c.last_seen_at,
            connected,
            status,
            id: c.id,
            name: c.name,
        });
    }
    Ok(SettingsView {
        tenant_id: tenant.to_owned(),
        tenant: level(state, &rows, "")?,
        clusters,
        managed: managed_info(state),
        allow_private_endpoints: state.config.allow_private_endpoints,
        secret_fields: SECRET_FIELDS,
    })
}

/// The managed model, if one is configured.
pub fn managed_info(state: &AppState) -> Option<ManagedInfo> {
    state.config.managed.as_ref().map(|m| ManagedInfo {
        provider: m.settings.kind.to_string(),
        model: m.settings.model.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_secrets_are_kept_and_empty_ones_cleared_for_the_same_provider() {
        let stored = AiSettings {
            provider: "openai".into(),
            model: "m".into(),
            api_key: Some(WireSecret::new("sk-stored-0000001234")),
            embedding_api_key: Some(WireSecret::new("sk-embed")),
            ..AiSettings::default()
        };
        let mut input = AiSettings {
            provider: "openai".into(),
            model: "m2".into(),
            embedding_api_key: Some(WireSecret::new("")),
            ..AiSettings::default()
        };
        merge_secrets(&mut input, Some(&stored));
        assert_eq!(
            input.api_key.as_ref().map(WireSecret::expose),
            Some("sk-stored-0000001234")
        );
        assert!(input.embedding_api_key.is_none());
        let mut other = AiSettings {
            provider: "anthropic".into(),
            model: "m".into(),
            ..AiSettings::default()
        };
        merge_secrets(&mut other, Some(&stored));
        assert!(
            other.api_key.is_none(),
            "a key is never carried to another provider"
        );
    }
}

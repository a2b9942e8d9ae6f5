//! Alert correlation behind `POST /api/alerts`: a new alert joins an open incident when it is
//! about the same problem, or opens a new incident. The answer says which and why.
//!
//! In order:
//! 1. **Fingerprint**: an open incident already holding an alert with the same fingerprint
//!    (the sender's own deduplication key) gets it, whatever the time (Alertmanager re-sends
//!    firing alerts every few hours).
//! 2. **Candidates**: open or acknowledged incidents of the same service that were started,
//!    created or alerted within `TP_CORRELATION_WINDOW` (default 2 h) of the time the alert
//!    fired (before or after: alerts may arrive late), most recently active first (at most
//!    20).
//! 3. **Similarity** between the alert (title and description) and each candidate (its title
//!    and description, and its latest alert titles; a candidate scores its best piece):
//!    - with an embedding provider: cosine similarity of the embeddings, one provider call for
//!      the alert and every candidate; attached when the best is at least
//!      `TP_CORRELATION_EMBEDDING_THRESHOLD` (default 0.80);
//!    - otherwise, or when the provider fails: keyword similarity (Dice overlap of the words,
//!      camelCase split, stop words removed) against the candidate's title and each of its
//!      alert titles, best match; attached when at least `TP_CORRELATION_KEYWORD_THRESHOLD`
//!      (default 0.45).
//! 4. Otherwise a new incident is opened from the alert (its title, description, service and
//!    severity; started when the alert fired).
//!
//! Correlation is serialised per replica, so a burst of alerts about one new problem opens one
//! incident. With several replicas two alerts arriving at the same instant on different
//! replicas can still open two incidents.

use std::collections::HashMap;
use std::time::Duration;

use atlasai_core::TenantId;
use serde::{Deserialize, Serialize};

use super::{CreateAlert, new_alert};
use crate::calls::Feature;
use crate::data::{Data, ServiceError};
use crate::search::embedder::embed_texts;
use crate::search::text::{keyword_similarity, keywords};
use crate::search::vectors::dot;
use crate::state::AppState;
use crate::store::incidents::{NewAlert, NewIncident};
use crate::store::{Alert, Incident, IncidentStatus, Timestamp};

/// Candidates compared per alert.
const MAX_CANDIDATES: u32 = 20;
/// Latest alert titles of each candidate read for keyword similarity.
const ALERT_TITLES: u32 = 5;

/// What happened to the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// It joined an open incident.
    Attached,
    /// It opened a new incident.
    Created,
}

/// How the match was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Same fingerprint as an alert of an open incident.
    Fingerprint,
    /// Cosine similarity of embeddings.
    Embedding,
    /// Keyword overlap.
    Keyword,
    /// Nothing to compare with: no open incident of the service in the window.
    None,
}

/// One candidate's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CandidateScore {
    /// The open incident.
    pub incident_id: String,
    /// Its title.
    pub title: String,
    /// Similarity to the alert, 0 to 1.
    pub score: f64,
}

/// Why the alert went where it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Correlation {
    /// `attached` or `created`.
    pub decision: Decision,
    /// How similarity was judged.
    pub method: Method,
    /// The best similarity found (absent when there was no candidate).
    pub score: Option<f64>,
    /// The threshold the score had to reach.
    pub threshold: Option<f64>,
    /// The incident the alert joined.
    pub matched_incident_id: Option<String>,
    /// Every candidate considered, best first.
    pub candidates: Vec<CandidateScore>,
    /// The time window, in seconds.
    pub window_seconds: u64,
    /// The decision in one sentence.
    pub reason: String,
    /// Why embeddings were not used, when they were configured but failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_error: Option<String>,
}

/// The answer of `POST /api/alerts`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CorrelationOutcome {
    /// `attached` or `created`.
    pub decision: Decision,
    /// The stored alert.
    pub alert: Alert,
    /// The incident it belongs to now.
    pub incident: Incident,
    /// Why.
    pub correlation: Correlation,
}

/// How an alert or an incident reads for similarity: the title, then the start of the
/// description when there is one. Alerts and incidents opened from them read the same.
fn text_of(title: &str, description: &str) -> String {
    let desc: String = description.chars().take(500).collect();
    if desc.trim().is_empty() {
        title.to_owned()
    } else {
        format!("{title}\n{desc}")
    }
}

/// Embedded per candidate besides its own text: its latest distinct alert titles.
const EMBEDDED_ALERT_TITLES: usize = 2;

/// Correlates and stores one alert.
pub async fn correlate(
    state: &AppState,
    data: &Data,
    tenant: &TenantId,
    req: CreateAlert,
) -> Result<CorrelationOutcome, ServiceError> {
    let alert = new_alert(req)?;
    let settings = data.settings.correlation;
    let fired = alert.fired_at.unwrap_or_else(Timestamp::now);
    let window = settings.window;
    let _serial = data.correlation_lock.lock().await;

    if let Some(fp) = &alert.fingerprint
        && let Some(incident) = data
            .store
            .open_incident_with_fingerprint(tenant, fp)
            .await?
    {
        let correlation = Correlation {
            decision: Decision::Attached,
            method: Method::Fingerprint,
            score: Some(1.0),
            threshold: None,
            matched_incident_id: Some(incident.id.clone()),
            candidates: Vec::new(),
            window_seconds: window.as_secs(),
            reason: format!(
                "an alert with fingerprint {fp} is already on open incident {}",
                incident.id
            ),
            embedding_error: None,
        };
        return attach(data, tenant, incident, alert, correlation).await;
    }

    let candidates = data
        .store
        .correlation_candidates(
            tenant,
            &alert.service,
            fired.minus(window),
            fired.plus(window),
            MAX_CANDIDATES,
        )
        .await?;
    if candidates.is_empty() {
        let correlation = Correlation {
            decision: Decision::Created,
            method: Method::None,
            score: None,
            threshold: None,
            matched_incident_id: None,
            candidates: Vec::new(),
            window_seconds: window.as_secs(),
            reason: format!(
                "no open incident of service {} was active within {} of the alert",
                alert.service,
                human(window)
            ),
            embedding_error: None,
        };
        return open_new(data, tenant, alert, correlation).await;
    }

    let ids: Vec<String> = candidates.iter().map(|c| c.id.clone()).collect();
    let mut titles: HashMap<String, Vec<String>> = HashMap::new();
    for (incident_id, title) in data
        .store
        .recent_alert_titles(tenant, &ids, ALERT_TITLES)
        .await?
    {
        titles.entry(incident_id).or_default().push(title);
    }

    let (method, threshold, scores, embedding_error) =
        match embedding_scores(state, data, tenant, &alert, &candidates, &titles).await {
            Ok(Some(scores)) => (
                Method::Embedding,
                settings.embedding_threshold,
                scores,
                None,
            ),
            Ok(None) => (
                Method::Keyword,
                settings.keyword_threshold,
                keyword_scores(&alert, &candidates, &titles),
                None,
            ),
            Err(e) => (
                Method::Keyword,
                settings.keyword_threshold,
                keyword_scores(&alert, &candidates, &titles),
                Some(e),
            ),
        };
    let mut ranked: Vec<(usize, f32)> = scores.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let candidate_scores: Vec<CandidateScore> = ranked
        .iter()
        .map(|&(i, score)| CandidateScore {
            incident_id: candidates[i].id.clone(),
            title: candidates[i].title.clone(),
            score: round(score),
        })
        .collect();
    let (best_i, best) = ranked[0];
    let method_name = match method {
        Method::Embedding => "embedding",
        _ => "keyword",
    };
    if best >= threshold {
        let incident = candidates[best_i].clone();
        let correlation = Correlation {
            decision: Decision::Attached,
            method,
            score: Some(round(best)),
            threshold: Some(shown(threshold)),
            matched_incident_id: Some(incident.id.clone()),
            candidates: candidate_scores,
            window_seconds: window.as_secs(),
            reason: format!(
                "{method_name} similarity {:.2} to open incident {} ({:?}) reaches the threshold {threshold}",
                best, incident.id, incident.title
            ),
            embedding_error,
        };
        attach(data, tenant, incident, alert, correlation).await
    } else {
        let correlation = Correlation {
            decision: Decision::Created,
            method,
            score: Some(round(best)),
            threshold: Some(shown(threshold)),
            matched_incident_id: None,
            candidates: candidate_scores,
            window_seconds: window.as_secs(),
            reason: format!(
                "the best {method_name} similarity to an open incident of service {} is {:.2}, below the threshold {threshold}",
                alert.service, best
            ),
            embedding_error,
        };
        open_new(data, tenant, alert, correlation).await
    }
}

/// A configured threshold as the operator wrote it (0.8, not 0.800000011920929).
fn shown(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// Scores are shown to three decimals (the thresholds are configured that way too, and f32
/// digits beyond that are noise in JSON).
fn round(x: f32) -> f64 {
    (f64::from(x) * 1000.0).round() / 1000.0
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Cosine similarities, or `None` when no embedding provider is configured.
async fn embedding_scores(
    state: &AppState,
    data: &Data,
    tenant: &TenantId,
    alert: &NewAlert,
    candidates: &[Incident],
    titles: &HashMap<String, Vec<String>>,
) -> Result<Option<Vec<f32>>, String> {
    let published = state.current();
    let client = match state.routes.embeddings(tenant, &published).await {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    // The alert, then for each candidate its own text and its latest alert titles; a
    // candidate scores its best piece.
    let mut texts = vec![text_of(&alert.title, &alert.description)];
    let mut owner: Vec<usize> = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        texts.push(text_of(&c.title, &c.description));
        owner.push(i);
        let mut seen: Vec<&str> = Vec::new();
        for t in titles.get(&c.id).map(Vec::as_slice).unwrap_or_default() {
            if seen.len() == EMBEDDED_ALERT_TITLES {
                break;
            }
            if !seen.contains(&t.as_str()) && *t != c.title {
                seen.push(t);
                texts.push(t.clone());
                owner.push(i);
            }
        }
    }
    // Correlation waits for the model at most as long as a search would, then judges by
    // keywords: an alert must never be lost or delayed because the provider is slow.
    let timeout = data.settings.search_embedding_timeout;
    let vectors = match tokio::time::timeout(
        timeout,
        embed_texts(state, tenant, &client, texts, Feature::Correlation),
    )
    .await
    {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => {
            return Err(format!(
                "the embedding provider did not answer within {}ms",
                timeout.as_millis()
            ));
        }
    };
    let (first, rest) = vectors.split_first().ok_or("no vectors returned")?;
    let mut scores = vec![0.0f32; candidates.len()];
    for (v, &i) in rest.iter().zip(&owner) {
        scores[i] = scores[i].max(dot(first, v));
    }
    Ok(Some(scores))
}

fn keyword_scores(
    alert: &NewAlert,
    candidates: &[Incident],
    titles: &HashMap<String, Vec<String>>,
) -> Vec<f32> {
    let a = keywords(&alert.title);
    let a_full = keywords(&text_of(&alert.title, &alert.description));
    candidates
        .iter()
        .map(|c| {
            let mut best = keyword_similarity(&a, &keywords(&c.title))
                .max(keyword_similarity(&a_full, &keywords(&c.title)));
            for t in titles.get(&c.id).map(Vec::as_slice).unwrap_or_default() {
                best = best.max(keyword_similarity(&a, &keywords(t)));
            }
            best
        })
        .collect()
}

async fn attach(
    data: &Data,
    tenant: &TenantId,
    incident: Incident,
    alert: NewAlert,
    correlation: Correlation,
) -> Result<CorrelationOutcome, ServiceError> {
    let json = serde_json::to_value(&correlation).ok();
    let stored = data
        .store
        .add_alert(tenant, &incident.id, alert, json)
        .await?
        .ok_or_else(|| ServiceError::NotFound {
            what: "incident",
            id: incident.id.clone(),
        })?;
    let incident = data
        .store
        .get_incident(tenant, &incident.id)
        .await?
        .unwrap_or(incident);
    data.notify_written();
    Ok(CorrelationOutcome {
        decision: correlation.decision,
        alert: stored,
        incident,
        correlation,
    })
}

async fn open_new(
    data: &Data,
    tenant: &TenantId,
    alert: NewAlert,
    correlation: Correlation,
) -> Result<CorrelationOutcome, ServiceError> {
    let new_incident = NewIncident {
        external_id: None,
        title: alert.title.clone(),
        description: alert.description.clone(),
        service: alert.service.clone(),
        severity: alert.severity,
        status: IncidentStatus::Open,
        started_at: alert.fired_at,
    };
    let json = serde_json::to_value(&correlation).ok();
    let (incident, stored) = data
        .store
        .create_incident_with_alert(tenant, new_incident, alert, json)
        .await?;
    data.notify_written();
    Ok(CorrelationOutcome {
        decision: correlation.decision,
        alert: stored,
        incident,
        correlation,
    })
}

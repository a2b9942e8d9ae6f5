//! The embedding pipeline: when an embedding provider is configured, a background task embeds
//! every tenant's new chunks (incidents, runbook sections, distinct log message shapes) in
//! batches and stores the vectors, tagged with the model.
//!
//! - Progress is kept per tenant and model in the store (`embedding_jobs`); a new model starts
//!   a job from the beginning, so changing the model re-embeds everything instead of mixing
//!   vector spaces. Until the new job has caught up once, search stays keyword-only; then the
//!   old model's vectors are deleted.
//! - With several replicas, a lease on the job lets one replica at a time embed a tenant.
//! - Chunks whose text is unchanged since they were embedded with this model are skipped.
//! - Large backfills log their progress.
//! - A failing provider is retried with backoff; keyword search is unaffected meanwhile.
//! - Every call is recorded through the call recorder (feature `embeddings`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlasai_core::{EmbeddingRequest, EmbeddingSettings, TenantId, Usage};
use atlasai_providers::Provider;

use crate::calls::{CallOutcome, Feature, ModelCall};
use crate::data::{Data, ServiceError};
use crate::search::text::{Chunk, incident_chunk, runbook_chunks, template_chunk};
use crate::search::vectors::normalize;
use crate::state::AppState;

/// Inputs per embedding call.
pub const BATCH: usize = 64;
/// How long a replica's claim on a tenant's embedding job lasts without renewal.
const LEASE: Duration = Duration::from_secs(120);
/// Message shapes read per query.
const TEMPLATE_PAGE: u32 = 1000;
/// Backfills larger than this many chunks log their progress.
const PROGRESS_THRESHOLD: usize = 500;
/// Longest wait after repeated provider failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The identity of the embedding model in force, as vectors are tagged (`provider:model`), or
/// `None` for the keyword-only fallback.
pub fn model_key(settings: &EmbeddingSettings) -> Option<String> {
    match settings {
        EmbeddingSettings::Fallback => None,
        other => Some(format!("{}:{}", other.provider_name(), other.model())),
    }
}

/// Why embedding stopped.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The provider failed or answered with the wrong number of vectors.
    #[error("embedding provider failed: {0}")]
    Provider(String),
    /// The store or index failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<crate::store::StoreError> for EmbedError {
    fn from(e: crate::store::StoreError) -> Self {
        EmbedError::Service(ServiceError::Store(e))
    }
}

/// Embeds texts with one provider call, recording it; returns unit-length vectors in order.
pub async fn embed_texts(
    state: &AppState,
    tenant: &TenantId,
    client: &Arc<dyn Provider>,
    texts: Vec<String>,
    feature: Feature,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let n = texts.len();
    let started = Instant::now();
    let result = client
        .embed(&EmbeddingRequest {
            inputs: texts,
            dimensions: None,
        })
        .await;
    let (usage, outcome) = match &result {
        Ok(r) => (r.prompt_tokens.map(|p| Usage::new(p, 0)), CallOutcome::Ok),
        Err(e) => (None, CallOutcome::Error(e.kind)),
    };
    state.calls.record(&ModelCall {
        tenant,
        feature,
        provider: client.info(),
        usage,
        latency: started.elapsed(),
        outcome,
        cloud_fallback: None,
    });
    let response = result.map_err(|e| EmbedError::Provider(e.to_string()))?;
    if response.vectors.len() != n {
        return Err(EmbedError::Provider(format!(
            "asked for {n} vectors, got {}",
            response.vectors.len()
        )));
    }
    let dims = response.vectors.first().map(Vec::len).unwrap_or(0);
    if dims == 0 || response.vectors.iter().any(|v| v.len() != dims) {
        return Err(EmbedError::Provider(
            "the vectors are empty or of different sizes".to_owned(),
        ));
    }
    Ok(response
        .vectors
        .into_iter()
        .map(|mut v| {
            normalize(&mut v);
            v
        })
        .collect())
}

/// Runs forever.
pub async fn run(data: Arc<Data>, state: Arc<AppState>) {
    let mut backoff: HashMap<String, (Instant, u32)> = HashMap::new();
    loop {
        if let Err(e) = cycle(&data, &state, &mut backoff).await {
            tracing::warn!(error = %e, "embedding pipeline cycle failed");
        }
        tokio::select! {
            () = data.embed_wakeup.notified() => {}
            () = tokio::time::sleep(data.settings.index_refresh.max(Duration::from_secs(1))) => {}
        }
    }
}

/// One pass over every tenant without backoff bookkeeping (for tests and tools); the first
/// provider failure is returned.
pub async fn run_once(data: &Arc<Data>, state: &Arc<AppState>) -> Result<(), EmbedError> {
    let published = state.current();
    let Some(model) = model_key(&published.config.embeddings) else {
        return Ok(());
    };
    for head in data.store.feed_heads().await? {
        let Ok(tenant) = TenantId::parse(&head.tenant) else {
            continue;
        };
        let client = match state.routes.embeddings(&tenant, &published).await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(e) => return Err(EmbedError::Provider(e.to_string())),
        };
        embed_tenant(data, state, &tenant, &model, &client, head.seq).await?;
    }
    Ok(())
}

async fn cycle(
    data: &Arc<Data>,
    state: &Arc<AppState>,
    backoff: &mut HashMap<String, (Instant, u32)>,
) -> Result<(), EmbedError> {
    let published = state.current();
    let Some(model) = model_key(&published.config.embeddings) else {
        return Ok(());
    };
    let heads = data.store.feed_heads().await?;
    for head in heads {
        let Ok(tenant) = TenantId::parse(&head.tenant) else {
            continue;
        };
        if let Some((until, _)) = backoff.get(&head.tenant)
            && Instant::now() < *until
        {
            continue;
        }
        let client = match state.routes.embeddings(&tenant, &published).await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(e) => {
                note_failure(backoff, &head.tenant, &e.to_string());
                continue;
            }
        };
        match embed_tenant(data, state, &tenant, &model, &client, head.seq).await {
            Ok(()) => {
                backoff.remove(&head.tenant);
            }
            Err(EmbedError::Provider(why)) => note_failure(backoff, &head.tenant, &why),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn note_failure(backoff: &mut HashMap<String, (Instant, u32)>, tenant: &str, why: &str) {
    let failures = backoff.get(tenant).map(|(_, n)| n + 1).unwrap_or(1);
    let wait = (Duration::from_secs(5) * 2u32.saturating_pow(failures.min(6))).min(MAX_BACKOFF);
    tracing::warn!(
        tenant,
        error = why,
        retry_in_s = wait.as_secs(),
        "embedding failed; keyword search is unaffected, vectors will catch up"
    );
    backoff.insert(tenant.to_owned(), (Instant::now() + wait, failures));
}

/// Embeds one tenant's data written after its job's watermark, up to batch `target`.
async fn embed_tenant(
    data: &Arc<Data>,
    state: &Arc<AppState>,
    tenant: &TenantId,
    model: &str,
    client: &Arc<dyn Provider>,
    target: i64,
) -> Result<(), EmbedError> {
    let Some(job) = data
        .store
        .claim_embedding_job(tenant, model, &data.replica_id, LEASE)
        .await?
    else {
        return Ok(());
    };
    if job.done_seq >= target {
        if !job.complete {
            finish(data, tenant, model, job.done_seq).await?;
        }
        return Ok(());
    }
    let from = job.done_seq;

    let mut chunks: Vec<Chunk> = Vec::new();
    for doc in data
        .store
        .incident_docs_between(tenant, from, target)
        .await?
    {
        chunks.push(incident_chunk(&doc.incident));
    }
    for (rb, _) in data.store.runbooks_between(tenant, from, target).await? {
        chunks.extend(runbook_chunks(&rb));
    }
    // Every shape of batch `from` is embedded already: start after all of them.
    let mut cursor = (from, i64::MAX);
    loop {
        let page = data
            .store
            .templates_after(tenant, cursor.0, cursor.1, target, TEMPLATE_PAGE)
            .await?;
        let full = page.len() as u32 == TEMPLATE_PAGE;
        if let Some(last) = page.last() {
            cursor = (last.seq, last.template);
        }
        chunks.extend(page.iter().map(template_chunk));
        if !full {
            break;
        }
    }

    let todo = unchanged_filter(data, tenant, model, chunks).await?;
    let total = todo.len();
    let report = total >= PROGRESS_THRESHOLD;
    if report {
        tracing::info!(tenant = %tenant, model, chunks = total, "embedding backfill started");
    }
    let mut done = 0usize;
    let mut last_report = Instant::now();
    for batch in todo.chunks(BATCH) {
        let texts: Vec<String> = batch.iter().map(|c| c.text.clone()).collect();
        let vectors = embed_texts(state, tenant, client, texts, Feature::Embeddings).await?;
        let rows: Vec<crate::store::vectors::VectorRow> = batch
            .iter()
            .zip(vectors)
            .map(|(c, v)| crate::store::vectors::VectorRow {
                kind: c.kind.to_owned(),
                doc_id: c.doc_id.clone(),
                chunk: c.chunk,
                content_hash: c.hash.clone(),
                vector: v,
                vseq: 0,
            })
            .collect();
        data.store.put_vectors(tenant, model, &rows).await?;
        done += batch.len();
        if report && last_report.elapsed() >= Duration::from_secs(5) {
            tracing::info!(tenant = %tenant, model, done, of = total, "embedding backfill progress");
            last_report = Instant::now();
            // Long backfills keep their lease.
            data.store
                .claim_embedding_job(tenant, model, &data.replica_id, LEASE)
                .await?;
        }
    }
    if report {
        tracing::info!(tenant = %tenant, model, chunks = total, "embedding backfill finished");
    }
    finish(data, tenant, model, target).await?;
    // New vectors: let the indexer refresh this replica's vector set now.
    data.index_wakeup.notify_one();
    Ok(())
}

/// Marks the job caught up; the first time, drops the previous model's vectors.
async fn finish(
    data: &Arc<Data>,
    tenant: &TenantId,
    model: &str,
    done_seq: i64,
) -> Result<(), EmbedError> {
    let was_complete = data
        .store
        .embedding_job(tenant, model)
        .await?
        .is_some_and(|j| j.complete);
    let owned = data
        .store
        .advance_embedding_job(tenant, model, &data.replica_id, done_seq, true)
        .await?;
    if owned && !was_complete {
        let dropped = data.store.drop_other_models(tenant, model).await?;
        tracing::info!(tenant = %tenant, model, old_vectors_dropped = dropped, "embeddings caught up with the data");
    }
    Ok(())
}

/// Drops chunks whose text was already embedded with this model.
async fn unchanged_filter(
    data: &Arc<Data>,
    tenant: &TenantId,
    model: &str,
    chunks: Vec<Chunk>,
) -> Result<Vec<Chunk>, EmbedError> {
    let mut by_kind: HashMap<&'static str, Vec<String>> = HashMap::new();
    for c in &chunks {
        by_kind.entry(c.kind).or_default().push(c.doc_id.clone());
    }
    let mut known: HashMap<(&'static str, String, i32), String> = HashMap::new();
    for (kind, mut ids) in by_kind {
        ids.sort();
        ids.dedup();
        for ((doc, chunk), hash) in data.store.vector_hashes(tenant, model, kind, &ids).await? {
            known.insert((kind, doc, chunk), hash);
        }
    }
    Ok(chunks
        .into_iter()
        .filter(|c| known.get(&(c.kind, c.doc_id.clone(), c.chunk)) != Some(&c.hash))
        .collect())
}

//! Each replica's in-memory copy of the stored vectors, per tenant, for the embedding model in
//! force, searched by brute force (exact cosine similarity over every vector of the tenant).
//!
//! Brute force is exact and needs no index build. Its cost is one dot product per stored
//! chunk: about 20 ms for 100,000 chunks of 1,536 dimensions on one core, growing linearly,
//! and 4 bytes per dimension per chunk of memory. Beyond a few hundred thousand chunks per
//! tenant an approximate index (HNSW) would be needed; at the volumes the tenant plane stores
//! (log lines are embedded per distinct message shape, not per line) it stays small.
//!
//! The copy tails the store's vector batches (`tenant_feed.vseq`), so vectors embedded by any
//! replica appear here within one index refresh.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use atlasai_core::TenantId;

use crate::store::{Store, StoreError};

/// Vectors loaded per query to the store while catching up.
const PAGE: u32 = 2000;

/// One vector-search match: a document chunk and its cosine similarity.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    /// `incident`, `runbook` or `log_template`.
    pub kind: String,
    /// The document.
    pub doc_id: String,
    /// The best-matching chunk.
    pub chunk: i32,
    /// Cosine similarity, -1 to 1.
    pub score: f32,
}

#[derive(Debug)]
struct Entry {
    kind: String,
    doc_id: String,
    chunk: i32,
    vector: Vec<f32>,
}

/// One tenant's vectors for one model.
#[derive(Debug)]
pub struct VectorSet {
    model: String,
    entries: Vec<Entry>,
    position: HashMap<(String, String, i32), usize>,
    cursor: (i64, String, String, i32),
    /// Whether the model's embedding job has caught up at least once.
    pub complete: bool,
    /// The data batch the job has embedded up to.
    pub done_seq: i64,
}

impl VectorSet {
    fn new(model: &str) -> VectorSet {
        VectorSet {
            model: model.to_owned(),
            entries: Vec::new(),
            position: HashMap::new(),
            cursor: (0, String::new(), String::new(), 0),
            complete: false,
            done_seq: 0,
        }
    }

    /// The model.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The vector batch loaded up to.
    pub fn vseq(&self) -> i64 {
        self.cursor.0
    }

    /// How many vectors are loaded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `limit` best documents of the given kinds (all when empty), by their best chunk.
    pub fn search(&self, query: &[f32], kinds: &[&str], limit: usize) -> Vec<VectorHit> {
        let mut best: HashMap<(&str, &str), (f32, i32)> = HashMap::new();
        for e in &self.entries {
            if !kinds.is_empty() && !kinds.contains(&e.kind.as_str()) {
                continue;
            }
            if e.vector.len() != query.len() {
                continue;
            }
            let score = dot(&e.vector, query);
            let slot = best
                .entry((e.kind.as_str(), e.doc_id.as_str()))
                .or_insert((f32::MIN, e.chunk));
            if score > slot.0 {
                *slot = (score, e.chunk);
            }
        }
        let mut hits: Vec<VectorHit> = best
            .into_iter()
            .map(|((kind, doc_id), (score, chunk))| VectorHit {
                kind: kind.to_owned(),
                doc_id: doc_id.to_owned(),
                chunk,
                score,
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.doc_id.cmp(&b.doc_id))
        });
        hits.truncate(limit);
        hits
    }
}

/// The dot product; vectors are stored and queried at unit length, so this is the cosine.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// Every tenant's vector set on this replica.
#[derive(Debug, Default)]
pub struct VectorSets {
    sets: RwLock<HashMap<String, Arc<RwLock<VectorSet>>>>,
}

impl VectorSets {
    /// A tenant's set, if loaded.
    pub fn get(&self, tenant: &TenantId) -> Option<Arc<RwLock<VectorSet>>> {
        self.sets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant.as_str())
            .cloned()
    }

    /// Brings a tenant's set up to date with the store for `model` (starting over when the
    /// model changed), loading only vectors written since the last refresh.
    pub async fn refresh(
        &self,
        store: &Store,
        tenant: &TenantId,
        model: &str,
    ) -> Result<(), StoreError> {
        let set = {
            let mut sets = self.sets.write().unwrap_or_else(PoisonError::into_inner);
            let entry = sets
                .entry(tenant.to_string())
                .or_insert_with(|| Arc::new(RwLock::new(VectorSet::new(model))));
            let stale = entry.read().unwrap_or_else(PoisonError::into_inner).model != model;
            if stale {
                *entry = Arc::new(RwLock::new(VectorSet::new(model)));
            }
            entry.clone()
        };
        let job = store.embedding_job(tenant, model).await?;
        loop {
            let cursor = set
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .cursor
                .clone();
            let rows = store.vectors_after(tenant, model, &cursor, PAGE).await?;
            if rows.is_empty() {
                break;
            }
            let full = rows.len() as u32 == PAGE;
            let mut s = set.write().unwrap_or_else(PoisonError::into_inner);
            for r in rows {
                s.cursor = (r.vseq, r.kind.clone(), r.doc_id.clone(), r.chunk);
                let key = (r.kind.clone(), r.doc_id.clone(), r.chunk);
                let entry = Entry {
                    kind: r.kind,
                    doc_id: r.doc_id,
                    chunk: r.chunk,
                    vector: r.vector,
                };
                match s.position.get(&key) {
                    Some(&i) => s.entries[i] = entry,
                    None => {
                        let i = s.entries.len();
                        s.entries.push(entry);
                        s.position.insert(key, i);
                    }
                }
            }
            if !full {
                break;
            }
        }
        let mut s = set.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(job) = job {
            s.complete = job.complete;
            s.done_seq = job.done_seq;
        }
        Ok(())
    }

    /// Drops every set (embeddings switched off).
    pub fn clear(&self) {
        self.sets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, id: &str, chunk: i32, v: &[f32]) -> Entry {
        let mut v = v.to_vec();
        normalize(&mut v);
        Entry {
            kind: kind.into(),
            doc_id: id.into(),
            chunk,
            vector: v,
        }
    }

    #[test]
    fn best_chunk_per_document_in_score_order() {
        let mut set = VectorSet::new("m");
        set.entries = vec![
            entry("runbook", "r1", 0, &[1.0, 0.0]),
            entry("runbook", "r1", 1, &[0.6, 0.8]),
            entry("incident", "i1", 0, &[0.0, 1.0]),
            entry("incident", "i2", 0, &[-1.0, 0.0]),
        ];
        let hits = set.search(&[0.0, 1.0], &[], 10);
        assert_eq!(hits[0].doc_id, "i1");
        assert_eq!(hits[1].doc_id, "r1");
        assert_eq!(hits[1].chunk, 1, "the best chunk represents the document");
        assert_eq!(hits.len(), 3, "one hit per document");
        let only = set.search(&[0.0, 1.0], &["runbook"], 10);
        assert_eq!(only.len(), 1);
        assert!(
            set.search(&[1.0, 0.0, 0.0], &[], 10).is_empty(),
            "other dimensions never match"
        );
    }
}

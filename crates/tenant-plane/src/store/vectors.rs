//! Embedding vectors and embedding progress. Vectors are tagged with the model that made them
//! (`provider:model`); search compares only vectors of the model in force.
//!
//! Progress is one row per tenant and model with a lease, so that with several replicas on one
//! PostgreSQL database exactly one of them embeds a tenant's new data at a time (the lease
//! expires if that replica dies, and another takes over).

use std::collections::HashMap;
use std::time::Duration;

use atlasai_core::TenantId;

use super::{Context, Store, StoreError, Timestamp, with_pool};

/// Bumps the tenant's vector batch number; the first statement of a vector write.
const NEXT_VSEQ: &str = "INSERT INTO tenant_feed (tenant, seq, vseq) VALUES ($1, 0, 1) \
     ON CONFLICT (tenant) DO UPDATE SET vseq = tenant_feed.vseq + 1 RETURNING vseq";

/// Rows per upsert: 9 columns each.
const ROWS_PER_UPSERT: usize = 500;

/// What kind of text a vector was made from.
pub mod kind {
    /// An incident's title, service and description.
    pub const INCIDENT: &str = "incident";
    /// A section of a runbook.
    pub const RUNBOOK: &str = "runbook";
    /// A distinct log message shape.
    pub const LOG_TEMPLATE: &str = "log_template";
}

/// One stored vector.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorRow {
    /// `incident`, `runbook` or `log_template`.
    pub kind: String,
    /// The incident or runbook id, or the template number as text.
    pub doc_id: String,
    /// The chunk number within the document.
    pub chunk: i32,
    /// A hash of the text embedded, to skip unchanged text.
    pub content_hash: String,
    /// The vector (unit length).
    pub vector: Vec<f32>,
    /// The vector batch that wrote it.
    pub vseq: i64,
}

/// Embedding progress for a tenant and model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingJob {
    /// The tenant.
    pub tenant: String,
    /// The model.
    pub model: String,
    /// Every data batch up to this one has been embedded.
    pub done_seq: i64,
    /// Whether the job has caught up with the data at least once (until then, search stays
    /// keyword-only rather than fusing a partial vector set).
    pub complete: bool,
    /// Which replica holds the lease, if any.
    pub lease_owner: Option<String>,
}

#[derive(sqlx::FromRow)]
struct VectorDbRow {
    kind: String,
    doc_id: String,
    chunk: i32,
    content_hash: String,
    vector: Vec<u8>,
    vseq: i64,
}

/// Encodes a vector as little-endian f32 bytes.
pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decodes [`encode_vector`]'s bytes.
pub fn decode_vector(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

impl Store {
    /// Takes (or renews) the lease on a tenant's embedding job for a model, creating the job
    /// when the model is new. `None` when another replica holds an unexpired lease.
    pub async fn claim_embedding_job(
        &self,
        tenant: &TenantId,
        model: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<EmbeddingJob>, StoreError> {
        let now = Timestamp::now();
        let until = now.plus(lease);
        let row: Option<(i64, bool)> = with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO embedding_jobs (tenant, model, done_seq, complete, lease_owner, lease_until, updated_at) \
                 VALUES ($1, $2, 0, FALSE, NULL, 0, $3) ON CONFLICT (tenant, model) DO NOTHING",
            )
            .bind(tenant.as_str())
            .bind(model)
            .bind(now.0)
            .execute(pool)
            .await
            .ctx("creating an embedding job")?;
            sqlx::query_as(
                "UPDATE embedding_jobs SET lease_owner = $3, lease_until = $4 \
                 WHERE tenant = $1 AND model = $2 \
                   AND (lease_owner IS NULL OR lease_owner = $3 OR lease_until < $5) \
                 RETURNING done_seq, complete",
            )
            .bind(tenant.as_str())
            .bind(model)
            .bind(owner)
            .bind(until.0)
            .bind(now.0)
            .fetch_optional(pool)
            .await
            .ctx("claiming an embedding job")?
        });
        Ok(row.map(|(done_seq, complete)| EmbeddingJob {
            tenant: tenant.to_string(),
            model: model.to_owned(),
            done_seq,
            complete,
            lease_owner: Some(owner.to_owned()),
        }))
    }

    /// Records progress; returns false when the lease was lost (another replica took over).
    pub async fn advance_embedding_job(
        &self,
        tenant: &TenantId,
        model: &str,
        owner: &str,
        done_seq: i64,
        complete: bool,
    ) -> Result<bool, StoreError> {
        let now = Timestamp::now();
        let n = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE embedding_jobs SET done_seq = $4, complete = (complete OR $5), updated_at = $6 \
                 WHERE tenant = $1 AND model = $2 AND lease_owner = $3",
            )
            .bind(tenant.as_str())
            .bind(model)
            .bind(owner)
            .bind(done_seq)
            .bind(complete)
            .bind(now.0)
            .execute(pool)
            .await
            .ctx("recording embedding progress")?
            .rows_affected()
        });
        Ok(n > 0)
    }

    /// Gives up a lease (at shutdown, so another replica need not wait for it to expire).
    pub async fn release_embedding_job(
        &self,
        tenant: &TenantId,
        model: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE embedding_jobs SET lease_owner = NULL, lease_until = 0 \
                 WHERE tenant = $1 AND model = $2 AND lease_owner = $3",
            )
            .bind(tenant.as_str())
            .bind(model)
            .bind(owner)
            .execute(pool)
            .await
            .ctx("releasing an embedding job")?;
        });
        Ok(())
    }

    /// A tenant's embedding job for a model, if it exists.
    pub async fn embedding_job(
        &self,
        tenant: &TenantId,
        model: &str,
    ) -> Result<Option<EmbeddingJob>, StoreError> {
        let row: Option<(i64, bool, Option<String>)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT done_seq, complete, lease_owner FROM embedding_jobs WHERE tenant = $1 AND model = $2",
            )
            .bind(tenant.as_str())
            .bind(model)
            .fetch_optional(pool)
            .await
            .ctx("reading an embedding job")?
        });
        Ok(row.map(|(done_seq, complete, lease_owner)| EmbeddingJob {
            tenant: tenant.to_string(),
            model: model.to_owned(),
            done_seq,
            complete,
            lease_owner,
        }))
    }

    /// The content hashes already stored for these documents under a model, keyed by
    /// (doc_id, chunk).
    pub async fn vector_hashes(
        &self,
        tenant: &TenantId,
        model: &str,
        kind: &str,
        doc_ids: &[String],
    ) -> Result<HashMap<(String, i32), String>, StoreError> {
        let mut out = HashMap::new();
        for chunk in doc_ids.chunks(500) {
            let rows: Vec<(String, i32, String)> = with_pool!(self, |pool| {
                let mut q = sqlx::QueryBuilder::new(
                    "SELECT doc_id, chunk, content_hash FROM embeddings WHERE tenant = ",
                );
                q.push_bind(tenant.as_str())
                    .push(" AND model = ")
                    .push_bind(model.to_owned())
                    .push(" AND kind = ")
                    .push_bind(kind.to_owned())
                    .push(" AND doc_id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(id.clone());
                }
                q.push(")");
                q.build_query_as()
                    .fetch_all(pool)
                    .await
                    .ctx("reading stored vector hashes")?
            });
            for (doc, c, hash) in rows {
                out.insert((doc, c), hash);
            }
        }
        Ok(out)
    }

    /// Stores vectors (replacing any for the same document chunk and model) under a new
    /// vector batch number, which it returns.
    pub async fn put_vectors(
        &self,
        tenant: &TenantId,
        model: &str,
        rows: &[VectorRow],
    ) -> Result<i64, StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool
                .begin_with(self.begin_write())
                .await
                .ctx("starting a transaction")?;
            let vseq: i64 = sqlx::query_scalar(NEXT_VSEQ)
                .bind(tenant.as_str())
                .fetch_one(&mut *tx)
                .await
                .ctx("numbering the vector write")?;
            for chunk in rows.chunks(ROWS_PER_UPSERT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO embeddings (tenant, model, kind, doc_id, chunk, content_hash, dims, vector, vseq) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(tenant.as_str())
                        .push_bind(model.to_owned())
                        .push_bind(r.kind.clone())
                        .push_bind(r.doc_id.clone())
                        .push_bind(r.chunk)
                        .push_bind(r.content_hash.clone())
                        .push_bind(r.vector.len() as i32)
                        .push_bind(encode_vector(&r.vector))
                        .push_bind(vseq);
                });
                q.push(
                    " ON CONFLICT (tenant, model, kind, doc_id, chunk) DO UPDATE SET \
                     content_hash = excluded.content_hash, dims = excluded.dims, \
                     vector = excluded.vector, vseq = excluded.vseq",
                );
                q.build()
                    .persistent(false)
                    .execute(&mut *tx)
                    .await
                    .ctx("storing vectors")?;
            }
            tx.commit().await.ctx("committing vectors")?;
            Ok(vseq)
        })
    }

    /// Vectors of a model written after `(after_vseq, kind, doc_id, chunk)`, one page in
    /// write order: what each replica's in-memory vector set tails.
    pub async fn vectors_after(
        &self,
        tenant: &TenantId,
        model: &str,
        after: &(i64, String, String, i32),
        limit: u32,
    ) -> Result<Vec<VectorRow>, StoreError> {
        let rows: Vec<VectorDbRow> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, doc_id, chunk, content_hash, vector, vseq FROM embeddings \
                 WHERE tenant = $1 AND model = $2 AND (vseq, kind, doc_id, chunk) > ($3, $4, $5, $6) \
                 ORDER BY vseq, kind, doc_id, chunk LIMIT $7",
            )
            .bind(tenant.as_str())
            .bind(model)
            .bind(after.0)
            .bind(&after.1)
            .bind(&after.2)
            .bind(after.3)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .ctx("reading vectors")?
        });
        Ok(rows
            .into_iter()
            .map(|r| VectorRow {
                kind: r.kind,
                doc_id: r.doc_id,
                chunk: r.chunk,
                content_hash: r.content_hash,
                vector: decode_vector(&r.vector),
                vseq: r.vseq,
            })
            .collect())
    }

    /// How many vectors a tenant has for a model.
    pub async fn vector_count(&self, tenant: &TenantId, model: &str) -> Result<i64, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM embeddings WHERE tenant = $1 AND model = $2")
                .bind(tenant.as_str())
                .bind(model)
                .fetch_one(pool)
                .await
                .ctx("counting vectors")
        })
    }

    /// Deletes a tenant's vectors and jobs of every model but this one (after this one has
    /// caught up, so search never lacks vectors while a new model backfills).
    pub async fn drop_other_models(
        &self,
        tenant: &TenantId,
        model: &str,
    ) -> Result<u64, StoreError> {
        with_pool!(self, |pool| {
            let mut tx = pool
                .begin_with(self.begin_write())
                .await
                .ctx("starting a transaction")?;
            let n = sqlx::query("DELETE FROM embeddings WHERE tenant = $1 AND model <> $2")
                .bind(tenant.as_str())
                .bind(model)
                .execute(&mut *tx)
                .await
                .ctx("deleting vectors of an old model")?
                .rows_affected();
            sqlx::query("DELETE FROM embedding_jobs WHERE tenant = $1 AND model <> $2")
                .bind(tenant.as_str())
                .bind(model)
                .execute(&mut *tx)
                .await
                .ctx("deleting jobs of an old model")?;
            tx.commit().await.ctx("committing")?;
            Ok(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_through_bytes() {
        let v = vec![0.25f32, -1.5, 3.0e-7, f32::MAX];
        assert_eq!(decode_vector(&encode_vector(&v)), v);
    }
}

//! The per-tenant write feed: every write transaction bumps its tenant's batch number first,
//! and rows carry the batch that last touched them. Readers on any replica (the search index,
//! the embedder, vector caches) remember the last batch they processed and ask for what came
//! after.
//!
//! Why this is safe with concurrent writers: the bump is an upsert on the tenant's row, which
//! holds that row's lock until the transaction ends. The next writer of the same tenant waits
//! for it, then reads the committed value. So batch N+1 commits after batch N, and a reader
//! that sees head N (in its own snapshot) also sees every row of batches up to N.

use atlasai_core::TenantId;

use super::{Context, Store, StoreError, with_pool};

/// A tenant's latest batch numbers.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FeedHead {
    /// The tenant.
    pub tenant: String,
    /// The latest data batch.
    pub seq: i64,
    /// The latest vector batch.
    pub vseq: i64,
}

impl Store {
    /// Every tenant's latest batch numbers.
    pub async fn feed_heads(&self) -> Result<Vec<FeedHead>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_as("SELECT tenant, seq, vseq FROM tenant_feed ORDER BY tenant")
                .fetch_all(pool)
                .await
                .ctx("reading the write feed")
        })
    }

    /// One tenant's latest batch numbers (zeros for a tenant that never wrote).
    pub async fn feed_head(&self, tenant: &TenantId) -> Result<FeedHead, StoreError> {
        let head: Option<FeedHead> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT tenant, seq, vseq FROM tenant_feed WHERE tenant = $1")
                .bind(tenant.as_str())
                .fetch_optional(pool)
                .await
                .ctx("reading the write feed")?
        });
        Ok(head.unwrap_or(FeedHead {
            tenant: tenant.to_string(),
            seq: 0,
            vseq: 0,
        }))
    }
}

//! The indexer: a background task on every replica that tails the store's write feed into the
//! keyword index and refreshes the in-memory vector sets.
//!
//! Each cycle reads every tenant's latest batch number, indexes what was written after the
//! index's watermark for that tenant, and commits the documents together with the new
//! watermarks (in the same tantivy commit, so a crash never leaves them out of step). A cycle
//! runs as soon as this replica commits a write, and otherwise every `TP_INDEX_REFRESH`
//! (which is how writes accepted by other replicas arrive). Commits are at least
//! [`MIN_COMMIT_GAP`] apart, so a stream of small writes is indexed in batches.
//!
//! Searchable within: about `MIN_COMMIT_GAP` plus the commit on the replica that took the
//! write; `TP_INDEX_REFRESH` plus that on the others.
//!
//! While a cycle finds nothing new the index's writer is released (its memory and threads
//! freed); the next write opens it again.
//!
//! Log lines are append-only and added once; the watermark only moves at batch boundaries, so
//! a restart never indexes a line twice. Incidents and runbooks are replaced by id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlasai_core::TenantId;

use crate::data::{Data, ServiceError, blocking};
use crate::state::AppState;

/// The shortest time between two commits.
pub const MIN_COMMIT_GAP: Duration = Duration::from_millis(200);
/// Log lines read from the store per query.
const PAGE: u32 = 5000;
/// During a large catch-up, commit (at a batch boundary) after this many documents, so
/// progress survives a restart and shows in searches.
const COMMIT_EVERY: usize = 200_000;
/// Catch-ups larger than this log their progress.
const PROGRESS_THRESHOLD: i64 = 20_000;

/// Runs forever.
pub async fn run(data: Arc<Data>, state: Arc<AppState>) {
    let mut last_commit = Instant::now() - MIN_COMMIT_GAP;
    let mut failures = 0u32;
    loop {
        let since = last_commit.elapsed();
        if since < MIN_COMMIT_GAP {
            tokio::time::sleep(MIN_COMMIT_GAP - since).await;
        }
        match cycle(&data, &state).await {
            Ok(committed) => {
                failures = 0;
                if committed {
                    last_commit = Instant::now();
                } else {
                    // Nothing new: free the writer until there is (see `release_writer`).
                    let index = data.index.clone();
                    match blocking(move || index.release_writer()).await {
                        Ok(true) => tracing::debug!("search index idle: writer released"),
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "search index: releasing the writer failed")
                        }
                    }
                }
            }
            Err(e) => {
                failures += 1;
                // Uncommitted additions would be added again next time: drop them.
                let index = data.index.clone();
                let _ = blocking(move || index.rollback()).await;
                tracing::warn!(error = %e, failures, "search index update failed; retrying");
            }
        }
        let wait = if failures == 0 {
            data.settings.index_refresh
        } else {
            (data.settings.index_refresh * 2u32.saturating_pow(failures.min(6)))
                .min(Duration::from_secs(60))
        };
        tokio::select! {
            () = data.index_wakeup.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One pass over every tenant. Returns whether anything was committed.
pub async fn cycle(data: &Arc<Data>, state: &Arc<AppState>) -> Result<bool, ServiceError> {
    let heads = data.store.feed_heads().await?;
    let mut marks = data.index.watermarks();
    let mut changed = false;
    let mut pending = 0usize;
    for head in &heads {
        let Ok(tenant) = TenantId::parse(&head.tenant) else {
            continue;
        };
        let mut wm = marks.get(&head.tenant).copied().unwrap_or(0);
        if wm > head.seq {
            // The store has less than the index (restored from a backup, or reset): start
            // this tenant over rather than show what is no longer stored.
            tracing::warn!(
                tenant = %tenant,
                indexed = wm,
                stored = head.seq,
                "search index is ahead of the store; re-indexing the tenant"
            );
            data.index.delete_tenant(tenant.as_str())?;
            wm = 0;
            marks.insert(head.tenant.clone(), 0);
            changed = true;
        }
        if head.seq == wm {
            continue;
        }
        let target = head.seq;
        let incidents = data
            .store
            .incident_docs_between(&tenant, wm, target)
            .await?;
        let runbooks = data.store.runbooks_between(&tenant, wm, target).await?;
        pending += incidents.len() + runbooks.len();
        {
            let index = data.index.clone();
            let t = head.tenant.clone();
            blocking(move || {
                for doc in &incidents {
                    index.put_incident(&t, doc)?;
                }
                for (rb, _) in &runbooks {
                    index.put_runbook(&t, rb)?;
                }
                Ok(())
            })
            .await?;
        }

        let backlog = if target - wm > 1 || wm == 0 {
            data.store
                .count_log_lines_between(&tenant, wm, target)
                .await?
        } else {
            0
        };
        let report = backlog >= PROGRESS_THRESHOLD;
        if report {
            tracing::info!(tenant = %tenant, log_lines = backlog, from_batch = wm, "search index: catching up");
        }
        let mut done: i64 = 0;
        // Batch `wm` is fully indexed: start after it, then after the last line seen.
        let mut cursor: (i64, Option<String>) = (wm, None);
        loop {
            let page = data
                .store
                .log_lines_after(&tenant, cursor.0, cursor.1.as_deref(), target, PAGE)
                .await?;
            let Some(first) = page.first() else {
                break;
            };
            // Every line of batch `cursor.0` is in: a safe point to commit a large catch-up.
            if pending >= COMMIT_EVERY && first.seq > cursor.0 && cursor.0 > wm {
                marks.insert(head.tenant.clone(), cursor.0);
                commit(data, &marks).await?;
                pending = 0;
                if report {
                    tracing::info!(tenant = %tenant, indexed = done, of = backlog, "search index: progress");
                }
            }
            let full = page.len() as u32 == PAGE;
            if let Some(last) = page.last() {
                cursor = (last.seq, Some(last.id.clone()));
            }
            done += page.len() as i64;
            pending += page.len();
            let index = data.index.clone();
            let t = head.tenant.clone();
            blocking(move || index.add_logs(&t, &page)).await?;
            if !full {
                break;
            }
        }
        marks.insert(head.tenant.clone(), target);
        changed = true;
        if report {
            tracing::info!(tenant = %tenant, indexed = done, "search index: caught up");
        }
    }
    if changed {
        commit(data, &marks).await?;
    }
    refresh_vectors(data, state, &heads).await;
    Ok(changed)
}

async fn commit(
    data: &Arc<Data>,
    marks: &std::collections::BTreeMap<String, i64>,
) -> Result<(), ServiceError> {
    let index = data.index.clone();
    let marks = marks.clone();
    blocking(move || index.commit(marks)).await
}

/// Brings every tenant's vector set up to date for the embedding model in force.
async fn refresh_vectors(
    data: &Arc<Data>,
    state: &Arc<AppState>,
    heads: &[crate::store::feed::FeedHead],
) {
    let published = state.current();
    let Some(model) = crate::search::embedder::model_key(&published.config.embeddings) else {
        data.vectors.clear();
        return;
    };
    for head in heads {
        let Ok(tenant) = TenantId::parse(&head.tenant) else {
            continue;
        };
        let current = data.vectors.get(&tenant).map(|s| {
            let s = s.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            (s.model().to_owned(), s.vseq(), s.complete)
        });
        let fresh = matches!(&current, Some((m, vseq, complete)) if *m == model && *vseq >= head.vseq && *complete);
        if fresh {
            continue;
        }
        if let Err(e) = data.vectors.refresh(&data.store, &tenant, &model).await {
            tracing::warn!(tenant = %tenant, error = %e, "could not refresh vectors");
        }
    }
}

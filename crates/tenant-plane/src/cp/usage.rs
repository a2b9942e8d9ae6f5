//! Usage counts per tenant, route, provider and model, kept in memory between reports to the
//! control plane. Only counts: never prompts, answers or anything else a call carried.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use atlasai_core::protocol::{MANAGED_CHAT_PATH, UsageEntry, UsageRoute};

use crate::calls::{CallOutcome, ModelCall};

type Key = (String, UsageRoute, String, String);

/// Counts since the last report.
#[derive(Debug, Default)]
pub struct UsageCounter {
    counts: Mutex<HashMap<Key, UsageEntry>>,
}

impl UsageCounter {
    /// Adds one finished call.
    pub fn add(&self, call: &ModelCall<'_>) {
        // The managed model is reached through the control plane's managed endpoint; every
        // other client talks to the customer's own provider.
        let route = if call.provider.endpoint.path().ends_with(MANAGED_CHAT_PATH) {
            UsageRoute::Managed
        } else {
            UsageRoute::Byoc
        };
        let key = (
            call.tenant.to_string(),
            route,
            call.provider.kind.to_string(),
            call.provider.model.clone(),
        );
        let usage = call.usage.unwrap_or_default();
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let e = counts.entry(key).or_insert_with(|| UsageEntry {
            tenant_id: call.tenant.to_string(),
            route,
            provider: call.provider.kind.to_string(),
            model: call.provider.model.clone(),
            calls: 0,
            failed_calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
        });
        e.calls += 1;
        if !matches!(call.outcome, CallOutcome::Ok) {
            e.failed_calls += 1;
        }
        e.prompt_tokens += u64::from(usage.prompt_tokens);
        e.completion_tokens += u64::from(usage.completion_tokens);
    }

    /// Takes every count, returning the enrolled tenant's. Calls for other tenant ids
    /// (requests with another `x-tenant-id`) are not the control plane's business: the
    /// control plane only accepts a cluster's own tenant, so those counts are dropped here
    /// rather than kept forever.
    pub fn take_all_for(&self, tenant: &str) -> Vec<UsageEntry> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .drain()
            .filter(|(k, _)| k.0 == tenant)
            .map(|(_, v)| v)
            .collect()
    }
}

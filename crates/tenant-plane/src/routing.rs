//! Resolves which provider client serves a tenant, and caches the built clients so their
//! connection pools are reused. A cached route is rebuilt when the configuration or the
//! portal settings change (at once) or when it is older than `TP_ROUTING_CACHE_TTL` (so
//! credentials resolved at build time refresh within that time).
//!
//! Order: local `BYOC_*`/Helm settings, else the portal's settings for the tenant (from the
//! control plane), else the managed model through the control plane, else "not
//! configured". A customer's own provider is wrapped with the cloud-fallback policy when a
//! control plane is configured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use atlasai_core::TenantId;
use atlasai_core::protocol::ManagedReason;
use atlasai_providers::{Provider, ProviderError, build_chat_provider, build_embedding_provider};

use crate::cp::CpState;
use crate::cp::fallback::WithCloudFallback;
use crate::cp::managed::ManagedProvider;
use crate::state::Published;

/// Why no client could be had.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No provider is configured.
    #[error("AI provider not configured")]
    NotConfigured,
    /// The client could not be built (bad credentials file, credential chain failure).
    #[error("could not set up the provider client: {0}")]
    Build(ProviderError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Purpose {
    Chat,
    Embeddings,
}

#[derive(Debug)]
struct Cached {
    generation: u64,
    cp_generation: u64,
    built_at: Instant,
    client: Option<Arc<dyn Provider>>,
}

/// The route cache, keyed by tenant and purpose.
#[derive(Debug)]
pub struct Routes {
    ttl: Mutex<Duration>,
    cache: tokio::sync::Mutex<HashMap<(TenantId, Purpose), Cached>>,
    cp: Arc<CpState>,
}

impl Routes {
    /// An empty cache.
    pub fn new(ttl: Duration) -> Self {
        Routes {
            ttl: Mutex::new(ttl),
            cache: tokio::sync::Mutex::new(HashMap::new()),
            cp: Arc::new(CpState::default()),
        }
    }

    /// What the control plane has sent (portal settings, managed model, connection state).
    pub fn cp(&self) -> &Arc<CpState> {
        &self.cp
    }

    /// Changes the TTL (on reload).
    pub fn set_ttl(&self, ttl: Duration) {
        *self.ttl.lock().unwrap_or_else(PoisonError::into_inner) = ttl;
    }

    fn ttl(&self) -> Duration {
        *self.ttl.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The chat client for a tenant under a published configuration.
    pub async fn chat(
        &self,
        tenant: &TenantId,
        published: &Published,
    ) -> Result<Arc<dyn Provider>, RouteError> {
        self.get(tenant, published, Purpose::Chat)
            .await?
            .ok_or(RouteError::NotConfigured)
    }

    /// The embedding client for a tenant, or `None` for keyword-only search.
    pub async fn embeddings(
        &self,
        tenant: &TenantId,
        published: &Published,
    ) -> Result<Option<Arc<dyn Provider>>, RouteError> {
        self.get(tenant, published, Purpose::Embeddings).await
    }

    async fn get(
        &self,
        tenant: &TenantId,
        published: &Published,
        purpose: Purpose,
    ) -> Result<Option<Arc<dyn Provider>>, RouteError> {
        let ttl = self.ttl();
        let cp_generation = self.cp.generation();
        let mut cache = self.cache.lock().await;
        let key = (tenant.clone(), purpose);
        if let Some(c) = cache.get(&key)
            && c.generation == published.generation
            && c.cp_generation == cp_generation
            && c.built_at.elapsed() < ttl
        {
            return Ok(c.client.clone());
        }
        let config = &published.config;
        let portal = self.cp.portal_for(tenant);
        let client = match purpose {
            Purpose::Chat => {
                let own = match (&config.provider, &portal) {
                    (Some(local), _) => Some(build_chat_provider(local, &config.http).await),
                    (None, Some((_, p))) => Some(build_chat_provider(&p.chat, &config.http).await),
                    (None, None) => None,
                };
                match own {
                    Some(built) => {
                        let client = built.map_err(RouteError::Build)?;
                        Some(if config.cp.is_some() {
                            WithCloudFallback::wrap(
                                client,
                                self.cp.clone(),
                                tenant.clone(),
                                config.http.timeout,
                            )
                        } else {
                            client
                        })
                    }
                    None => self
                        .cp
                        .managed_for(tenant)
                        .and_then(|_| {
                            ManagedProvider::new(
                                self.cp.clone(),
                                ManagedReason::Default,
                                config.http.timeout,
                            )
                        })
                        .map(|m| Arc::new(m) as Arc<dyn Provider>),
                }
            }
            Purpose::Embeddings => {
                // Embeddings set locally win; otherwise the portal's, when it has any.
                let local_set = config
                    .report
                    .iter()
                    .any(|r| r.setting == "embeddings provider" && r.source.kind() != "default");
                let settings = match &portal {
                    Some((_, p)) if !local_set => &p.embeddings,
                    _ => &config.embeddings,
                };
                build_embedding_provider(settings, &config.http)
                    .await
                    .map_err(RouteError::Build)?
            }
        };
        cache.insert(
            key,
            Cached {
                generation: published.generation,
                cp_generation,
                built_at: Instant::now(),
                client: client.clone(),
            },
        );
        Ok(client)
    }

    /// Drops every cached client (after a reload).
    pub async fn clear(&self) {
        self.cache.lock().await.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigInputs, Env, load};

    fn published(generation: u64, model: &str) -> Published {
        let inputs = ConfigInputs {
            env: Env::from_pairs([
                ("BYOC_PROVIDER", "openai"),
                ("BYOC_ENDPOINT_URL", "http://127.0.0.1:9/v1"),
                ("BYOC_MODEL", model),
            ]),
            values_flag: None,
        };
        Published {
            generation,
            config: load(&inputs).unwrap(),
        }
    }

    #[tokio::test]
    async fn clients_are_reused_until_the_ttl_or_a_new_generation() {
        let routes = Routes::new(Duration::from_millis(200));
        let tenant = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("globex").unwrap();
        let p1 = published(1, "m1");
        let a = routes.chat(&tenant, &p1).await.unwrap();
        let b = routes.chat(&tenant, &p1).await.unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "same generation within the TTL reuses the client"
        );
        let c = routes.chat(&other, &p1).await.unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "routes are per tenant");

        let p2 = published(2, "m2");
        let d = routes.chat(&tenant, &p2).await.unwrap();
        assert!(!Arc::ptr_eq(&a, &d), "a new configuration rebuilds at once");
        assert_eq!(d.info().model, "m2");

        tokio::time::sleep(Duration::from_millis(250)).await;
        let e = routes.chat(&tenant, &p2).await.unwrap();
        assert!(!Arc::ptr_eq(&d, &e), "an expired route is rebuilt");
    }

    #[tokio::test]
    async fn no_provider_is_not_configured_and_fallback_embeddings_are_none() {
        let routes = Routes::new(Duration::from_secs(300));
        let tenant = TenantId::parse("acme").unwrap();
        let p = Published {
            generation: 1,
            config: load(&ConfigInputs::default()).unwrap(),
        };
        assert!(matches!(
            routes.chat(&tenant, &p).await,
            Err(RouteError::NotConfigured)
        ));
        assert!(routes.embeddings(&tenant, &p).await.unwrap().is_none());
    }
}

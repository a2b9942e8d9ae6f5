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

use atlasai_core::protocol::ManagedReason;
use atlasai_core::{RedactionPolicy, TenantId};
use atlasai_providers::breaker::{Breaker, BreakerConfig, CircuitState, Guarded};
use atlasai_providers::redact::Redacting;
use atlasai_providers::{Provider, ProviderError, build_chat_provider, build_embedding_provider};

use crate::calls::{Destination, Destinations};
use crate::config::Redaction;
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
    client: Option<Route>,
}

/// A built client: guarded by its endpoint's circuit breaker, and unguarded for the
/// connection test, which must reach the provider even while the circuit is open.
#[derive(Debug, Clone)]
pub struct Route {
    /// The client features use.
    pub guarded: Arc<dyn Provider>,
    /// The same client without the breaker.
    pub unguarded: Arc<dyn Provider>,
    /// The endpoint's breaker.
    pub breaker: Arc<Breaker>,
    /// Whether the endpoint is outside private address space: requests to it leave the
    /// customer's network.
    pub public: bool,
    /// Whether prompts are redacted before they leave.
    pub redacted: bool,
}

/// One lock per route being built (tenant, purpose).
type BuildLocks = HashMap<(String, Purpose), Arc<tokio::sync::Mutex<()>>>;

/// One tenant's cached routes.
#[derive(Debug, Default)]
struct TenantRoutes {
    chat: Option<Cached>,
    embeddings: Option<Cached>,
}

impl TenantRoutes {
    fn slot(&mut self, purpose: Purpose) -> &mut Option<Cached> {
        match purpose {
            Purpose::Chat => &mut self.chat,
            Purpose::Embeddings => &mut self.embeddings,
        }
    }
}

/// The route cache, keyed by tenant and purpose, and the circuit breakers, keyed by endpoint
/// (provider kind, base URL and model) so that their state survives route rebuilds.
///
/// Lookups take a short synchronous lock and allocate nothing on a hit (the request path).
/// Building a client can be slow (a credential chain fetching from instance metadata, a
/// service-account token exchange), so builds happen outside that lock, serialised per
/// route only: one slow build never holds up another tenant's requests.
#[derive(Debug)]
pub struct Routes {
    ttl: Mutex<Duration>,
    cache: Mutex<HashMap<String, TenantRoutes>>,
    building: tokio::sync::Mutex<BuildLocks>,
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
    breaker_config: BreakerConfig,
    cp: Arc<CpState>,
    destinations: Arc<Destinations>,
}

impl Routes {
    /// An empty cache.
    pub fn new(ttl: Duration) -> Self {
        Routes {
            ttl: Mutex::new(ttl),
            cache: Mutex::new(HashMap::new()),
            building: tokio::sync::Mutex::new(HashMap::new()),
            breakers: Mutex::new(HashMap::new()),
            breaker_config: BreakerConfig::default(),
            cp: Arc::new(CpState::default()),
            destinations: Arc::default(),
        }
    }

    /// What the control plane has sent (portal settings, managed model, connection state).
    pub fn cp(&self) -> &Arc<CpState> {
        &self.cp
    }

    /// Where each endpoint built so far sends data (shared with the call recorder, which
    /// audits every call with it).
    pub fn destinations(&self) -> Arc<Destinations> {
        self.destinations.clone()
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
        Ok(self.chat_route(tenant, published).await?.guarded)
    }

    /// The chat route, with its unguarded client and breaker (for the connection test).
    pub async fn chat_route(
        &self,
        tenant: &TenantId,
        published: &Published,
    ) -> Result<Route, RouteError> {
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
        Ok(self
            .embeddings_route(tenant, published)
            .await?
            .map(|r| r.guarded))
    }

    /// The embedding route, or `None` for keyword-only search.
    pub async fn embeddings_route(
        &self,
        tenant: &TenantId,
        published: &Published,
    ) -> Result<Option<Route>, RouteError> {
        self.get(tenant, published, Purpose::Embeddings).await
    }

    /// The circuit state of every endpoint seen, keyed `kind model @ host`.
    pub fn circuits(&self) -> Vec<(String, CircuitState)> {
        let breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<(String, CircuitState)> = breakers
            .iter()
            .map(|(k, b)| (k.clone(), b.state()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Wraps a built client with its endpoint's breaker (and redaction), and records where
    /// it sends data: the control plane for the managed model, else by the endpoint's
    /// address.
    async fn guard(&self, client: Arc<dyn Provider>, redaction: Redaction, managed: bool) -> Route {
        let public = is_public(&client.info().endpoint).await;
        self.destinations.set(
            &client.info().endpoint,
            if managed {
                Destination::ControlPlane
            } else if public {
                Destination::Public
            } else {
                Destination::Private
            },
        );
        let redacted = match redaction {
            Redaction::On => true,
            Redaction::Off => false,
            Redaction::Auto => public,
        };
        let client = if redacted {
            Redacting::wrap(client)
        } else {
            client
        };
        let info = client.info();
        let host = info.endpoint_host();
        let key = format!(
            "{} {} @ {}",
            info.kind,
            info.model,
            if host.is_empty() {
                info.endpoint.as_str()
            } else {
                &host
            }
        );
        let breaker = self
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| Breaker::new(self.breaker_config))
            .clone();
        Route {
            guarded: Guarded::wrap(client.clone(), breaker.clone()),
            unguarded: client,
            breaker,
            public,
            redacted,
        }
    }

    async fn get(
        &self,
        tenant: &TenantId,
        published: &Published,
        purpose: Purpose,
    ) -> Result<Option<Route>, RouteError> {
        let ttl = self.ttl();
        let cp_generation = self.cp.generation();
        let fresh = |c: &Cached| {
            c.generation == published.generation
                && c.cp_generation == cp_generation
                && c.built_at.elapsed() < ttl
        };
        if let Some(hit) = self.cached(tenant, purpose, &fresh) {
            return Ok(hit);
        }
        // Miss: build under this route's own lock, so concurrent requests for the same route
        // wait for one build while other routes are served.
        let build_lock = self
            .building
            .lock()
            .await
            .entry((tenant.as_str().to_owned(), purpose))
            .or_default()
            .clone();
        let _building = build_lock.lock().await;
        if let Some(hit) = self.cached(tenant, purpose, &fresh) {
            return Ok(hit);
        }
        let config = &published.config;
        let portal = self.cp.portal_for(tenant);
        // A tenant plane set to redact always or never keeps its setting; otherwise (auto, the
        // default) the portal's choice for this tenant applies.
        let redaction = match (
            config.redaction,
            portal.as_ref().and_then(|(_, p)| p.redaction),
        ) {
            (Redaction::Auto, Some(RedactionPolicy::On)) => Redaction::On,
            (Redaction::Auto, Some(RedactionPolicy::Off)) => Redaction::Off,
            (local, _) => local,
        };
        let route = match purpose {
            Purpose::Chat => {
                let own = match (&config.provider, &portal) {
                    (Some(local), _) => Some(build_chat_provider(local, &config.http).await),
                    (None, Some((_, p))) => Some(build_chat_provider(&p.chat, &config.http).await),
                    (None, None) => None,
                };
                match own {
                    Some(built) => {
                        // Redaction and the breaker wrap the customer's own provider; the cloud
                        // fallback wraps those, so an open circuit falls back at once instead
                        // of waiting out the provider's retries on every request.
                        let route = self
                            .guard(built.map_err(RouteError::Build)?, redaction, false)
                            .await;
                        match &config.cp {
                            Some(cp) => {
                                let redact_fallback = match redaction {
                                    Redaction::On => true,
                                    Redaction::Off => false,
                                    Redaction::Auto => is_public(&cp.url).await,
                                };
                                Some(Route {
                                    guarded: WithCloudFallback::wrap(
                                        route.guarded.clone(),
                                        self.cp.clone(),
                                        tenant.clone(),
                                        config.http.timeout,
                                        redact_fallback,
                                    ),
                                    ..route
                                })
                            }
                            None => Some(route),
                        }
                    }
                    None => match self.cp.managed_for(tenant).and_then(|_| {
                        ManagedProvider::new(
                            self.cp.clone(),
                            ManagedReason::Default,
                            config.http.timeout,
                        )
                    }) {
                        Some(m) => Some(self.guard(Arc::new(m), redaction, true).await),
                        None => None,
                    },
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
                match build_embedding_provider(settings, &config.http)
                    .await
                    .map_err(RouteError::Build)?
                {
                    Some(c) => Some(self.guard(c, redaction, false).await),
                    None => None,
                }
            }
        };
        *self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(tenant.as_str().to_owned())
            .or_default()
            .slot(purpose) = Some(Cached {
            generation: published.generation,
            cp_generation,
            built_at: Instant::now(),
            client: route.clone(),
        });
        Ok(route)
    }

    /// The cached route, if it is still fresh.
    fn cached(
        &self,
        tenant: &TenantId,
        purpose: Purpose,
        fresh: &dyn Fn(&Cached) -> bool,
    ) -> Option<Option<Route>> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = cache.get_mut(tenant.as_str())?.slot(purpose);
        match slot {
            Some(c) if fresh(c) => Some(c.client.clone()),
            _ => None,
        }
    }

    /// Drops every cached client (after a reload).
    pub async fn clear(&self) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Whether an endpoint is outside private address space. Its host is resolved (briefly: a
/// name that does not resolve in time counts as public, the safe answer for redaction and
/// audit).
pub async fn is_public(url: &url::Url) -> bool {
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<std::net::IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![ip.into()],
        Some(url::Host::Ipv6(ip)) => vec![ip.into()],
        Some(url::Host::Domain(name)) => {
            let lookup = tokio::net::lookup_host((name, port));
            match tokio::time::timeout(Duration::from_secs(2), lookup).await {
                Ok(Ok(a)) => a.map(|a| a.ip()).collect(),
                _ => return true,
            }
        }
        None => return true,
    };
    addrs.is_empty()
        || addrs
            .iter()
            .any(|ip| !atlasai_core::net::scope(*ip).is_internal())
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
    async fn public_means_outside_private_address_space() {
        for (url, public) in [
            ("http://127.0.0.1:11434/v1", false),
            ("http://10.2.3.4/v1", false),
            ("http://[fd00::1]/v1", false),
            ("http://localhost:8000/v1", false),
            ("https://8.8.8.8/v1", true),
            ("https://does-not-resolve.invalid/v1", true),
        ] {
            assert_eq!(
                is_public(&url::Url::parse(url).unwrap()).await,
                public,
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn the_portal_sets_redaction_per_tenant_unless_the_tenant_plane_insists() {
        use atlasai_core::protocol::SettingsResponse;
        let portal = |redaction| SettingsResponse {
            ai: Some(atlasai_core::portal::AiSettings {
                provider: "openai".into(),
                model: "m".into(),
                endpoint_url: Some("http://127.0.0.1:9/v1".into()),
                redaction,
                ..Default::default()
            }),
            scope: Some("tenant".into()),
            ..crate::cp::test_settings(String::new())
        };
        let acme = TenantId::parse("acme").unwrap();
        let config = |vars: &[(&str, &str)], generation| Published {
            generation,
            config: load(&ConfigInputs {
                env: Env::from_pairs(vars.iter().copied()),
                values_flag: None,
            })
            .unwrap(),
        };
        let routes = Routes::new(Duration::from_secs(300));
        // The endpoint is private, so "auto" would not redact: the portal's "on" does.
        routes
            .cp()
            .publish(crate::cp::Snapshot::from_response(portal(Some(
                RedactionPolicy::On,
            ))));
        let r = routes.chat_route(&acme, &config(&[], 1)).await.unwrap();
        assert!(r.redacted, "the portal's choice for the tenant");
        let r = routes
            .chat_route(&acme, &config(&[("TP_REDACTION", "off")], 2))
            .await
            .unwrap();
        assert!(!r.redacted, "a tenant plane set to off keeps its setting");
        let r = routes
            .chat_route(&acme, &config(&[("TP_REDACTION", "auto")], 3))
            .await
            .unwrap();
        assert!(r.redacted, "auto defers to the portal");
        routes
            .cp()
            .publish(crate::cp::Snapshot::from_response(portal(None)));
        let r = routes.chat_route(&acme, &config(&[], 4)).await.unwrap();
        assert!(
            !r.redacted,
            "without a choice: auto, and the endpoint is private"
        );
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

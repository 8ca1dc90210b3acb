//! [`RateLimitLayer`]: the tower layer, its shared state, and the handle to its store.

use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use tower::Layer;

use super::MemoryStore;
use super::builder::{Observer, OnLimited, RateLimitLayerBuilder};
use super::headers::HeaderDialect;
use super::key::ClientIp;
use super::limiter::RateLimiter;
use super::service::RateLimitService;
use super::store::{Decision, Store};
use crate::error::ConfigError;

/// The rate-limit middleware: a tower [`Layer`] whose state lives behind an `Arc`, so every
/// clone (axum clones services per connection) shares the same counts.
///
/// It is part of [`ProductionLayer::layer`](crate::ProductionLayer::layer) when limits are
/// configured, or usable on its own:
///
/// ```
/// use std::net::SocketAddr;
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use rustforge_prod::ratelimit::{Limit, MemoryStore, RateLimitLayer, RateLimiter};
///
/// let limits = RateLimitLayer::builder(Arc::new(MemoryStore::new()))
///     .limiter(RateLimiter::new("api", [Limit::per_minute(100)]))
///     .build()?;
/// let app: Router = Router::new().route("/", get(|| async { "hi" })).layer(limits);
/// // Key::ip() needs the peer address:
/// let service = app.into_make_service_with_connect_info::<SocketAddr>();
/// # let _ = service; Ok::<(), rustforge_prod::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RateLimitLayer {
    pub(super) shared: Arc<Shared>,
}

#[derive(Clone)]
pub(super) struct Shared {
    pub(super) store: Arc<dyn Store>,
    pub(super) limiters: Vec<RateLimiter>,
    pub(super) client_ip: ClientIp,
    pub(super) headers: HeaderDialect,
    pub(super) exempt: Vec<String>,
    pub(super) request_id: Option<HeaderName>,
    pub(super) on_limited: Option<Arc<OnLimited>>,
    pub(super) observer: Option<Arc<Observer>>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("store", &self.shared.store)
            .field("limiters", &self.shared.limiters)
            .field("headers", &self.shared.headers)
            .field("exempt", &self.shared.exempt)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// Starts a layer on `store`.
    pub fn builder(store: Arc<dyn Store>) -> RateLimitLayerBuilder {
        RateLimitLayerBuilder {
            shared: Shared {
                store,
                limiters: Vec::new(),
                client_ip: ClientIp::new(),
                headers: HeaderDialect::Ietf,
                exempt: vec!["/health".into(), "/metrics".into()],
                request_id: Some(HeaderName::from_static("x-request-id")),
                on_limited: None,
                observer: None,
            },
        }
    }

    /// A layer with one limiter on a fresh [`MemoryStore`].
    pub fn memory(limiter: RateLimiter) -> Result<Self, ConfigError> {
        Self::builder(Arc::new(MemoryStore::new()))
            .limiter(limiter)
            .build()
    }

    /// The store the layer counts in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The configured limiters.
    pub fn limiters(&self) -> &[RateLimiter] {
        &self.shared.limiters
    }

    /// The same layer, also calling `f` with every decision (see
    /// [`RateLimitLayerBuilder::observer`]).
    pub fn with_observer(self, f: impl Fn(&str, &Decision) + Send + Sync + 'static) -> Self {
        let mut shared = (*self.shared).clone();
        shared.observer = Some(Arc::new(f));
        Self {
            shared: Arc::new(shared),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

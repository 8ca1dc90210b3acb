//! [`RateLimitLayer`]: named [`RateLimiter`]s applied to requests, answering 429 with headers.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderName, Request, StatusCode};
use tower::{Layer, Service};

use super::headers::{self, HeaderDialect, PolicyState};
use super::key::{ClientIp, Key};
use super::limit::valid_name;
use super::store::{BoxFuture, Decision, RateLimitError, Store};
use super::{Limit, MemoryStore};
use crate::error::ConfigError;

/// A named set of limits, counted by one [`Key`], for some or all routes.
///
/// All limits of a limiter are decided together: `RateLimiter::new("api", [per_second(10),
/// per_hour(1000)])` admits a request only if both have room, and a request denied by one
/// consumes nothing from the other.
///
/// ```
/// use rustforge_prod::ratelimit::{Key, Limit, RateLimiter};
///
/// let api = RateLimiter::new("api", [Limit::per_second(10), Limit::per_hour(1000)])
///     .routes(["/api/"]);
/// let login = RateLimiter::new("login", [Limit::per_minute(5)])
///     .routes(["/login"])
///     .key(Key::ip());
/// # let _ = (api, login);
/// ```
#[derive(Clone, Debug)]
pub struct RateLimiter {
    name: String,
    limits: Vec<Limit>,
    policy_names: Vec<String>,
    key: Key,
    cost: u32,
    routes: Vec<String>,
}

impl RateLimiter {
    /// A limiter counting by client IP on every route, each request costing 1.
    pub fn new(name: impl Into<String>, limits: impl IntoIterator<Item = Limit>) -> Self {
        Self {
            name: name.into(),
            limits: limits.into_iter().collect(),
            policy_names: Vec::new(),
            key: Key::ip(),
            cost: 1,
            routes: Vec::new(),
        }
    }

    /// What requests are counted by (default [`Key::ip`]).
    pub fn key(mut self, key: Key) -> Self {
        self.key = key;
        self
    }

    /// Units each request consumes (default 1).
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }

    /// Limits only these paths: an entry matches itself and everything below it (`/api`
    /// matches `/api` and `/api/items`; `/api/` only the latter). Default: every route.
    pub fn routes<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.routes = strings(prefixes);
        self
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits.
    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }

    fn validate(mut self) -> Result<Self, ConfigError> {
        let bad = |reason: &str| ConfigError::new("rate_limit.limiters", &self.name, reason);
        if !valid_name(&self.name) {
            return Err(bad(
                "a limiter name is 1-64 characters of A-Z a-z 0-9 - _ . :",
            ));
        }
        if self.limits.is_empty() {
            return Err(bad("a limiter needs at least one limit"));
        }
        if self.cost == 0 {
            return Err(bad("the cost must be at least 1"));
        }
        for limit in &self.limits {
            limit.validate()?;
            if self.cost > limit.burst_size() {
                return Err(bad(
                    "the cost exceeds a limit's burst: no request could pass",
                ));
            }
        }
        if let Some(route) = self.routes.iter().find(|r| !r.starts_with('/')) {
            return Err(ConfigError::new(
                "rate_limit.limiters",
                route,
                "a route prefix starts with `/`",
            ));
        }
        let several = self.limits.len() > 1;
        self.policy_names = self
            .limits
            .iter()
            .map(|l| match l.name() {
                Some(name) => name.to_owned(),
                None if several => format!("{}-{}", self.name, l.to_string().replace('/', "-")),
                None => self.name.clone(),
            })
            .collect();
        Ok(self)
    }

    fn applies_to(&self, path: &str) -> bool {
        self.routes.is_empty() || self.routes.iter().any(|r| path_matches(r, path))
    }
}

fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}

/// `prefix` matches itself and paths below it.
fn path_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

/// What a custom 429 response is told about the rejection.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Rejection {
    /// The limiter that refused the request.
    pub limiter: String,
    /// The policies (limits) that were exhausted.
    pub violated_policies: Vec<String>,
    /// How long the client should wait.
    pub retry_after: Duration,
    /// The request id, when the request-id middleware set one.
    pub request_id: Option<String>,
}

type OnLimited = dyn Fn(&Parts, &Rejection) -> Response + Send + Sync;
type Observer = dyn Fn(&str, &Decision) + Send + Sync;

/// Builds a [`RateLimitLayer`].
#[must_use = "call .build() to get the layer"]
pub struct RateLimitLayerBuilder {
    store: Arc<dyn Store>,
    limiters: Vec<RateLimiter>,
    client_ip: ClientIp,
    headers: HeaderDialect,
    exempt: Vec<String>,
    request_id: Option<HeaderName>,
    on_limited: Option<Arc<OnLimited>>,
    observer: Option<Arc<Observer>>,
}

impl fmt::Debug for RateLimitLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayerBuilder")
            .field("store", &self.store)
            .field("limiters", &self.limiters)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayerBuilder {
    /// Adds a limiter. Several limiters may apply to one request; each is checked in turn and
    /// the first that refuses answers 429.
    pub fn limiter(mut self, limiter: RateLimiter) -> Self {
        self.limiters.push(limiter);
        self
    }

    /// How the client IP is found (trusted proxies, IPv6 prefix).
    pub fn client_ip(mut self, client_ip: ClientIp) -> Self {
        self.client_ip = client_ip;
        self
    }

    /// Which headers responses carry (default [`HeaderDialect::Ietf`]).
    pub fn headers(mut self, dialect: HeaderDialect) -> Self {
        self.headers = dialect;
        self
    }

    /// Paths never limited: each matches itself and everything below it. Default: `/health`
    /// and `/metrics`.
    pub fn exempt<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exempt = strings(paths);
        self
    }

    /// The request-id header quoted in 429 bodies (default `x-request-id`; `None` for none).
    pub fn request_id_header(mut self, header: Option<HeaderName>) -> Self {
        self.request_id = header;
        self
    }

    /// Replaces the 429 response. The rate-limit headers and `Retry-After` are added to what
    /// the function returns.
    pub fn on_limited(
        mut self,
        f: impl Fn(&Parts, &Rejection) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.on_limited = Some(Arc::new(f));
        self
    }

    /// Called with every decision (limiter name, decision) — the metrics module uses it.
    pub fn observer(mut self, f: impl Fn(&str, &Decision) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(f));
        self
    }

    /// Checks every limiter and builds the layer.
    pub fn build(self) -> Result<RateLimitLayer, ConfigError> {
        let limiters = self
            .limiters
            .into_iter()
            .map(RateLimiter::validate)
            .collect::<Result<Vec<_>, _>>()?;
        for (i, l) in limiters.iter().enumerate() {
            if limiters[..i].iter().any(|other| other.name == l.name) {
                return Err(ConfigError::new(
                    "rate_limit.limiters",
                    &l.name,
                    "two limiters have this name (their counts would mix)",
                ));
            }
        }
        Ok(RateLimitLayer {
            shared: Arc::new(Shared {
                store: self.store,
                limiters,
                client_ip: self.client_ip,
                headers: self.headers,
                exempt: self.exempt,
                request_id: self.request_id,
                on_limited: self.on_limited,
                observer: self.observer,
            }),
        })
    }
}

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
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    store: Arc<dyn Store>,
    limiters: Vec<RateLimiter>,
    client_ip: ClientIp,
    headers: HeaderDialect,
    exempt: Vec<String>,
    request_id: Option<HeaderName>,
    on_limited: Option<Arc<OnLimited>>,
    observer: Option<Arc<Observer>>,
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
            store,
            limiters: Vec::new(),
            client_ip: ClientIp::new(),
            headers: HeaderDialect::Ietf,
            exempt: vec!["/health".into(), "/metrics".into()],
            request_id: Some(HeaderName::from_static("x-request-id")),
            on_limited: None,
            observer: None,
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

/// The service [`RateLimitLayer`] wraps around a route.
#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> fmt::Debug for RateLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService").finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for RateLimitService<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone that was polled ready handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let path = req
                .extensions()
                .get::<MatchedPath>()
                .map_or(req.uri().path(), MatchedPath::as_str);
            if shared.exempt.iter().any(|e| path_matches(e, path)) {
                return inner.call(req).await;
            }
            let applicable: Vec<&RateLimiter> = shared
                .limiters
                .iter()
                .filter(|l| l.applies_to(path))
                .collect();
            if applicable.is_empty() {
                return inner.call(req).await;
            }
            let (parts, body) = req.into_parts();
            let mut checked: Vec<(&RateLimiter, Decision)> = Vec::with_capacity(applicable.len());
            for limiter in applicable {
                let key = match limiter.key.extract(&parts, &shared.client_ip) {
                    Ok(Some(key)) => key,
                    Ok(None) => continue,
                    Err(_) => return Ok(shared.missing_peer(&parts, limiter)),
                };
                let key = format!("{}:{key}", limiter.name);
                match shared
                    .store
                    .check(&key, &limiter.limits, limiter.cost)
                    .await
                {
                    Ok(decision) => {
                        if let Some(observer) = &shared.observer {
                            observer(&limiter.name, &decision);
                        }
                        let allowed = decision.allowed;
                        checked.push((limiter, decision));
                        if !allowed {
                            return Ok(shared.limited(&parts, &checked));
                        }
                    }
                    Err(err) => return Ok(shared.unavailable(&parts, limiter, &err)),
                }
            }
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            headers::apply(shared.headers, &states(&checked), response.headers_mut());
            Ok(response)
        })
    }
}

fn states<'a>(checked: &'a [(&'a RateLimiter, Decision)]) -> Vec<PolicyState<'a>> {
    checked
        .iter()
        .flat_map(|(limiter, decision)| {
            limiter
                .limits
                .iter()
                .zip(&limiter.policy_names)
                .zip(&decision.limits)
                .map(|((limit, name), status)| PolicyState {
                    name,
                    limit,
                    status: *status,
                })
        })
        .collect()
}

impl Shared {
    fn request_id(&self, parts: &Parts) -> Option<String> {
        let header = self.request_id.as_ref()?;
        parts
            .headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    fn limited(&self, parts: &Parts, checked: &[(&RateLimiter, Decision)]) -> Response {
        let states = states(checked);
        let (limiter, decision) = checked.last().expect("the refusing limiter was checked");
        let wait = decision.retry_after().unwrap_or(Duration::from_secs(1));
        let retry_after = headers::retry_secs(wait);
        let rejection = Rejection {
            limiter: limiter.name.clone(),
            violated_policies: states
                .iter()
                .filter(|s| s.status.retry_after.is_some())
                .map(|s| s.name.to_owned())
                .collect(),
            retry_after: Duration::from_secs(retry_after),
            request_id: self.request_id(parts),
        };
        let mut response = match &self.on_limited {
            Some(f) => f(parts, &rejection),
            None => problem(
                StatusCode::TOO_MANY_REQUESTS,
                "quota-exceeded",
                &format!(
                    "Rate limit `{}` exceeded; retry in {retry_after} s.",
                    rejection.limiter
                ),
                serde_json::json!({
                    "violated-policies": rejection.violated_policies,
                    "retry_after": retry_after,
                    "request_id": rejection.request_id,
                }),
            ),
        };
        headers::apply(self.headers, &states, response.headers_mut());
        headers::insert(
            response.headers_mut(),
            "retry-after",
            retry_after.to_string(),
        );
        response
    }

    fn unavailable(&self, parts: &Parts, limiter: &RateLimiter, err: &RateLimitError) -> Response {
        tracing::debug!(limiter = %limiter.name, error = %err, "rate limit check failed");
        let (status, kind) = match err {
            RateLimitError::Cost { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "rate-limit-misconfigured",
            ),
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporary-reduced-capacity",
            ),
        };
        let mut response = problem(
            status,
            kind,
            &format!("Rate limit `{}` could not be checked: {err}", limiter.name),
            serde_json::json!({ "request_id": self.request_id(parts) }),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers::insert(response.headers_mut(), "retry-after", "1".into());
        }
        response
    }

    fn missing_peer(&self, parts: &Parts, limiter: &RateLimiter) -> Response {
        static LOGGED: std::sync::Once = std::sync::Once::new();
        LOGGED.call_once(|| {
            tracing::error!(
                limiter = %limiter.name,
                "rate limiting by IP needs the peer address: serve the app with \
                 into_make_service_with_connect_info::<SocketAddr>()"
            );
        });
        problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rate-limit-misconfigured",
            "The server cannot tell client addresses apart: it must be served with \
             into_make_service_with_connect_info::<SocketAddr>().",
            serde_json::json!({ "request_id": self.request_id(parts) }),
        )
    }
}

/// An RFC 9457 `application/problem+json` response.
fn problem(status: StatusCode, kind: &str, detail: &str, extra: serde_json::Value) -> Response {
    let mut body = serde_json::json!({
        "type": format!("https://iana.org/assignments/http-problem-types#{kind}"),
        "title": status.canonical_reason().unwrap_or_default(),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra.into_iter().filter(|(_, v)| !v.is_null()));
    }
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    headers::insert(
        response.headers_mut(),
        "content-type",
        "application/problem+json".into(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(path_matches("/api", "/api"));
        assert!(path_matches("/api", "/api/items"));
        assert!(!path_matches("/api", "/apiary"));
        assert!(path_matches("/api/", "/api/items"));
        assert!(!path_matches("/api/", "/api"));
        assert!(path_matches("/health", "/health/live"));
    }

    #[test]
    fn rejects_bad_limiters() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let build = |l: RateLimiter| RateLimitLayer::builder(store.clone()).limiter(l).build();
        assert!(build(RateLimiter::new("api", [])).is_err());
        assert!(build(RateLimiter::new("bad name", [Limit::per_second(1)])).is_err());
        assert!(build(RateLimiter::new("api", [Limit::per_second(1)]).cost(2)).is_err());
        assert!(build(RateLimiter::new("api", [Limit::per_second(0)])).is_err());
        assert!(build(RateLimiter::new("api", [Limit::per_second(1)]).routes(["api"])).is_err());
        let twice = RateLimitLayer::builder(store.clone())
            .limiter(RateLimiter::new("a", [Limit::per_second(1)]))
            .limiter(RateLimiter::new("a", [Limit::per_second(2)]))
            .build();
        assert!(twice.is_err());
    }
}

//! [`RateLimitService`]: the checks of one request, then the route with the rate-limit headers.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use axum::response::Response;
use http::Request;
use tower::Service;

use super::headers::{self, PolicyState};
use super::layer::Shared;
use super::limiter::{RateLimiter, path_matches};
use super::store::{BoxFuture, Decision};

/// The service [`RateLimitLayer`](super::RateLimitLayer) wraps around a route.
#[derive(Clone)]
pub struct RateLimitService<S> {
    pub(super) inner: S,
    pub(super) shared: Arc<Shared>,
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

pub(super) fn states<'a>(checked: &'a [(&'a RateLimiter, Decision)]) -> Vec<PolicyState<'a>> {
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

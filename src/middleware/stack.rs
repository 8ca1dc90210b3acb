//! [`HttpStack`]: every middleware of the crate as one tower `Layer`.
//!
//! Order, outermost first, and why:
//!
//! 1. sensitive headers — `Authorization`, `Cookie`, `Proxy-Authorization`, `Set-Cookie` are
//!    marked so no layer below logs them;
//! 2. request id — an insane incoming id is dropped, then `SetRequestId` sets one *before* the
//!    span is made (tower-http#351), so the id wraps everything;
//! 3. error bodies — empty error responses get a JSON body with the request id;
//! 4. propagate request id — every response, including those made by the layers below, echoes it;
//! 5. trace — the `request` span and the one log line per request;
//! 6. CORS — inside the layers that make 408/413/500/503 responses, so browsers can read them;
//! 7. (`ProductionLayer` puts the rate limiter here — inside CORS so browsers can read a 429,
//!    outside everything that does work for the request — and the HTTP metrics between 5 and 6);
//! 8. panic catching — a panicking handler becomes a logged 500, still with CORS headers;
//! 9. timeout — time to the response headers;
//! 10. request decompression (optional) — outside the body limit, so the limit bounds the
//!     decompressed size;
//! 11. body limit — tower-http's stream limit and axum's `DefaultBodyLimit` set to the same value;
//! 12. compression — closest to the handler, so only the application's bodies are compressed.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use http::header::{AUTHORIZATION, COOKIE, HeaderName, PROXY_AUTHORIZATION, SET_COOKIE};
use tower::util::{BoxCloneSyncService, Either, MapRequest, MapResponse};
use tower::{BoxError, Layer, Service};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::map_request_body::MapRequestBodyLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::HttpConfig;
use super::compression::ShouldCompress;
use super::errors::{fill_error_body, panic_response};
use super::request_id::{MakeRequestUuidV7, drop_insane_request_id};
use super::trace::MakeRequestSpan;
use crate::error::ConfigError;
#[cfg(feature = "metrics")]
use crate::telemetry::{RequestSpanHook, TraceContext};

/// The service [`HttpStack`] wraps a route in.
pub type HttpService = BoxCloneSyncService<Request, Response, Infallible>;

/// The whole middleware stack as one cheap-to-clone tower [`Layer`]: pass it to
/// [`Router::layer`](axum::Router::layer). Get it from
/// [`ProductionLayer::layer`](crate::ProductionLayer::layer).
#[derive(Clone, Debug)]
pub struct HttpStack {
    inner: Arc<Layers>,
}

#[derive(Clone, Debug)]
struct Layers {
    request_id: Option<HeaderName>,
    trace: Option<MakeRequestSpan>,
    error_bodies: bool,
    cors: Option<CorsLayer>,
    catch_panic: bool,
    timeout: Option<TimeoutLayer>,
    decompression: bool,
    body_limit: Option<usize>,
    compression: Option<CompressionLayer<ShouldCompress>>,
}

impl HttpStack {
    /// Checks `config` and builds the stack.
    pub fn new(config: &HttpConfig) -> Result<Self, ConfigError> {
        config.validate_scalars()?;
        let request_id =
            Some(config.request_id.header_name()?).filter(|_| config.request_id.enabled);
        let timeout = config.timeout.map(|timeout| {
            let status = StatusCode::from_u16(config.timeout_status)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            TimeoutLayer::with_status_code(status, timeout)
        });
        let body_limit = config
            .body_limit
            .map(|limit| usize::try_from(limit.as_u64()).unwrap_or(usize::MAX));
        Ok(Self {
            inner: Arc::new(Layers {
                request_id,
                trace: config
                    .trace
                    .enabled
                    .then(|| MakeRequestSpan::new(&config.trace.quiet_routes)),
                error_bodies: config.error_bodies,
                cors: config.cors.build()?,
                catch_panic: config.catch_panic,
                timeout,
                decompression: config.compression.request_decompression,
                body_limit,
                compression: config.compression.build()?,
            }),
        })
    }

    /// The same stack with `hook` told of every request span (the OTLP span export).
    #[cfg(feature = "metrics")]
    #[allow(dead_code)] // the hooks exist with the `otlp` feature
    pub(crate) fn with_span_hook(self, hook: Arc<dyn RequestSpanHook>) -> Self {
        let mut layers = (*self.inner).clone();
        layers.trace = layers.trace.map(|trace| trace.with_hook(hook));
        Self {
            inner: Arc::new(layers),
        }
    }

    /// Layers 8–12, closest to the handler: panic catching, timeout, decompression, body limit,
    /// compression.
    pub(crate) fn inner<S: HttpServiceLike>(&self, inner: S) -> HttpService {
        let l = &*self.inner;
        // Built inside out. `optional` keeps one concrete type whether a layer is on or off.
        let svc = optional(inner, l.compression.as_ref(), |c, s| c.layer(s));
        let svc = optional(svc, l.body_limit, |limit, s| {
            (
                RequestBodyLimitLayer::new(limit),
                MapRequestBodyLayer::new(Body::new),
                DefaultBodyLimit::max(limit),
            )
                .layer(s)
        });
        let svc = optional(svc, l.decompression.then_some(()), |(), s| {
            (
                RequestDecompressionLayer::new(),
                MapRequestBodyLayer::new(Body::new),
            )
                .layer(s)
        });
        let svc = optional(svc, l.timeout.as_ref(), |t, s| t.layer(s));
        let svc = optional(svc, l.catch_panic.then_some(()), |(), s| {
            CatchPanicLayer::custom(panic_response).layer(s)
        });
        // Boxed here: the nested `Either<MapResponse<…>>` type of the whole stack is deep
        // enough to make rustc's type normalisation take minutes in crates that use the stack.
        BoxCloneSyncService::new(svc)
    }

    /// Layer 6, CORS.
    pub(crate) fn cors<S: HttpServiceLike>(&self, inner: S) -> impl HttpServiceLike {
        optional(inner, self.inner.cors.as_ref(), |c, s| c.layer(s))
    }

    /// Layers 1–5, outermost: sensitive headers, request id, error bodies, request-id echo, the
    /// trace context and the request span.
    pub(crate) fn outer<S: HttpServiceLike>(&self, inner: S) -> HttpService {
        let l = &*self.inner;
        let svc = optional(inner, l.trace.clone(), |make_span, s| {
            let log_response = make_span.log_response();
            TraceLayer::new_for_http()
                .make_span_with(make_span)
                .on_request(())
                .on_response(log_response)
                .on_body_chunk(())
                .on_eos(())
                .on_failure(())
                .layer(s)
        });
        // The W3C trace context, for the request span and for handlers to pass downstream.
        #[cfg(feature = "metrics")]
        let svc = MapRequest::new(svc, TraceContext::attach::<Body>);
        let svc = optional(svc, l.request_id.as_ref(), |h, s| {
            PropagateRequestIdLayer::new(h.clone()).layer(s)
        });
        let svc = match l.error_bodies {
            true => {
                let header = l.request_id.clone();
                Either::Left(MapResponse::new(svc, move |res| {
                    fill_error_body(header.as_ref(), res)
                }))
            }
            false => Either::Right(svc),
        };
        let svc = match &l.request_id {
            Some(header) => {
                let set = SetRequestIdLayer::new(header.clone(), MakeRequestUuidV7).layer(svc);
                let header = header.clone();
                Either::Left(MapRequest::new(set, move |mut req: Request| {
                    drop_insane_request_id(&header, req.headers_mut());
                    req
                }))
            }
            None => Either::Right(svc),
        };
        let svc = (
            SetSensitiveRequestHeadersLayer::new([AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION]),
            SetSensitiveResponseHeadersLayer::new([SET_COOKIE]),
        )
            .layer(svc);
        BoxCloneSyncService::new(svc)
    }
}

/// A service the stack can wrap: takes axum requests, answers axum responses, never fails.
pub trait HttpServiceLike:
    Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> HttpServiceLike for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

impl<S: HttpServiceLike> Layer<S> for HttpStack {
    type Service = HttpService;

    fn layer(&self, inner: S) -> HttpService {
        self.outer(self.cors(self.inner(inner)))
    }
}

/// The response-body adapter `optional` puts behind every layer.
pub(crate) type ToBody<B> = fn(http::Response<B>) -> Response;

/// Wraps `inner` with `wrap` when `setting` is `Some`, mapping the response body back to axum's
/// `Body` so that both arms have the same type.
pub(crate) fn optional<S, T, W, B>(
    inner: S,
    setting: Option<T>,
    wrap: impl FnOnce(T, S) -> W,
) -> Either<MapResponse<W, ToBody<B>>, S>
where
    W: Service<Request, Response = http::Response<B>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    match setting {
        Some(setting) => Either::Left(MapResponse::new(
            wrap(setting, inner),
            (|res: http::Response<B>| res.map(Body::new)) as ToBody<B>,
        )),
        None => Either::Right(inner),
    }
}

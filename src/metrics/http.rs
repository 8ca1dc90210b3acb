//! HTTP server metrics per the OpenTelemetry semantic conventions, as a tower layer.
//!
//! `http.server.request.duration` (s), `http.server.active_requests`,
//! `http.server.request.body.size` and `http.server.response.body.size` (By), with
//! `http.request.method` (unknown methods are `_OTHER`), `url.scheme`, `http.response.status_code`,
//! `http.route` (the axum route template, and *no* route attribute for unmatched paths, so a
//! scanner cannot create series) and `error.type` on 5xx. Attribute sets are built once per
//! (route, method, status, scheme) and reused. The request body size is recorded when it is known
//! up front (`Content-Length`); the response body size is counted as the body is sent.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::MatchedPath;
use bytes::Buf;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter, UpDownCounter};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::telemetry::{DURATION_BUCKETS, KNOWN_METHODS, SIZE_BUCKETS, method_name, scheme};

/// (method, status, scheme) → route → attributes.
type AttributeCache =
    HashMap<(&'static str, u16, &'static str), HashMap<Box<str>, Arc<[KeyValue]>>>;

/// The instruments and the attribute cache; cheap to clone.
#[derive(Clone)]
pub struct HttpMetrics {
    inner: Arc<Instruments>,
}

struct Instruments {
    duration: Histogram<f64>,
    active: UpDownCounter<i64>,
    request_size: Histogram<u64>,
    response_size: Histogram<u64>,
    quiet_routes: Box<[String]>,
    attributes: RwLock<AttributeCache>,
    /// (method, scheme) → attributes of the active-requests counter; all combinations are known.
    active_attributes: HashMap<(&'static str, &'static str), Arc<[KeyValue]>>,
}

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetrics").finish_non_exhaustive()
    }
}

impl HttpMetrics {
    /// The HTTP instruments on `meter`; requests to `quiet_routes` (route templates) are not
    /// measured.
    pub fn new(meter: &Meter, quiet_routes: &[String]) -> Self {
        let duration = meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP server requests.")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let active = meter
            .i64_up_down_counter("http.server.active_requests")
            .with_unit("{request}")
            .with_description("Number of active HTTP server requests.")
            .build();
        let size = |name: &'static str, description: &'static str| {
            meter
                .u64_histogram(name)
                .with_unit("By")
                .with_description(description)
                .with_boundaries(SIZE_BUCKETS.to_vec())
                .build()
        };
        let request_size = size(
            "http.server.request.body.size",
            "Size of HTTP server request bodies.",
        );
        let response_size = size(
            "http.server.response.body.size",
            "Size of HTTP server response bodies.",
        );
        let mut active_attributes = HashMap::new();
        for method in KNOWN_METHODS.iter().copied().chain(["_OTHER"]) {
            for scheme in ["http", "https"] {
                let attributes: Arc<[KeyValue]> = Arc::new([
                    KeyValue::new("http.request.method", method),
                    KeyValue::new("url.scheme", scheme),
                ]);
                active_attributes.insert((method, scheme), attributes);
            }
        }
        Self {
            inner: Arc::new(Instruments {
                duration,
                active,
                request_size,
                response_size,
                quiet_routes: quiet_routes.into(),
                attributes: RwLock::new(HashMap::new()),
                active_attributes,
            }),
        }
    }

    fn attributes(
        &self,
        route: Option<&str>,
        method: &'static str,
        status: u16,
        scheme: &'static str,
    ) -> Arc<[KeyValue]> {
        let route_key = route.unwrap_or("");
        let key = (method, status, scheme);
        if let Ok(cache) = self.inner.attributes.read()
            && let Some(found) = cache.get(&key).and_then(|routes| routes.get(route_key))
        {
            return found.clone();
        }
        let mut attributes = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.scheme", scheme),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ];
        if let Some(route) = route {
            attributes.push(KeyValue::new("http.route", route.to_owned()));
        }
        if status >= 500 {
            attributes.push(KeyValue::new("error.type", status.to_string()));
        }
        let attributes: Arc<[KeyValue]> = attributes.into();
        if let Ok(mut cache) = self.inner.attributes.write() {
            cache
                .entry(key)
                .or_default()
                .insert(route_key.into(), attributes.clone());
        }
        attributes
    }
}

/// The layer that records [`HttpMetrics`] for every request.
#[derive(Clone, Debug)]
pub struct HttpMetricsLayer {
    metrics: HttpMetrics,
}

impl HttpMetricsLayer {
    /// Records into `metrics`.
    pub fn new(metrics: HttpMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// See [`HttpMetricsLayer`].
#[derive(Clone, Debug)]
pub struct HttpMetricsService<S> {
    inner: S,
    metrics: HttpMetrics,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpMetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body,
    ResBody: Body,
{
    type Response = Response<CountingBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let quiet = route.as_ref().is_some_and(|r| {
            self.metrics
                .inner
                .quiet_routes
                .iter()
                .any(|q| q == r.as_str())
        });
        let in_flight = (!quiet).then(|| {
            let method = method_name(request.method());
            let scheme = scheme(request.uri(), request.headers());
            let active = self.metrics.inner.active_attributes[&(method, scheme)].clone();
            self.metrics.inner.active.add(1, &active);
            let request_size = request.body().size_hint().exact().or_else(|| {
                request
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
            });
            InFlight {
                metrics: self.metrics.clone(),
                start: Instant::now(),
                method,
                scheme,
                route,
                request_size,
                active,
            }
        });
        ResponseFuture {
            inner: self.inner.call(request),
            in_flight,
        }
    }
}

/// A request being measured; dropping it ends the request in the active-requests count, whether
/// the response was sent or the client went away.
struct InFlight {
    metrics: HttpMetrics,
    start: Instant,
    method: &'static str,
    scheme: &'static str,
    route: Option<MatchedPath>,
    request_size: Option<u64>,
    active: Arc<[KeyValue]>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.inner.active.add(-1, &self.active);
    }
}

pin_project! {
    /// The future of [`HttpMetricsService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body,
{
    type Output = Result<Response<CountingBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let Some(in_flight) = this.in_flight.take() else {
            return Poll::Ready(Ok(response.map(CountingBody::unmeasured)));
        };
        let route = in_flight.route.as_ref().map(MatchedPath::as_str);
        let status = response.status().as_u16();
        let attributes =
            in_flight
                .metrics
                .attributes(route, in_flight.method, status, in_flight.scheme);
        let instruments = &in_flight.metrics.inner;
        instruments
            .duration
            .record(in_flight.start.elapsed().as_secs_f64(), &attributes);
        if let Some(size) = in_flight.request_size {
            instruments.request_size.record(size, &attributes);
        }
        let recorder = Recorder {
            histogram: instruments.response_size.clone(),
            attributes,
        };
        Poll::Ready(Ok(response.map(|body| CountingBody::new(body, recorder))))
    }
}

/// Records the response size once the body is finished (or dropped).
struct Recorder {
    histogram: Histogram<u64>,
    attributes: Arc<[KeyValue]>,
}

pin_project! {
    /// A response body that counts the bytes it yields.
    pub struct CountingBody<B> {
        #[pin]
        inner: B,
        bytes: u64,
        recorder: Option<Recorder>,
    }

    impl<B> PinnedDrop for CountingBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(recorder) = this.recorder.take() {
                recorder.histogram.record(*this.bytes, &recorder.attributes);
            }
        }
    }
}

impl<B> CountingBody<B> {
    fn new(inner: B, recorder: Recorder) -> Self {
        Self {
            inner,
            bytes: 0,
            recorder: Some(recorder),
        }
    }

    fn unmeasured(inner: B) -> Self {
        Self {
            inner,
            bytes: 0,
            recorder: None,
        }
    }
}

impl<B: Body> Body for CountingBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    *this.bytes += data.remaining() as u64;
                }
            }
            None => {
                if let Some(recorder) = this.recorder.take() {
                    recorder.histogram.record(*this.bytes, &recorder.attributes);
                }
            }
            Some(Err(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

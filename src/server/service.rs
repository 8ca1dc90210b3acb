//! The hyper service of one connection: the application, with the peer address as
//! [`ConnectInfo`] and each request counted in flight until its response body is done; once the
//! server stops accepting, HTTP/1 responses close their connection.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, Version, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower::{Service, ServiceExt};

use super::activity::{Activity, InFlight};

/// The application as hyper calls it on one connection.
#[derive(Clone, Debug)]
pub(super) struct ConnectionService<S, A> {
    pub(super) app: S,
    pub(super) remote_addr: A,
    pub(super) activity: Arc<Activity>,
    /// Set when the server stops accepting: see [`ResponseFuture`].
    pub(super) draining: Arc<AtomicBool>,
}

impl<S, A> hyper::service::Service<http::Request<Incoming>> for ConnectionService<S, A>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    A: Clone + Send + Sync + 'static,
{
    type Response = http::Response<TrackedBody>;
    type Error = Infallible;
    type Future = ResponseFuture<S>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.request();
        let http1 = request.version() < Version::HTTP_2;
        let mut request = request.map(Body::new);
        request
            .extensions_mut()
            .insert(ConnectInfo(self.remote_addr.clone()));
        ResponseFuture {
            response: self.app.clone().oneshot(request),
            in_flight: Some(in_flight),
            http1,
            draining: Arc::clone(&self.draining),
        }
    }
}

pin_project! {
    /// The application's response, its body wrapped in a [`TrackedBody`]. Once the server has
    /// stopped accepting, an HTTP/1 response carries `Connection: close` (hyper then closes the
    /// connection after it): a balancer learns from the response itself that this connection
    /// is done, instead of sending its next request on a connection the server is closing (a
    /// non-idempotent one would fail). WebSocket upgrades (101) keep their
    /// `Connection: upgrade`; HTTP/2 has no such header (its connections get `GOAWAY`).
    pub(super) struct ResponseFuture<S: Service<Request>> {
        #[pin]
        response: Oneshot<S, Request>,
        in_flight: Option<InFlight>,
        http1: bool,
        draining: Arc<AtomicBool>,
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Output = Result<http::Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.response.poll(cx))?;
        if *this.http1
            && this.draining.load(Ordering::Relaxed)
            && response.status() != StatusCode::SWITCHING_PROTOCOLS
        {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let in_flight = this.in_flight.take().expect("polled after completion");
        Poll::Ready(Ok(response.map(|body| TrackedBody { body, in_flight })))
    }
}

pin_project! {
    /// A response body that keeps its request counted in flight until hyper drops it, and tells
    /// the watchdog when it waits for the client to take what it handed over.
    #[derive(Debug)]
    pub(super) struct TrackedBody {
        #[pin]
        body: Body,
        in_flight: InFlight,
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        this.in_flight.polled();
        let frame = this.body.poll_frame(cx);
        if let Poll::Ready(Some(Ok(data))) = &frame
            && data.is_data()
        {
            // Until hyper asks again, the client has this to take (see `InFlight::sent`).
            this.in_flight.sent();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

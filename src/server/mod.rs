//! An HTTP server that is safe by default: timeouts for slow and idle clients, a connection cap,
//! bounded request heads, HTTP/2 keep-alive, and a graceful shutdown with a deadline.
//!
//! Most applications call [`rustforge_prod::serve`](crate::serve), which takes the settings and
//! the shutdown signal from the [`ProductionLayer`](crate::ProductionLayer). [`Server`] is the
//! same server on its own:
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use rustforge_prod::server::{Server, ServerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Router::new().route("/", get(|| async { "hello" }));
//! let mut config = ServerConfig::default();
//! config.idle_timeout = Duration::from_secs(350); // behind a balancer that idles 350 s
//! let server = Server::new(config)?;
//! let listener = rustforge_prod::bind("127.0.0.1:0").await?;
//! // Here the server stops at once; pass a real signal, e.g. `Shutdown::new().signal()`.
//! server.serve(listener, app, async {}).await;
//! # Ok(()) }
//! ```
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read timeout never runs; it has no idle
//! timeout, no connection cap and no shutdown deadline. A client that sends one header byte every
//! few seconds, or opens connections and sends nothing, holds them for as long as it likes.
//!
//! # Defaults
//!
//! Chosen for a server behind a load balancer (ALB, GCP, nginx, HAProxy, Kubernetes ingress);
//! each is a [`ServerConfig`] field and an environment variable.
//!
//! | limit | default | why |
//! |---|---|---|
//! | header read (`RUSTFORGE_HEADER_READ_TIMEOUT`) | 10 s | from a request's first byte to its last header. Balancers send a head in one write; a browser on a slow link needs well under a second. A slowloris client is closed here. |
//! | idle (`RUSTFORGE_IDLE_TIMEOUT`) | 75 s | a keep-alive connection with no request in flight. **Must be longer than the balancer's own idle timeout** (ALB 60 s, nginx `keepalive_timeout` 60 s): if the app closes first, the balancer can send a request on a connection the app is closing and answer 502. On GCP's load balancers (600 s) use 620 s. |
//! | connections (`RUSTFORGE_MAX_CONNECTIONS`) | 10,000 | WebSockets included, as each holds a file descriptor: the server raises its soft open-file limit to the hard limit when it starts, and warns when that is still below the cap. At the cap the server stops accepting: new connections wait in the kernel's backlog and are served when one closes. |
//! | head size (`RUSTFORGE_MAX_HEADER_SIZE`) | 64 KiB | request line and headers (HTTP/2: the header list). Browsers cap a cookie at 4 KiB; tens of them fit. Larger gets `431`. |
//! | header count (`RUSTFORGE_MAX_HEADERS`) | 100 | hyper's own limit (another value costs a heap allocation per request). More gets `431`. |
//! | shutdown (`RUSTFORGE_SHUTDOWN_TIMEOUT`) | 20 s | after the drain ([`Config::shutdown_drain`](crate::Config::shutdown_drain)) in-flight requests get this long; then the remaining connections are closed. Keep drain + this under Kubernetes' `terminationGracePeriodSeconds` (30 s). |
//! | HTTP/2 ping (`RUSTFORGE_HTTP2_KEEPALIVE_INTERVAL`) | 20 s | finds peers that vanished without a FIN (a NAT dropped the flow); one unanswered ping closes the connection. |
//! | HTTP/2 streams (`RUSTFORGE_HTTP2_MAX_STREAMS`) | 100 | concurrent requests per HTTP/2 connection. |
//! | send (`RUSTFORGE_SEND_TIMEOUT`) | 30 s | a response the client stops reading (the socket's buffer full, or an HTTP/2 window left closed while the client answers pings) holds its buffers and file descriptor; after this long without taking any of it the connection is closed. A response waiting for the application's next bytes (a long poll, server-sent events) is not affected; the closing is noticed within twice the time. |
//! | HTTP/2 send buffer (`RUSTFORGE_HTTP2_MAX_SEND_BUFFER`) | 64 KiB | response bytes a stream buffers while the client's window is closed (hyper's default is 400 KiB): with the stream cap, 6.4 MiB a connection at most, for at most the send timeout. |
//!
//! Time to produce a response is the middleware's request timeout
//! ([`HttpConfig::timeout`](crate::middleware::HttpConfig::timeout), 30 s), and the body size its
//! body limit; neither is the server's business.
//!
//! # Shutdown
//!
//! When the signal future resolves the server stops accepting and lets every in-flight request
//! finish; whatever is still open at [`shutdown_timeout`](ServerConfig::shutdown_timeout) is
//! closed. HTTP/2 connections get `GOAWAY` at once. An HTTP/1 keep-alive connection is not
//! closed at once: a load balancer may be sending a request on it in that very instant, and a
//! `POST` that meets a closing connection fails (balancers retry only requests they have not
//! sent). It stays open for [`DRAIN_IDLE_GRACE`] more: a request that comes on it is served with
//! `Connection: close`, which retires it cleanly; one that stays idle that long is closed (a
//! balancer under load has used its idle connections by then, and one with little traffic is
//! unlikely to pick that instant). WebSocket connections are the
//! broadcaster's: it closes them with code 4200 on shutdown, so clients reconnect elsewhere.

mod activity;
mod config;
mod connection;
mod listener;
mod open_files;
mod service;

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use axum::serve::Listener as AcceptConnections;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::Service;

pub use config::ServerConfig;
pub use listener::{LISTEN_BACKLOG, Listener, bind};

use activity::{Activity, TrackedIo};
use connection::{Phase, Timeouts};
use service::ConnectionService;

use crate::error::ConfigError;

/// How long an idle HTTP/1 keep-alive connection stays open once the server stopped accepting;
/// see [Shutdown](self#shutdown).
pub const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

/// How often, at most, the server logs that it is at its connection cap.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// An HTTP/1 and HTTP/2 server for an axum app with the limits of a [`ServerConfig`]; see the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct Server {
    config: ServerConfig,
}

impl Server {
    /// A server with these limits, once they are [checked](ServerConfig::validate).
    pub fn new(config: ServerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Serves `app` on `listener` until `signal` resolves, then shuts down as the
    /// [module docs](self#shutdown) describe and returns.
    ///
    /// Each request carries the peer address as axum's
    /// [`ConnectInfo<L::Addr>`](axum::extract::ConnectInfo) (the rate limiter and the
    /// broadcaster's per-IP limits read it). Errors accepting a connection are the listener's
    /// to handle: axum's listeners log them and, when file descriptors run out, wait a second.
    pub async fn serve<L, S>(&self, mut listener: L, app: S, signal: impl Future<Output = ()>)
    where
        L: AcceptConnections,
        L::Addr: Clone + Send + Sync + Debug + 'static,
        S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send,
    {
        open_files::raise_open_file_limit(self.config.max_connections);
        let builder = Arc::new(self.builder());
        let timeouts = Timeouts {
            header_read: self.config.header_read_timeout,
            idle: self.config.idle_timeout,
            send: self.config.send_timeout,
        };
        let permits = Arc::new(Semaphore::new(self.config.max_connections));
        let mut cap = CapWarning::default();
        let (phase, _) = watch::channel(Phase::Serving);
        let draining = Arc::new(AtomicBool::new(false));
        let mut signal = pin!(signal);
        loop {
            let (permit, (io, remote_addr)) = tokio::select! {
                biased;
                () = &mut signal => break,
                accepted = async {
                    let permit = cap.acquire(&permits).await;
                    (permit, listener.accept().await)
                } => accepted,
            };
            let activity = Activity::new();
            let io = TrackedIo::new(io, Arc::clone(&activity), permit);
            let service = ConnectionService {
                app: app.clone(),
                remote_addr,
                activity,
                draining: Arc::clone(&draining),
            };
            tokio::spawn(connection::serve(
                Arc::clone(&builder),
                io,
                service,
                timeouts,
                phase.subscribe(),
            ));
        }
        drop(listener);
        self.shut_down(phase, &draining).await;
    }

    /// Drains the connections: graceful first, closed at the deadline.
    async fn shut_down(&self, phase: watch::Sender<Phase>, draining: &AtomicBool) {
        let open = phase.receiver_count();
        tracing::info!(
            open_connections = open,
            timeout_ms = self.config.shutdown_timeout.as_millis() as u64,
            "server stopped accepting; finishing in-flight requests"
        );
        draining.store(true, Ordering::Relaxed);
        phase.send_replace(Phase::Draining);
        let drained = tokio::time::timeout(self.config.shutdown_timeout, phase.closed()).await;
        if drained.is_err() {
            tracing::warn!(
                open_connections = phase.receiver_count(),
                "shutdown timeout reached: closing the remaining connections"
            );
            phase.send_replace(Phase::Closing);
            phase.closed().await;
        }
    }

    /// hyper's connection builder with the limits of the config. hyper's own header-read timeout
    /// stays off: it would also close idle keep-alive connections (see `activity`).
    fn builder(&self) -> Builder<TokioExecutor> {
        let config = &self.config;
        let head = config.max_header_size.as_u64();
        let mut builder = Builder::new(TokioExecutor::new());
        let mut http1 = builder.http1();
        // The read buffer bounds the head (hyper-util's builder does not pass hyper's
        // `max_header_size` on): a head that fills it is answered 431. Bodies stream through.
        http1.header_read_timeout(None).max_buf_size(head as usize);
        if config.max_headers != 100 {
            // Any explicit value makes hyper allocate the header array per request.
            http1.max_headers(config.max_headers);
        }
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(config.http2_keep_alive_interval)
            .keep_alive_timeout(config.http2_keep_alive_interval)
            .max_concurrent_streams(config.http2_max_concurrent_streams)
            .max_send_buf_size(config.http2_max_send_buffer.as_u64() as usize)
            .max_header_list_size(head as u32)
            // WebSockets over HTTP/2 (RFC 8441), as axum::serve allows them.
            .enable_connect_protocol();
        builder
    }
}

/// Takes a place under the connection cap, and says so (at most once a minute) when the cap is
/// what the server waits for.
#[derive(Debug, Default)]
struct CapWarning {
    last: Option<Instant>,
}

impl CapWarning {
    async fn acquire(&mut self, permits: &Arc<Semaphore>) -> OwnedSemaphorePermit {
        if let Ok(permit) = Arc::clone(permits).try_acquire_owned() {
            return permit;
        }
        if self
            .last
            .is_none_or(|at| at.elapsed() >= CAP_WARNING_INTERVAL)
        {
            self.last = Some(Instant::now());
            tracing::warn!(
                "connection cap (RUSTFORGE_MAX_CONNECTIONS) reached: not accepting until a connection closes"
            );
        }
        Arc::clone(permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}

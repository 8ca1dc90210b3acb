//! One connection: hyper serving it, its watchdog, and its part in the server's shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::Service;

use super::DRAIN_IDLE_GRACE;
use super::activity::{Activity, Deadline, Expiry, TrackedIo};
use super::service::ConnectionService;

/// Where the server is in its life; every connection watches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Serving,
    /// Finish in-flight requests (their responses close HTTP/1 connections); HTTP/2 gets
    /// `GOAWAY`, an idle HTTP/1 connection closes after [`DRAIN_IDLE_GRACE`] more.
    Draining,
    /// The shutdown deadline passed: close.
    Closing,
}

/// The timeouts the watchdog enforces.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timeouts {
    pub(super) header_read: Duration,
    pub(super) idle: Duration,
    pub(super) send: Duration,
}

/// Serves one connection until the client closes it, a timeout closes it, or the server's
/// shutdown does. Holding `phase` is what tells the server this connection is still open.
pub(super) async fn serve<Io, S, A>(
    builder: Arc<Builder<TokioExecutor>>,
    io: TrackedIo<Io>,
    service: ConnectionService<S, A>,
    timeouts: Timeouts,
    mut phase: watch::Receiver<Phase>,
) where
    Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    A: Clone + Send + Sync + 'static,
{
    let activity = Arc::clone(&service.activity);
    let mut conn = pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
    let mut watchdog = pin!(Watchdog::new(activity.clone(), timeouts));
    let mut draining = false;
    loop {
        tokio::select! {
            // The connection first: its reads and requests move the watchdog's deadline.
            biased;
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                return;
            }
            changed = phase.changed() => {
                let now = changed.map(|()| *phase.borrow_and_update());
                match now {
                    Ok(Phase::Serving) => {}
                    Ok(Phase::Draining) if !draining => {
                        draining = true;
                        if activity.is_http2() {
                            conn.as_mut().graceful_shutdown();
                        } else {
                            // Responses now close the connection (see `ConnectionService`); an
                            // idle one gets the grace from now on, not from its last request.
                            activity.restart_idle();
                            watchdog.as_mut().idle(DRAIN_IDLE_GRACE);
                        }
                    }
                    Ok(Phase::Draining) => {}
                    // At the deadline, or the server is gone: close.
                    Ok(Phase::Closing) | Err(_) => return,
                }
            }
            expiry = watchdog.as_mut(), if !draining || !activity.is_http2() => {
                tracing::debug!(?expiry, "closing the connection");
                // A client that stopped reading would not read a GOAWAY either: close.
                if activity.is_http2() && expiry != Expiry::Send {
                    // GOAWAY: the peer learns the connection is done, nothing is in flight.
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                } else {
                    return;
                }
            }
        }
    }
}

pin_project! {
    /// Resolves when the connection's deadline — idle, header read or send — has passed.
    struct Watchdog {
        activity: Arc<Activity>,
        timeouts: Timeouts,
        #[pin]
        sleep: Sleep,
    }
}

impl Watchdog {
    fn new(activity: Arc<Activity>, timeouts: Timeouts) -> Self {
        Self {
            activity,
            timeouts,
            sleep: tokio::time::sleep(timeouts.idle),
        }
    }

    /// Replaces the idle timeout (shorter during the shutdown).
    fn idle(self: Pin<&mut Self>, idle: Duration) {
        self.project().timeouts.idle = idle;
    }
}

impl Future for Watchdog {
    type Output = Expiry;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Expiry> {
        let mut this = self.project();
        let Timeouts {
            header_read,
            idle,
            send,
        } = *this.timeouts;
        loop {
            match this.activity.deadline(header_read, idle, send) {
                Deadline::At(at, expiry) => {
                    if this.sleep.deadline() != at {
                        this.sleep.as_mut().reset(at);
                    }
                    ready!(this.sleep.as_mut().poll(cx));
                    // Still the same deadline once the timer fired: it passed.
                    if this.activity.deadline(header_read, idle, send) == Deadline::At(at, expiry) {
                        return Poll::Ready(expiry);
                    }
                }
                Deadline::None => {
                    // A request is in flight. An HTTP/2 stream ends, and a response stops being
                    // read, on another task, which does not wake this one: look again after the
                    // shorter of the idle and send timeouts.
                    ready!(this.sleep.as_mut().poll(cx));
                    this.sleep.as_mut().reset(Instant::now() + idle.min(send));
                }
            }
        }
    }
}

//! What a connection is doing, as its watchdog needs it: requests in flight, when the last one
//! ended, when the next request's head started to arrive.
//!
//! hyper's own `header_read_timeout` cannot serve here: it starts as soon as hyper waits for a
//! head, so on a keep-alive connection it is also the idle timeout, and it does not cover the
//! first bytes hyper-util reads to tell HTTP/1 from HTTP/2. [`Activity`] is updated by the
//! connection's I/O ([`TrackedIo`]) and by its requests ([`InFlight`]); the watchdog derives one
//! deadline from it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

/// `head_started` while no byte of the next request has arrived.
const WAITING: u64 = u64::MAX;

/// The shared state of one connection. Times are milliseconds since `start`.
#[derive(Debug)]
pub(super) struct Activity {
    start: Instant,
    in_flight: AtomicU32,
    /// When the last request ended (or the connection opened).
    idle_since: AtomicU64,
    /// When the first byte of the next request's head arrived; [`WAITING`] before.
    head_started: AtomicU64,
    /// The connection opened with the HTTP/2 preface.
    http2: AtomicBool,
    /// Whether the first read, which tells the protocol, happened.
    first_read: AtomicBool,
    /// Responses that handed data to the connection and were not asked for more since: they
    /// wait for the client to read (see [`InFlight::sent`]).
    waiting_on_client: AtomicU32,
    /// When a response last handed data to the connection.
    last_sent: AtomicU64,
}

/// What the watchdog should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Deadline {
    /// A request is in flight and its response is not waiting on the client: no deadline (the
    /// request timeout of the middleware applies).
    None,
    /// Close at this time: the connection idles, a head is arriving too slowly, or a response
    /// waits for a client that stopped reading.
    At(Instant, Expiry),
}

/// Why a connection's deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expiry {
    /// No request for the idle timeout.
    Idle,
    /// A head started to arrive but was not complete within the header-read timeout.
    HeaderRead,
    /// A response handed data to the connection and was not asked for more within the send
    /// timeout: the client stopped reading.
    Send,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(WAITING),
            http2: AtomicBool::new(false),
            first_read: AtomicBool::new(false),
            waiting_on_client: AtomicU32::new(0),
            last_sent: AtomicU64::new(0),
        })
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn at(&self, millis: u64) -> Instant {
        self.start + Duration::from_millis(millis)
    }

    /// Counts the connection idle from now (the shutdown's grace starts now for every idle
    /// connection, not from its last request).
    pub(super) fn restart_idle(&self) {
        self.idle_since.store(self.now(), Relaxed);
    }

    /// A request's head was parsed: the connection is busy until [`InFlight`] drops.
    pub(super) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight {
            activity: Arc::clone(self),
            waiting: false,
        }
    }

    /// Bytes arrived. Only the first read and the first read after a request ended do work.
    fn read(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if !self.first_read.load(Relaxed) {
            self.first_read.store(true, Relaxed);
            // Clients speaking HTTP/2 without TLS send the preface in one write.
            if bytes.starts_with(b"PRI * HTTP/2") {
                self.http2.store(true, Relaxed);
            }
        }
        if self.head_started.load(Relaxed) == WAITING && self.in_flight.load(Relaxed) == 0 {
            self.head_started.store(self.now(), Relaxed);
        }
    }

    /// Whether the connection speaks HTTP/2 (frames such as pings are not request heads).
    pub(super) fn is_http2(&self) -> bool {
        self.http2.load(Relaxed)
    }

    /// The deadline the connection is under now.
    pub(super) fn deadline(
        &self,
        header_read: Duration,
        idle: Duration,
        send: Duration,
    ) -> Deadline {
        if self.in_flight.load(Relaxed) > 0 {
            // Some response waits for the client, and none handed it anything since `send`.
            if self.waiting_on_client.load(Relaxed) > 0 {
                let since = self.at(self.last_sent.load(Relaxed));
                return Deadline::At(since + send, Expiry::Send);
            }
            return Deadline::None;
        }
        let head_started = self.head_started.load(Relaxed);
        if head_started == WAITING || self.is_http2() {
            let idle_since = self.at(self.idle_since.load(Relaxed));
            Deadline::At(idle_since + idle, Expiry::Idle)
        } else {
            Deadline::At(self.at(head_started) + header_read, Expiry::HeaderRead)
        }
    }
}

/// A request in flight; dropped when its response body is done (or dropped unfinished).
#[derive(Debug)]
pub(super) struct InFlight {
    activity: Arc<Activity>,
    /// The response handed data to the connection and was not asked for more since.
    waiting: bool,
}

impl InFlight {
    /// The connection asks the response for more: whatever it handed before was taken.
    pub(super) fn polled(&mut self) {
        if std::mem::take(&mut self.waiting) {
            self.activity.waiting_on_client.fetch_sub(1, Relaxed);
        }
    }

    /// The response handed data to the connection: until it is asked for more, it waits for the
    /// client. When no response of the connection hands anything for the send timeout while one
    /// waits, the client stopped reading.
    pub(super) fn sent(&mut self) {
        self.activity.last_sent.store(self.activity.now(), Relaxed);
        if !std::mem::replace(&mut self.waiting, true) {
            self.activity.waiting_on_client.fetch_add(1, Relaxed);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.polled();
        let activity = &self.activity;
        activity.idle_since.store(activity.now(), Relaxed);
        activity.head_started.store(WAITING, Relaxed);
        activity.in_flight.fetch_sub(1, Relaxed);
    }
}

pin_project! {
    /// The connection's I/O: records reads in its [`Activity`], and holds the connection's place
    /// under the connection cap for as long as the socket lives — through a WebSocket upgrade too.
    #[derive(Debug)]
    pub(super) struct TrackedIo<Io> {
        #[pin]
        io: Io,
        activity: Arc<Activity>,
        _permit: OwnedSemaphorePermit,
    }
}

impl<Io> TrackedIo<Io> {
    pub(super) fn new(io: Io, activity: Arc<Activity>, permit: OwnedSemaphorePermit) -> Self {
        Self {
            io,
            activity,
            _permit: permit,
        }
    }
}

impl<Io: AsyncRead> AsyncRead for TrackedIo<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.io.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.activity.read(&buf.filled()[before..]);
        }
        result
    }
}

impl<Io: AsyncWrite> AsyncWrite for TrackedIo<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(75);
    const SEND: Duration = Duration::from_secs(30);

    fn expiry(activity: &Activity) -> Option<Expiry> {
        match activity.deadline(HEAD, IDLE, SEND) {
            Deadline::None => None,
            Deadline::At(_, expiry) => Some(expiry),
        }
    }

    #[tokio::test]
    async fn a_connection_idles_reads_a_head_serves_and_idles_again() {
        let activity = Activity::new();
        assert_eq!(expiry(&activity), Some(Expiry::Idle));
        activity.read(b"GE");
        assert_eq!(expiry(&activity), Some(Expiry::HeaderRead));
        let request = activity.request();
        assert_eq!(expiry(&activity), None);
        // The next request's bytes while this one is in flight (pipelining) start no clock.
        activity.read(b"GET / HTTP/1.1\r\n");
        drop(request);
        assert_eq!(expiry(&activity), Some(Expiry::Idle));
        assert!(!activity.is_http2());
    }

    #[tokio::test]
    async fn a_response_not_asked_for_more_is_under_the_send_deadline() {
        let activity = Activity::new();
        let (mut a, mut b) = (activity.request(), activity.request());
        assert_eq!(expiry(&activity), None, "producing: no deadline");
        a.sent();
        assert_eq!(expiry(&activity), Some(Expiry::Send));
        a.polled();
        b.polled();
        assert_eq!(expiry(&activity), None, "taken: no deadline");
        b.sent();
        drop(b);
        assert_eq!(expiry(&activity), None, "a finished response has none");
    }

    #[tokio::test]
    async fn http2_connections_only_idle() {
        let activity = Activity::new();
        activity.read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert!(activity.is_http2());
        assert_eq!(expiry(&activity), Some(Expiry::Idle));
    }
}

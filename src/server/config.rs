//! [`ServerConfig`]: the limits and timeouts of the HTTP server, and their environment variables.

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::env::{Setting, parse};
use crate::error::ConfigError;

/// Limits and timeouts of [`Server`](super::Server). `Default` is chosen for running behind a
/// load balancer; the [module docs](super#defaults) give the reasoning for each value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Time a client has to send a request's head (request line and headers) once its first
    /// byte arrived (default 10 s). Past it the connection is closed without a response.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time a connection may sit without a request in flight before it is closed (default 75 s:
    /// longer than the idle timeout of the load balancers in front, see the module docs).
    /// WebSocket connections are not affected.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Open connections (WebSockets included) at most (default 10,000). At the cap the server
    /// stops accepting — new connections wait in the kernel's backlog — and keeps serving the
    /// open ones.
    pub max_connections: usize,
    /// Largest request head: request line and headers, or the HTTP/2 header list (default
    /// 64 KiB). Larger is answered `431 Request Header Fields Too Large`.
    pub max_header_size: ByteSize,
    /// Most headers in an HTTP/1 request (default 100); more is answered `431`.
    pub max_headers: usize,
    /// Time in-flight requests get to finish after shutdown started (default 20 s); then the
    /// remaining connections are closed and [`serve`](super::Server::serve) returns.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Interval of HTTP/2 keep-alive pings (default 20 s); a connection whose peer does not answer
    /// one within the same time is closed.
    #[serde(with = "humantime_serde")]
    pub http2_keep_alive_interval: Duration,
    /// Concurrent streams per HTTP/2 connection (default 100).
    pub http2_max_concurrent_streams: u32,
    /// Time a response may go without the client taking any of it (default 30 s): its body
    /// handed data to the connection and was not asked for more since — the client stopped
    /// reading (HTTP/1: the socket's send buffer is full; HTTP/2: the stream's flow-control
    /// window is closed). Past it the connection is closed. A response waiting for the
    /// application to produce its next bytes is not affected.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// Bytes of response data buffered per HTTP/2 stream waiting for the client's flow-control
    /// window (default 64 KiB): with the stream cap, what one connection's stalled responses can
    /// hold (100 × 64 KiB = 6.4 MiB by default).
    pub http2_max_send_buffer: ByteSize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 10_000,
            max_header_size: ByteSize::kib(64),
            max_headers: 100,
            shutdown_timeout: Duration::from_secs(20),
            http2_keep_alive_interval: Duration::from_secs(20),
            http2_max_concurrent_streams: 100,
            send_timeout: Duration::from_secs(30),
            http2_max_send_buffer: ByteSize::kib(64),
        }
    }
}

impl ServerConfig {
    /// The environment variables of the server.
    pub(crate) const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "RUSTFORGE_HEADER_READ_TIMEOUT",
            "server.header_read_timeout",
            "`10s`",
            "time to send a request's headers once its first byte arrived; then the connection is closed",
            |c, var, v| {
                c.header_read_timeout = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_IDLE_TIMEOUT",
            "server.idle_timeout",
            "`75s`",
            "keep-alive idle time before a connection is closed; must exceed the load balancer's",
            |c, var, v| {
                c.idle_timeout = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_MAX_CONNECTIONS",
            "server.max_connections",
            "`10000`",
            "open connections (WebSockets included) at most; at the cap the server stops accepting",
            |c, var, v| {
                c.max_connections = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_MAX_HEADER_SIZE",
            "server.max_header_size",
            "`64KiB`",
            "largest request head (request line and headers); larger is answered 431",
            |c, var, v| {
                c.max_header_size = ByteSize(parse::size(var, v)?);
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_MAX_HEADERS",
            "server.max_headers",
            "`100`",
            "most headers in an HTTP/1 request; more is answered 431",
            |c, var, v| {
                c.max_headers = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_SHUTDOWN_TIMEOUT",
            "server.shutdown_timeout",
            "`20s`",
            "time in-flight requests get to finish after the drain; then connections are closed",
            |c, var, v| {
                c.shutdown_timeout = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_HTTP2_KEEPALIVE_INTERVAL",
            "server.http2_keep_alive_interval",
            "`20s`",
            "interval of HTTP/2 pings; a peer that does not answer within it is disconnected",
            |c, var, v| {
                c.http2_keep_alive_interval = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_HTTP2_MAX_STREAMS",
            "server.http2_max_concurrent_streams",
            "`100`",
            "concurrent streams per HTTP/2 connection",
            |c, var, v| {
                c.http2_max_concurrent_streams = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_SEND_TIMEOUT",
            "server.send_timeout",
            "`30s`",
            "time a response may go without the client reading any of it; then the connection is closed",
            |c, var, v| {
                c.send_timeout = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_HTTP2_MAX_SEND_BUFFER",
            "server.http2_max_send_buffer",
            "`64KiB`",
            "response bytes buffered per HTTP/2 stream while the client's window is closed",
            |c, var, v| {
                c.http2_max_send_buffer = ByteSize(parse::size(var, v)?);
                Ok(())
            },
        ),
    ];

    /// Checks that every limit is usable: no zero timeouts or limits, a head size hyper accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let durations = [
            ("server.header_read_timeout", self.header_read_timeout),
            ("server.idle_timeout", self.idle_timeout),
            (
                "server.http2_keep_alive_interval",
                self.http2_keep_alive_interval,
            ),
            ("server.send_timeout", self.send_timeout),
        ];
        for (key, value) in durations {
            if value.is_zero() {
                return Err(ConfigError::new(key, "0s", "must be greater than zero"));
            }
        }
        let counts = [
            ("server.max_connections", self.max_connections as u64),
            ("server.max_headers", self.max_headers as u64),
            (
                "server.http2_max_concurrent_streams",
                u64::from(self.http2_max_concurrent_streams),
            ),
            (
                "server.http2_max_send_buffer",
                self.http2_max_send_buffer.as_u64(),
            ),
        ];
        for (key, value) in counts {
            if value == 0 {
                return Err(ConfigError::new(key, "0", "must be greater than zero"));
            }
        }
        // hyper's read buffer, which bounds the head, is at least 8 KiB; the HTTP/2 setting is a
        // u32.
        if !(8192..=u64::from(u32::MAX)).contains(&self.max_header_size.as_u64()) {
            return Err(ConfigError::new(
                "server.max_header_size",
                self.max_header_size.as_u64().to_string(),
                "expected 8KiB to 4GiB",
            ));
        }
        Ok(())
    }
}

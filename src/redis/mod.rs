//! The shared Redis handle: one pool (or cluster client) that every module uses.
//!
//! `REDIS_URL` (or [`RedisConfig::url`]) is a single node — `redis://host:port/db`,
//! `rediss://…` for TLS —, a cluster: `redis+cluster://host:port,host:port,…`
//! (`rediss+cluster://…` for TLS), or a primary found through Redis Sentinel:
//! `redis+sentinel://[user:password@]host:port,host:port,…/service_name[/db]`
//! (`rediss+sentinel://…` for TLS; see [Sentinel](#sentinel)). Over TLS the server's certificate is checked against the
//! system's roots, or against [`RedisConfig::ca_cert`] (`RUSTFORGE_REDIS_CA_CERT`, for a private
//! CA); [`client_cert`](RedisConfig::client_cert) and [`client_key`](RedisConfig::client_key)
//! answer servers that require client certificates. redis-rs's `rediss://host:port/#insecure`
//! (no certificate check at all) is for test setups only. The handle
//! holds a [bb8] pool of multiplexed connections, tuned for the hot path: connections are not
//! PINGed on every checkout, and a checkout only lasts long enough to clone the connection's
//! handle (a multiplexed connection carries any number of concurrent commands, so holding the
//! pool slot for a whole command would cap in-flight commands at the pool size). A connection that
//! fails with an I/O error is marked broken and replaced. Call it inside a Tokio runtime (the pool
//! runs a reaper task). Every command runs under [`RedisConfig::command_timeout`], the wait for a
//! connection included, so a dead server costs a bounded time, never a hung request.
//!
//! One circuit breaker guards every module's calls: after
//! [`breaker_failures`](RedisConfig::breaker_failures) consecutive connection failures or
//! timeouts (3 by default) every call fails at once with [`RedisError::Unavailable`] — cache
//! reads are misses and session requests answer 503 in microseconds, not after a timeout each —
//! while a background `PING` every [`breaker_probe_interval`](RedisConfig::breaker_probe_interval)
//! (500 ms) closes it on the first answer. [`RedisHandle::breaker_open`] reports it;
//! `rustforge_redis_breaker_open` exports it and `/health`'s `redis` check says so.
//!
//! ```no_run
//! use rustforge_prod::redis::{RedisConfig, RedisHandle, Script};
//!
//! # async fn demo() -> Result<(), rustforge_prod::redis::RedisError> {
//! let redis = RedisHandle::connect(&RedisConfig::new("redis://127.0.0.1:6379"))?;
//! let latency = redis.ping().await?;
//! println!("Redis answered in {latency:?}");
//!
//! // Scripts run with EVALSHA and are loaded again after a NOSCRIPT (e.g. a Redis restart).
//! let incr = Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
//! let key = redis.key("demo", "counter"); // "{rustforge:demo}:counter" — one hash slot
//! let value: i64 = redis.eval(&incr, &[&key], &["5"]).await?;
//! # let _ = value; Ok(()) }
//! ```
//!
//! # Sentinel
//!
//! With a `redis+sentinel://` URL every new connection asks the sentinels for the current
//! primary of the service (and checks that it answers `ROLE` as a master), so after a failover
//! the pool and the broadcaster's subscriber reconnect to the promoted replica. A connection to
//! the old primary fails — refused, reset, or `READONLY` once it is back as a replica — and is
//! replaced; calls in flight at the switch fail like any connection failure (and count for the
//! breaker). The URL's user and password are the primary's; sentinels with credentials of their
//! own take [`sentinel_username`](RedisConfig::sentinel_username) and
//! [`sentinel_password`](RedisConfig::sentinel_password).
//!
//! [bb8]: https://docs.rs/bb8

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, IntoConnectionInfo, Pipeline, RedisFuture,
    TlsCertificates, TlsMode, Value,
};
use serde::{Deserialize, Serialize};

#[cfg(feature = "cache")]
mod scan;
mod sentinel;

use sentinel::Sentinel;

use crate::breaker::{Breaker, Permit};
use crate::env::{Setting, parse};
use crate::error::ConfigError;
use crate::util::{Cause, cause};

/// Settings of the shared Redis handle.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://…`, `rediss://…`, `redis+cluster://host:port,host:port,…` or
    /// `redis+sentinel://[user:password@]host:port,host:port,…/service_name[/db]`.
    pub url: String,
    /// Prefix of every key the crate writes (default `rustforge`).
    pub prefix: String,
    /// Connections in the pool (default 8; each one is multiplexed).
    pub pool_size: u32,
    /// Time allowed to open a connection (default 1 s). The pool keeps opening one in the
    /// background; a command waits for it at most its [command timeout](Self::command_timeout).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed for one command, including the wait for a pooled connection (default
    /// 500 ms).
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Consecutive connection failures or command timeouts that open the handle's circuit
    /// breaker (default 3): while it is open every call fails at once with
    /// [`RedisError::Unavailable`], without waiting on the network.
    pub breaker_failures: u32,
    /// How often an open breaker sends a background `PING` (default 500 ms); the first answer
    /// closes it.
    #[serde(with = "humantime_serde")]
    pub breaker_probe_interval: Duration,
    /// The user the sentinels of a `redis+sentinel://` URL want, when they want one (the URL's
    /// user is the primary's).
    pub sentinel_username: Option<String>,
    /// The sentinels' password, when they have one (the URL's password is the primary's).
    pub sentinel_password: Option<String>,
    /// PEM file with the CA certificate(s) that signed the server's certificate, for
    /// `rediss://` (default: the system's trusted roots).
    pub ca_cert: Option<PathBuf>,
    /// PEM file with a client certificate (chain), for servers that require TLS client
    /// authentication; set with [`client_key`](Self::client_key).
    pub client_cert: Option<PathBuf>,
    /// PEM file with the private key of [`client_cert`](Self::client_cert).
    pub client_key: Option<PathBuf>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            prefix: "rustforge".to_owned(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(500),
            breaker_failures: 3,
            breaker_probe_interval: Duration::from_millis(500),
            sentinel_username: None,
            sentinel_password: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &crate::util::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_probe_interval", &self.breaker_probe_interval)
            .field("sentinel_username", &self.sentinel_username)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "***"),
            )
            .field("ca_cert", &self.ca_cert)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .finish()
    }
}

impl RedisConfig {
    /// Default settings for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the command timeout.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Opens the circuit breaker after `failures` consecutive connection failures or command
    /// timeouts, and probes every `probe_interval` while it is open.
    pub fn breaker(mut self, failures: u32, probe_interval: Duration) -> Self {
        self.breaker_failures = failures;
        self.breaker_probe_interval = probe_interval;
        self
    }

    /// Sets the pool size.
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size;
        self
    }

    /// Trusts the CA certificate(s) in this PEM file for `rediss://` instead of the system's
    /// roots.
    pub fn ca_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_cert = Some(path.into());
        self
    }

    /// Presents this client certificate and key (PEM files) to a server that requires them.
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some(cert.into());
        self.client_key = Some(key.into());
        self
    }

    /// Checks every setting without connecting (certificate files are read).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.target()?;
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return Err(ConfigError::new(
                "redis.prefix",
                &self.prefix,
                "must be non-empty and contain no `{` or `}` (they make the hash tag)",
            ));
        }
        if self.pool_size == 0 || self.pool_size > 1024 {
            return Err(ConfigError::new(
                "redis.pool_size",
                self.pool_size.to_string(),
                "expected 1 to 1024 connections",
            ));
        }
        if self.breaker_failures == 0 || self.breaker_failures > 1000 {
            return Err(ConfigError::new(
                "redis.breaker_failures",
                self.breaker_failures.to_string(),
                "expected 1 to 1000 consecutive failures",
            ));
        }
        for (key, d) in [
            ("redis.connect_timeout", self.connect_timeout),
            ("redis.command_timeout", self.command_timeout),
            ("redis.breaker_probe_interval", self.breaker_probe_interval),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(key, "0s", "must be greater than zero"));
            }
        }
        Ok(())
    }
    /// The environment variables of the shared Redis handle.
    pub(crate) const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "REDIS_URL",
            "redis.url",
            "unset (no Redis)",
            "`redis://…`, `rediss://…` (TLS), `redis+cluster://host:port,host:port` or `redis+sentinel://[user:password@]host:port,host:port/service_name[/db]` (`rediss+…` for TLS)",
            |c, _, v| {
                c.url = v.trim().to_owned();
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_REDIS_PREFIX",
            "redis.prefix",
            "`rustforge`",
            "prefix of every Redis key the crate writes",
            |c, _, v| {
                c.prefix = v.trim().to_owned();
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_REDIS_POOL_SIZE",
            "redis.pool_size",
            "`8`",
            "pooled (multiplexed) connections",
            |c, var, v| {
                c.pool_size = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_REDIS_CONNECT_TIMEOUT",
            "redis.connect_timeout",
            "`1s`",
            "time allowed to open a connection (a command waits for one at most the command timeout)",
            |c, var, v| {
                c.connect_timeout = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_REDIS_COMMAND_TIMEOUT",
            "redis.command_timeout",
            "`500ms`",
            "time allowed for one Redis command, the wait for a pooled connection included",
            |c, var, v| {
                c.command_timeout = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_REDIS_BREAKER_FAILURES",
            "redis.breaker_failures",
            "`3`",
            "consecutive connection failures or timeouts after which every Redis call fails at once (circuit breaker open)",
            |c, var, v| {
                c.breaker_failures = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_REDIS_BREAKER_PROBE_INTERVAL",
            "redis.breaker_probe_interval",
            "`500ms`",
            "how often an open breaker PINGs Redis in the background; the first answer closes it",
            |c, var, v| {
                c.breaker_probe_interval = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_REDIS_SENTINEL_USERNAME",
            "redis.sentinel_username",
            "unset",
            "user for the sentinels of a `redis+sentinel://` URL, when they require one (the URL's user is the primary's)",
            |c, _, v| {
                c.sentinel_username = Some(v.trim().to_owned()).filter(|v| !v.is_empty());
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_REDIS_SENTINEL_PASSWORD",
            "redis.sentinel_password",
            "unset",
            "password for the sentinels of a `redis+sentinel://` URL, when they require one",
            |c, _, v| {
                c.sentinel_password = Some(v.to_owned()).filter(|v| !v.is_empty());
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_REDIS_CA_CERT",
            "redis.ca_cert",
            "unset (the system's roots)",
            "PEM file of the CA that signed the server's certificate (`rediss://` only)",
            |c, _, v| {
                c.ca_cert = path(v);
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_REDIS_CLIENT_CERT",
            "redis.client_cert",
            "unset",
            "PEM file of a client certificate, for servers that require one (with the key)",
            |c, _, v| {
                c.client_cert = path(v);
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_REDIS_CLIENT_KEY",
            "redis.client_key",
            "unset",
            "PEM file of the client certificate's private key",
            |c, _, v| {
                c.client_key = path(v);
                Ok(())
            },
        ),
    ];

    /// Whether the URL asks for TLS.
    fn is_tls(&self) -> bool {
        let url = self.url.trim();
        url.starts_with("rediss://")
            || url.starts_with("rediss+cluster://")
            || url.starts_with("rediss+sentinel://")
    }

    /// The certificate files, read and checked to hold PEM of the right kind; `None` when none
    /// is set (TLS then uses the system's roots).
    fn certificates(&self) -> Result<Option<TlsCertificates>, ConfigError> {
        let files = [
            ("redis.ca_cert", &self.ca_cert),
            ("redis.client_cert", &self.client_cert),
            ("redis.client_key", &self.client_key),
        ];
        let Some((key, first)) = files
            .iter()
            .find_map(|(key, file)| file.as_ref().map(|f| (*key, f)))
        else {
            return Ok(None);
        };
        if !self.is_tls() {
            return Err(ConfigError::new(
                key,
                first.display().to_string(),
                "certificates are only used with a rediss:// URL",
            ));
        }
        let client_tls = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read_pem("redis.client_cert", cert, "CERTIFICATE-----")?,
                client_key: read_pem("redis.client_key", key, "PRIVATE KEY-----")?,
            }),
            (None, None) => None,
            (Some(cert), None) => {
                return Err(ConfigError::new(
                    "redis.client_key",
                    "",
                    format!(
                        "missing: the client certificate {} needs its key",
                        cert.display()
                    ),
                ));
            }
            (None, Some(key)) => {
                return Err(ConfigError::new(
                    "redis.client_cert",
                    "",
                    format!(
                        "missing: the client key {} needs its certificate",
                        key.display()
                    ),
                ));
            }
        };
        let root_cert = self
            .ca_cert
            .as_ref()
            .map(|ca| read_pem("redis.ca_cert", ca, "CERTIFICATE-----"))
            .transpose()?;
        Ok(Some(TlsCertificates {
            client_tls,
            root_cert,
        }))
    }

    /// Parses the URL into a client, without connecting.
    fn target(&self) -> Result<Target, ConfigError> {
        let bad = |reason: String| {
            ConfigError::new("redis.url", crate::util::redact_url(&self.url), reason)
        };
        let url = self.url.trim();
        let cluster = ["redis+cluster://", "rediss+cluster://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme).map(|rest| (scheme, rest)));
        let certificates = self.certificates()?;
        if self.is_tls() {
            install_crypto_provider();
        }
        let sentinel = sentinel::SCHEMES
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme).map(|rest| (scheme, rest)));
        if let Some((scheme, rest)) = sentinel {
            let tls = scheme.starts_with("rediss");
            return Ok(Target::Sentinel(Sentinel::parse(
                self,
                tls,
                rest,
                certificates,
            )?));
        }
        if let Some((scheme, rest)) = cluster {
            let tls = scheme.starts_with("rediss");
            let (userinfo, hosts, insecure) = split_multi_host(rest);
            let nodes: Vec<String> = hosts
                .trim_end_matches('/')
                .split(',')
                .map(|host| {
                    let auth = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
                    format!(
                        "{}://{auth}{}",
                        if tls { "rediss" } else { "redis" },
                        host.trim()
                    )
                })
                .collect();
            if nodes.iter().any(|n| n.ends_with("://") || n.ends_with('@')) {
                return Err(bad(
                    "a cluster URL lists host:port pairs separated by commas".into(),
                ));
            }
            let cluster = ClusterNodes {
                nodes,
                tls: tls.then_some(ClusterTls {
                    certificates,
                    insecure,
                }),
            };
            let client = cluster
                .builder()
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.command_timeout)
                // The cluster client re-sends a command after an I/O error by default; a counter
                // script sent twice counts twice. A redirect after resharding surfaces as one
                // failed command while the slot map refreshes.
                .retries(0)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Ok(Target::Cluster(Box::new(client), cluster))
        } else {
            if !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("redis+unix://")
                || url.starts_with("unix://"))
            {
                return Err(bad(
                    "expected redis://, rediss://, redis+cluster:// (host:port,host:port) or \
                     redis+sentinel:// (host:port,host:port/service_name)"
                        .into(),
                ));
            }
            let info = url
                .into_connection_info()
                .map_err(|e| bad(e.to_string()))?
                .set_tcp_settings(tcp_settings());
            let client = match certificates {
                Some(certificates) => Client::build_with_tls(info, certificates),
                None => Client::open(info),
            }
            .map_err(|e| bad(e.to_string()))?;
            Ok(Target::Single(client))
        }
    }
}

/// The parts of a multi-host URL after its scheme (cluster, sentinel): the user info, the rest,
/// and whether it ends in redis-rs's "no certificate check" marker `#insecure` (as a
/// single-node URL may).
fn split_multi_host(rest: &str) -> (Option<&str>, &str, bool) {
    let (rest, insecure) = match rest.strip_suffix("#insecure") {
        Some(rest) => (rest, true),
        None => (rest, false),
    };
    match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest, insecure),
        None => (None, rest, insecure),
    }
}

/// A path from an environment variable; empty is unset.
fn path(value: &str) -> Option<PathBuf> {
    let value = value.trim();
    (!value.is_empty()).then(|| PathBuf::from(value))
}

/// Reads a PEM file for the setting `key`, checking that it holds a block ending in `marker`.
fn read_pem(key: &str, path: &Path, marker: &str) -> Result<Vec<u8>, ConfigError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path)
        .map_err(|e| ConfigError::new(key, &shown, format!("cannot read the file: {e}")))?;
    if !String::from_utf8_lossy(&pem).contains(marker) {
        return Err(ConfigError::new(
            key,
            shown,
            format!("expected a PEM file with a `-----BEGIN …{marker}` block"),
        ));
    }
    Ok(pem)
}

/// redis-rs builds its rustls configuration with the process's default crypto provider. With
/// more than one provider compiled into the application (aws-lc-rs and ring), rustls cannot pick
/// one and would panic: install the one this crate depends on unless the application already
/// installed its own.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An Err means another thread installed one first: that one is used.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// The nodes of a cluster and how to reach them, for the pool's client and for the separate
/// sharded pub/sub client.
#[derive(Clone)]
struct ClusterNodes {
    nodes: Vec<String>,
    tls: Option<ClusterTls>,
}

#[derive(Clone)]
struct ClusterTls {
    certificates: Option<TlsCertificates>,
    insecure: bool,
}

/// Every connection to Redis: no Nagle delay on small commands; a peer that vanished without a
/// FIN (a NAT or load balancer dropped the flow, a failover) is found by keepalive probes after
/// 10 s of silence, 3 × 5 s apart, and data left unacknowledged for 10 s closes the connection.
/// The subscriber connection adds its own PINGs (see the broadcaster).
fn tcp_settings() -> TcpSettings {
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5));
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    let keepalive = keepalive.with_retries(3);
    let settings = TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive);
    #[cfg(target_os = "linux")]
    let settings = settings.set_user_timeout(Duration::from_secs(10));
    settings
}

impl ClusterNodes {
    fn builder(&self) -> ClusterClientBuilder {
        let mut builder = ClusterClient::builder(self.nodes.clone()).tcp_settings(tcp_settings());
        if let Some(tls) = &self.tls {
            if tls.insecure {
                builder = builder.tls(TlsMode::Insecure);
            }
            if let Some(certificates) = &tls.certificates {
                builder = builder.certs(certificates.clone());
            }
        }
        builder
    }
}

/// A failure of the Redis backend. No password or key content appears in it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The configuration was invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No connection could be opened or taken from the pool in time.
    #[error("Redis is unreachable: {0}")]
    Unavailable(#[source] Cause),
    /// A command got no answer within the command timeout.
    #[error("Redis command timed out after {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection broke mid-command.
    #[error("Redis command failed: {0}")]
    Command(#[source] Cause),
}

impl RedisError {
    fn from_redis(err: redis::RedisError, timeout: Duration) -> Self {
        if err.is_timeout() {
            Self::Timeout(timeout)
        } else if let Some(hint) = tls_hint(&err) {
            Self::Unavailable(cause(format!("{err} — {hint}")))
        } else if err.is_connection_refusal() {
            Self::Unavailable(cause(err))
        } else {
            Self::Command(cause(err))
        }
    }
}

/// What to change when a TLS handshake failed, naming the setting.
fn tls_hint(err: &redis::RedisError) -> Option<&'static str> {
    let text = err.to_string();
    if text.contains("invalid peer certificate") {
        Some(
            "the server's certificate is not trusted: set RUSTFORGE_REDIS_CA_CERT \
             (redis.ca_cert) to the CA that signed it, and use the host name it was issued for",
        )
    } else if text.contains("CertificateRequired") || text.contains("certificate required") {
        Some(
            "the server requires a client certificate: set RUSTFORGE_REDIS_CLIENT_CERT and \
             RUSTFORGE_REDIS_CLIENT_KEY",
        )
    } else if text.contains("InvalidContentType") || text.contains("corrupt message") {
        Some("the server does not speak TLS on this port: use redis:// or its TLS port")
    } else {
        None
    }
}

/// A Lua script run with `EVALSHA`, loaded again when Redis answers `NOSCRIPT`.
///
/// Loading again is safe (a `NOSCRIPT` script did not run); any other failure is returned, never
/// retried, because a counter script sent twice would count twice.
#[derive(Clone, Debug)]
pub struct Script(redis::Script);

impl Script {
    /// A script from its Lua source (usually `include_str!("x.lua")`).
    pub fn new(lua: &str) -> Self {
        Self(redis::Script::new(lua))
    }

    /// The SHA1 that `EVALSHA` uses.
    pub fn sha(&self) -> &str {
        self.0.get_hash()
    }

    /// An invocation to add keys and typed arguments to, for [`RedisHandle::invoke`].
    pub(crate) fn invocation(&self) -> redis::ScriptInvocation<'_> {
        self.0.prepare_invoke()
    }
}

mod sealed {
    pub trait Sealed: redis::FromRedisValue {}
}

/// Types a script or command reply converts into.
pub trait FromRedisReply: sealed::Sealed {}

macro_rules! replies {
    ($($t:ty),*) => { $(impl sealed::Sealed for $t {} impl FromRedisReply for $t {})* };
}
replies!(
    (),
    bool,
    i64,
    u64,
    f64,
    String,
    Option<String>,
    Option<i64>,
    Vec<i64>,
    Vec<String>,
    Vec<Vec<String>>,
    Option<Vec<u8>>,
    (Option<Vec<u8>>, i64),
    Vec<Option<Vec<u8>>>
);

/// The shared, cheap-to-clone Redis handle.
#[derive(Clone)]
pub struct RedisHandle {
    inner: Arc<Inner>,
}

struct Inner {
    pool: bb8::Pool<Manager>,
    prefix: String,
    cluster: bool,
    command_timeout: Duration,
    /// For dedicated pub/sub connections (broadcasting).
    #[cfg_attr(not(feature = "broadcast"), allow(dead_code))]
    pubsub: PubSubTarget,
    #[cfg_attr(not(feature = "broadcast"), allow(dead_code))]
    connect_timeout: Duration,
    /// Why the pool's last attempt to connect failed (the pool itself only reports a timeout).
    last_connect_error: LastError,
    /// Bumped when a connection was dropped by the server (a restart, a failover) or the breaker
    /// opened: the pooled connections opened before are most likely dead too, and are replaced
    /// when next taken instead of failing one call each.
    generation: Arc<AtomicU64>,
    /// The URL asks for TLS.
    tls: bool,
    /// Opened by consecutive connection failures and timeouts; closed by a background probe.
    breaker: Breaker,
    probe_interval: Duration,
}

/// The last connection failure, with its hint, until a connection succeeds.
type LastError = Arc<std::sync::Mutex<Option<String>>>;

impl fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisHandle")
            .field("prefix", &self.inner.prefix)
            .field("cluster", &self.inner.cluster)
            .field("pool", &self.inner.pool.state())
            .finish()
    }
}

impl RedisHandle {
    /// Creates the pool. Connections open lazily, so this only fails on an invalid
    /// configuration — a Redis that is down shows up as [`RedisError::Unavailable`] on use.
    pub fn connect(config: &RedisConfig) -> Result<Self, RedisError> {
        config.validate()?;
        let target = config.target()?;
        let cluster = matches!(target, Target::Cluster(..));
        let pubsub = match &target {
            Target::Single(client) => PubSubTarget::Single(client.clone()),
            Target::Sentinel(sentinel) => PubSubTarget::Sentinel(sentinel.clone()),
            Target::Cluster(_, nodes) => PubSubTarget::Cluster(nodes.clone()),
        };
        let last_connect_error = Arc::new(std::sync::Mutex::new(None));
        let generation = Arc::new(AtomicU64::new(0));
        let manager = Manager {
            target,
            last_error: Arc::clone(&last_connect_error),
            generation: Arc::clone(&generation),
            // No response timeout in the connection: `eval`/`query` bound each command
            // themselves, so a caller with a shorter deadline (the rate limiter) needs one timer
            // per command, not two.
            connection: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(None),
        };
        let pool = bb8::Pool::builder()
            .max_size(config.pool_size)
            .min_idle(None)
            // The hot path: no PING per checkout; broken connections are found by their errors.
            .test_on_check_out(false)
            // The most recently returned connection first: commands concentrate on one
            // multiplexed connection, so more of them share each write and read on both sides
            // (RedisStore/ConnectionManager 0.89–0.93 → 0.95–0.98 at 50 callers, `benches/ratelimit.rs`).
            .queue_strategy(bb8::QueueStrategy::Lifo)
            .connection_timeout(config.connect_timeout)
            .retry_connection(false)
            .build_unchecked(manager);
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                prefix: config.prefix.clone(),
                cluster,
                command_timeout: config.command_timeout,
                pubsub,
                connect_timeout: config.connect_timeout,
                last_connect_error,
                generation,
                tls: config.is_tls(),
                // The cooldown is unused: requests never probe, the background task does.
                breaker: Breaker::new(config.breaker_failures, Duration::ZERO),
                probe_interval: config.breaker_probe_interval,
            }),
        })
    }

    /// A dedicated pub/sub connection (outside the pool: it only subscribes), on a single node.
    #[cfg(feature = "broadcast")]
    pub(crate) async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisError> {
        let connect = async {
            match &self.inner.pubsub {
                PubSubTarget::Single(client) => client.get_async_pubsub().await,
                // The primary of now: a resubscription after a failover goes to the new one.
                PubSubTarget::Sentinel(sentinel) => {
                    sentinel.primary().await?.get_async_pubsub().await
                }
                PubSubTarget::Cluster(_) => Err(redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "this is a Redis Cluster: use sharded pub/sub",
                ))),
            }
        };
        match tokio::time::timeout(self.inner.connect_timeout, connect).await {
            Ok(result) => result.map_err(|e| RedisError::from_redis(e, self.inner.command_timeout)),
            Err(_) => Err(RedisError::Timeout(self.inner.connect_timeout)),
        }
    }

    /// A dedicated RESP3 connection to a Redis Cluster for sharded pub/sub (`SSUBSCRIBE`):
    /// messages, and the library's disconnection notices, arrive on the returned receiver;
    /// subscriptions are renewed by the client after reconnections and slot moves.
    #[cfg(feature = "broadcast")]
    pub(crate) async fn sharded_pubsub(
        &self,
    ) -> Result<
        (
            redis::cluster_async::ClusterConnection,
            tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
        ),
        RedisError,
    > {
        let PubSubTarget::Cluster(nodes) = &self.inner.pubsub else {
            return Err(RedisError::Unavailable(cause(
                "sharded pub/sub needs a Redis Cluster",
            )));
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = nodes
            .builder()
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(tx)
            .connection_timeout(self.inner.connect_timeout)
            .response_timeout(self.inner.command_timeout)
            .build()
            .map_err(|e| RedisError::from_redis(e, self.inner.command_timeout))?;
        let connect = client.get_async_connection();
        match tokio::time::timeout(self.inner.connect_timeout, connect).await {
            Ok(Ok(conn)) => Ok((conn, rx)),
            Ok(Err(e)) => Err(RedisError::from_redis(e, self.inner.command_timeout)),
            Err(_) => Err(RedisError::Timeout(self.inner.connect_timeout)),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Every command's deadline ([`RedisConfig::command_timeout`]).
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) fn command_timeout(&self) -> Duration {
        self.inner.command_timeout
    }

    /// Whether the circuit breaker is open: Redis failed
    /// [`breaker_failures`](RedisConfig::breaker_failures) times in a row, every call fails at
    /// once with [`RedisError::Unavailable`], and a background `PING` every
    /// [`breaker_probe_interval`](RedisConfig::breaker_probe_interval) closes it on the first
    /// answer.
    pub fn breaker_open(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// How many times the handle found its connections stale (a server dropped one, or the
    /// breaker opened). A long-lived connection opened at another count may be on a Redis that
    /// failed over: the broadcaster's subscriber reconnects when it changes.
    #[cfg_attr(not(feature = "broadcast"), allow(dead_code))]
    pub(crate) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Relaxed)
    }

    /// Whether this handle talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.cluster
    }

    /// A key `{prefix:tag}suffix`-style: `{<prefix>:<tag>}:<suffix>`, or `{<prefix>:<tag>}` for
    /// an empty suffix. Keys with the same `tag` share a hash slot, so one script may use them
    /// all on Redis Cluster.
    pub fn key(&self, tag: &str, suffix: &str) -> String {
        if suffix.is_empty() {
            format!("{{{}:{tag}}}", self.inner.prefix)
        } else {
            format!("{{{}:{tag}}}:{suffix}", self.inner.prefix)
        }
    }

    /// Sends `PING` and returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration, RedisError> {
        let start = Instant::now();
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(start.elapsed())
    }

    /// Runs `script` with `keys` and `args` (all keys should share one hash tag, see
    /// [`key`](Self::key)).
    pub async fn eval<T: FromRedisReply>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<T, RedisError> {
        let mut invocation = script.invocation();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        self.invoke(&invocation, self.inner.command_timeout).await
    }

    /// Loads `script` (on every node of a Cluster), for pipelines that run it with `EVALSHA`.
    #[cfg_attr(not(feature = "broadcast"), allow(dead_code))]
    pub(crate) async fn load(&self, script: &Script) -> Result<(), RedisError> {
        self.bounded(self.inner.command_timeout, |mut conn| async move {
            let result = script.0.load_async(&mut conn).await.map(drop);
            (conn, result)
        })
        .await
    }

    /// Runs a prepared script invocation, answered within `timeout` (capped at the command
    /// timeout) including the wait for a connection — for this crate's modules, whose
    /// arguments need not be strings first.
    pub(crate) async fn invoke<T: FromRedisReply>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        timeout: Duration,
    ) -> Result<T, RedisError> {
        self.bounded(timeout, |mut conn| async move {
            let result = invocation.invoke_async(&mut conn).await;
            (conn, result)
        })
        .await
    }

    /// Runs one command on the shared pool, under the command timeout — for commands the
    /// modules do not cover. Keys are not prefixed: use [`key`](Self::key) or
    /// [`prefix`](Self::prefix).
    ///
    /// ```no_run
    /// # async fn demo(redis: rustforge_prod::redis::RedisHandle) -> Result<(), rustforge_prod::redis::RedisError> {
    /// let key = format!("{}:visits", redis.prefix());
    /// let visits: i64 = redis.query(redis::cmd("INCR").arg(&key)).await?;
    /// # let _ = visits; Ok(()) }
    /// ```
    pub async fn query<T: FromRedisReply>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        self.bounded(self.inner.command_timeout, |mut conn| async move {
            let result = cmd.query_async(&mut conn).await;
            (conn, result)
        })
        .await
    }

    /// Runs a pipeline in one round trip (on a cluster every command must go to one node) — for
    /// this crate's modules.
    #[cfg_attr(not(any(feature = "broadcast", feature = "cache")), allow(dead_code))]
    pub(crate) async fn query_pipeline<T: FromRedisReply>(
        &self,
        pipeline: &Pipeline,
    ) -> Result<T, RedisError> {
        self.bounded(self.inner.command_timeout, |mut conn| async move {
            let result = pipeline.query_async(&mut conn).await;
            (conn, result)
        })
        .await
    }

    /// Takes a connection and runs `run` on it within `timeout` (capped at the command timeout),
    /// the wait for a connection included: a Redis that refuses or drops connections costs the
    /// command timeout, not the connect timeout. While the breaker is open it fails at once.
    ///
    /// A connection failure or a timeout of the command timeout itself counts towards the
    /// breaker (and the connection is treated as broken: the pool replaces it, as a half-open
    /// TCP connection never answers again); a caller's shorter deadline only abandons the
    /// reply, which the multiplexed connection discards when it comes, and counts for nothing.
    async fn bounded<'a, T, F, Fut>(&'a self, timeout: Duration, run: F) -> Result<T, RedisError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = (Connection, redis::RedisResult<T>)> + 'a,
    {
        if self.inner.breaker.is_open() {
            return Err(RedisError::Unavailable(cause(
                "circuit breaker open: Redis failed repeatedly; probing it in the background",
            )));
        }
        let result = self.unguarded(timeout, run).await;
        match &result {
            Ok(_) => {
                self.inner.breaker.success(Permit::Call);
            }
            Err(Failure::Connection(_)) => {
                if self.inner.breaker.failure(Permit::Call) {
                    self.inner.generation.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        "Redis is failing: circuit breaker open, every Redis call fails at once \
                         until a background PING is answered"
                    );
                    self.probe();
                }
            }
            Err(Failure::Other(_)) => {}
        }
        result.map_err(Failure::into_error)
    }

    /// [`bounded`](Self::bounded) without the breaker; failures say whether they count for it.
    async fn unguarded<'a, T, F, Fut>(&'a self, timeout: Duration, run: F) -> Result<T, Failure>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = (Connection, redis::RedisResult<T>)> + 'a,
    {
        let command_timeout = self.inner.command_timeout;
        let caller_deadline = timeout < command_timeout;
        let timeout = timeout.min(command_timeout);
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || {
            let err = RedisError::Timeout(timeout);
            if caller_deadline {
                Failure::Other(err)
            } else {
                Failure::Connection(err)
            }
        };
        let conn = match tokio::time::timeout_at(deadline, self.connection()).await {
            Err(_) if caller_deadline => return Err(timed_out()),
            Err(_) => return Err(Failure::Connection(self.no_connection("command timeout"))),
            Ok(Err(err)) => return Err(Failure::Connection(err)),
            Ok(Ok(conn)) => conn,
        };
        let broken = conn.broken.clone();
        match tokio::time::timeout_at(deadline, run(conn)).await {
            Ok((conn, result)) => self.finish(&conn, result),
            Err(_) => {
                if !caller_deadline {
                    broken.store(true, Ordering::Relaxed);
                }
                Err(timed_out())
            }
        }
    }

    /// Starts the background probe of an open breaker: a `PING` every probe interval, under
    /// the command timeout, until one is answered. It holds the handle weakly, so a handle
    /// dropped during an outage stops it.
    fn probe(&self) {
        let inner = Arc::downgrade(&self.inner);
        let interval = self.inner.probe_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = inner.upgrade() else { return };
                let handle = RedisHandle { inner };
                let ping = handle
                    .unguarded(handle.inner.command_timeout, |mut conn| async move {
                        let result = redis::cmd("PING").query_async::<String>(&mut conn).await;
                        (conn, result)
                    })
                    .await;
                if ping.is_ok() {
                    handle.inner.breaker.success(Permit::Probe);
                    tracing::info!("Redis answers again: circuit breaker closed");
                    return;
                }
            }
        });
    }

    /// A handle on a pooled connection. The pool slot is released at once: a multiplexed
    /// connection carries any number of concurrent commands, so holding the slot for the length
    /// of a command would cap in-flight commands at the pool size and queue the rest behind it.
    async fn connection(&self) -> Result<Connection, RedisError> {
        loop {
            let pooled = self.inner.pool.get().await.map_err(|e| match e {
                bb8::RunError::User(e) => RedisError::Unavailable(cause(e)),
                bb8::RunError::TimedOut => self.no_connection("connect timeout"),
            })?;
            // A clone failed after the slot was released: the pool still holds the dead
            // connection. Dropping it here makes the pool discard it (`has_broken`).
            let stale = pooled.generation < self.inner.generation.load(Ordering::Relaxed);
            if stale {
                pooled.broken.store(true, Ordering::Relaxed);
            }
            if pooled.broken.load(Ordering::Relaxed) {
                continue;
            }
            return Ok(Connection {
                kind: pooled.kind.clone(),
                broken: pooled.broken.clone(),
                generation: pooled.generation,
            });
        }
    }

    /// No connection came within the `limit` (a timeout's name), with the reason the pool's last
    /// attempt failed, when it did.
    fn no_connection(&self, limit: &str) -> RedisError {
        let last = self.inner.last_connect_error.lock().unwrap().clone();
        RedisError::Unavailable(cause(match last {
            Some(why) => format!("no connection within the {limit}: {why}"),
            // A TLS handshake with a plain port waits for an answer that never comes.
            None if self.inner.tls => {
                format!(
                    "no connection within the {limit} (over TLS: is this the server's TLS port?)"
                )
            }
            None => format!("no connection within the {limit}"),
        }))
    }

    /// Maps the result and marks the connection broken after a connection-level failure, so the
    /// pool replaces it instead of handing it out again.
    fn finish<T>(&self, conn: &Connection, result: redis::RedisResult<T>) -> Result<T, Failure> {
        result.map_err(|err| {
            // READONLY: this node was a primary and is a replica now (a failover): the pool must
            // connect again, through the sentinels, to the new primary.
            let connection = err.is_io_error()
                || err.is_connection_dropped()
                || err.is_unrecoverable_error()
                || err.is_timeout()
                || err.code() == Some("READONLY");
            if connection {
                conn.broken.store(true, Ordering::Relaxed);
            }
            if connection && !err.is_timeout() {
                // The server dropped it (or is a replica now): so it did the others.
                self.inner.generation.fetch_add(1, Ordering::Relaxed);
            }
            let err = RedisError::from_redis(err, self.inner.command_timeout);
            if connection {
                Failure::Connection(err)
            } else {
                Failure::Other(err)
            }
        })
    }
}

/// A failed call, and whether it says Redis is unreachable (it counts for the breaker) or only
/// that this command failed (an error reply, a caller's own short deadline).
enum Failure {
    Connection(RedisError),
    Other(RedisError),
}

impl Failure {
    fn into_error(self) -> RedisError {
        match self {
            Self::Connection(err) | Self::Other(err) => err,
        }
    }
}

enum Target {
    Single(Client),
    /// The primary the sentinels name, asked again for each new connection.
    Sentinel(Sentinel),
    /// The client, and its nodes (for a separate pub/sub client).
    Cluster(Box<ClusterClient>, ClusterNodes),
}

struct Manager {
    generation: Arc<AtomicU64>,
    target: Target,
    connection: AsyncConnectionConfig,
    last_error: LastError,
}

/// Where dedicated pub/sub connections go.
#[cfg_attr(not(feature = "broadcast"), allow(dead_code))]
enum PubSubTarget {
    Single(Client),
    Sentinel(Sentinel),
    Cluster(ClusterNodes),
}

/// A pooled connection plus the flag `has_broken` reads; clones share both.
#[derive(Clone)]
pub(crate) struct Connection {
    kind: ConnectionKind,
    broken: Arc<AtomicBool>,
    /// The handle's generation when it was opened.
    generation: u64,
}

#[derive(Clone)]
enum ConnectionKind {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.kind {
            ConnectionKind::Single(c) => c.req_packed_command(cmd),
            ConnectionKind::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.kind {
            ConnectionKind::Single(c) => c.req_packed_commands(pipeline, offset, count),
            ConnectionKind::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.kind {
            ConnectionKind::Single(c) => c.get_db(),
            ConnectionKind::Cluster(c) => c.get_db(),
        }
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Connection;
    type Error = redis::RedisError;

    async fn connect(&self) -> Result<Connection, redis::RedisError> {
        let result = self.open().await;
        *self.last_error.lock().unwrap() = result.as_ref().err().map(|err| match tls_hint(err) {
            Some(hint) => format!("{err} — {hint}"),
            None => err.to_string(),
        });
        result
    }

    async fn is_valid(&self, conn: &mut Connection) -> Result<(), redis::RedisError> {
        redis::cmd("PING")
            .query_async::<String>(conn)
            .await
            .map(drop)
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.broken.load(Ordering::Relaxed)
    }
}

impl Manager {
    async fn open(&self) -> Result<Connection, redis::RedisError> {
        let kind = match &self.target {
            Target::Single(client) => ConnectionKind::Single(
                client
                    .get_multiplexed_async_connection_with_config(&self.connection)
                    .await?,
            ),
            Target::Sentinel(sentinel) => ConnectionKind::Single(
                sentinel
                    .primary()
                    .await?
                    .get_multiplexed_async_connection_with_config(&self.connection)
                    .await?,
            ),
            Target::Cluster(client, _) => {
                ConnectionKind::Cluster(client.get_async_connection().await?)
            }
        };
        Ok(Connection {
            kind,
            broken: Arc::new(AtomicBool::new(false)),
            generation: self.generation.load(Ordering::Relaxed),
        })
    }
}

impl From<RedisError> for crate::Error {
    fn from(err: RedisError) -> Self {
        Self::Redis(Box::new(err))
    }
}

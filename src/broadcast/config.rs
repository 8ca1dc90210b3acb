//! [`BroadcastConfig`]: apps, limits and paths, from code, a file or the environment.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::history::Recoverable;
use crate::env::{Setting, parse};
use crate::error::ConfigError;

/// One Pusher app: the id, key and secret clients and server SDKs use.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AppConfig {
    /// `app_id` of the HTTP API (`PUSHER_APP_ID`).
    pub id: String,
    /// Public key in the WebSocket URL (`PUSHER_APP_KEY`).
    pub key: String,
    /// Secret that signs everything (`PUSHER_APP_SECRET`); never serialized or printed.
    #[serde(skip_serializing)]
    pub secret: String,
    /// Whether clients may send `client-` events (`RUSTFORGE_BROADCAST_CLIENT_EVENTS`, default
    /// `true`, as Laravel Echo's `whisper` expects).
    #[serde(default = "yes")]
    pub client_events: bool,
    /// Master key (base64 of 32 bytes) for `private-encrypted-` channels; without it those
    /// channels cannot be authorised.
    #[serde(default, skip_serializing)]
    pub encryption_master_key: Option<String>,
    /// Where webhooks are POSTed (feature `webhooks`; `RUSTFORGE_BROADCAST_WEBHOOK_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

fn yes() -> bool {
    true
}

impl fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppConfig")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("secret", &"[redacted]")
            .field("client_events", &self.client_events)
            .field("webhook_url", &self.webhook_url)
            .finish_non_exhaustive()
    }
}

impl AppConfig {
    /// An app with client events on.
    pub fn new(id: impl Into<String>, key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
            client_events: true,
            encryption_master_key: None,
            webhook_url: None,
        }
    }

    /// Sends webhooks to `url` (feature `webhooks`).
    pub fn webhook_url(mut self, url: impl Into<String>) -> Self {
        self.webhook_url = Some(url.into());
        self
    }

    /// Turns client events off.
    pub fn without_client_events(mut self) -> Self {
        self.client_events = false;
        self
    }

    /// Sets the encrypted-channel master key (base64 of 32 bytes).
    pub fn encryption_master_key(mut self, base64: impl Into<String>) -> Self {
        self.encryption_master_key = Some(base64.into());
        self
    }

    pub(crate) fn master_key(&self) -> Option<Vec<u8>> {
        use base64::Engine;
        let key = self.encryption_master_key.as_deref()?;
        base64::engine::general_purpose::STANDARD.decode(key).ok()
    }
}

/// Broadcasting settings. With no app, broadcasting is off.
///
/// ```
/// use rustforge_prod::Config;
///
/// let config = Config::from_vars([
///     ("PUSHER_APP_ID", "1"),
///     ("PUSHER_APP_KEY", "app-key"),
///     ("PUSHER_APP_SECRET", "app-secret"),
///     ("RUSTFORGE_BROADCAST_CLIENT_EVENTS", "false"),
/// ])?;
/// let app = &config.broadcast.apps[0];
/// assert_eq!(app.key, "app-key");
/// assert!(!app.client_events);
/// # Ok::<(), rustforge_prod::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BroadcastConfig {
    /// The apps; the first is the default of the Rust API and the auth endpoints.
    pub apps: Vec<AppConfig>,
    /// Where channels and presence live (`RUSTFORGE_BROADCAST_STORE`): `None` picks Redis when
    /// `REDIS_URL` is set, else memory (one server).
    pub store: Option<BroadcastStore>,
    /// With Redis: a server that has not heartbeated for this long is considered dead and its
    /// presence members are removed by the others (`RUSTFORGE_BROADCAST_NODE_TIMEOUT`, default
    /// 25 s). Servers heartbeat every `node_timeout / 6` and reap when they heartbeat, so after a
    /// crash `member_removed` reaches the other servers' clients within `7/6 × node_timeout`
    /// plus one Redis round trip: 29.2 s by default, inside the 30 s the docs promise.
    #[serde(with = "humantime_serde")]
    pub node_timeout: Duration,
    /// With Redis: events for the other servers held while Redis cannot take them (an outage, a
    /// failover), at most this many (`RUSTFORGE_BROADCAST_HOLD_EVENTS`, default 10,000); they
    /// are published in order once it is back. Past any of the three bounds the oldest are
    /// dropped and counted as lost.
    pub hold_events: usize,
    /// … and at most this many bytes of them (`RUSTFORGE_BROADCAST_HOLD_BYTES`, default 16 MiB).
    pub hold_bytes: usize,
    /// … and none older than this (`RUSTFORGE_BROADCAST_HOLD_AGE`, default 30 s): an event
    /// that late is news no more.
    #[serde(with = "humantime_serde")]
    pub hold_age: Duration,
    /// Which channels' events get positions and are kept for connection recovery
    /// (`RUSTFORGE_BROADCAST_RECOVERY`, default every private, presence and server-to-user
    /// channel). A client that asks (`js/pusher-recovery`) gets each event's position and,
    /// after a reconnect, every event it missed; see docs/broadcasting.md.
    pub recovery: Recoverable,
    /// Events kept per recoverable channel (`RUSTFORGE_BROADCAST_HISTORY_EVENTS`, default 100).
    pub history_events: usize,
    /// How long an event is kept (`RUSTFORGE_BROADCAST_HISTORY_AGE`, default 2 min).
    #[serde(with = "humantime_serde")]
    pub history_age: Duration,
    /// Bytes of all channels' kept events together, on one server (memory bus;
    /// `RUSTFORGE_BROADCAST_HISTORY_BYTES`, default 64 MiB): past it the oldest go first.
    pub history_bytes: usize,
    /// Seconds of silence after which clients ping (`activity_timeout` of the handshake).
    #[serde(with = "humantime_serde")]
    pub activity_timeout: Duration,
    /// Time a client has to answer the server's ping before it is closed with 4201.
    #[serde(with = "humantime_serde")]
    pub pong_timeout: Duration,
    /// Largest frame a client may send, in bytes (larger: `pusher:error`, frame dropped).
    pub max_message_size: usize,
    /// Largest event `data` accepted by the HTTP API and the Rust API, in bytes.
    pub max_event_size: usize,
    /// Frames queued per connection; a client that falls this far behind is closed with 4100.
    pub send_queue: usize,
    /// Client events per second per connection (4301 above it).
    pub client_event_rate: u32,
    /// Subscribes one connection may send per second, in bursts of as many (default 50): past it
    /// `pusher:subscription_error` 429.
    pub subscribe_rate: u32,
    /// Connections per app (4100 above it; `0`: no limit).
    pub max_connections: usize,
    /// Connections per client IP (4100 above it; `0`: no limit). The client IP is found like the
    /// rate limiter's: the peer, or the forwarding header of a trusted proxy
    /// (`RUSTFORGE_TRUSTED_PROXIES`).
    pub max_connections_per_ip: usize,
    /// Channels one connection may be subscribed to at once (default 100): past it a subscribe
    /// gets `pusher:subscription_error` (status 429), so one client cannot hold thousands of
    /// channels (and, with Redis, thousands of subscriptions) on a server.
    pub max_channels_per_connection: usize,
    /// Members per presence channel.
    pub max_presence_members: usize,
    /// Largest presence `user_info`, in bytes.
    pub max_user_info_size: usize,
    /// Accepted clock difference of HTTP API `auth_timestamp`s (`None`: not checked).
    #[serde(with = "humantime_serde")]
    pub timestamp_window: Option<Duration>,
    /// Path of the channel auth endpoint (Laravel Echo's default).
    pub auth_path: String,
    /// Path of the user auth endpoint (Laravel Echo's default).
    pub user_auth_path: String,
}

/// Where broadcasting state lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BroadcastStore {
    /// This process only.
    #[default]
    Memory,
    /// Redis or Redis Cluster (sharded pub/sub), shared by every app server.
    Redis,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        Self {
            apps: Vec::new(),
            store: None,
            node_timeout: Duration::from_secs(25),
            hold_events: 10_000,
            hold_bytes: 16 * 1024 * 1024,
            hold_age: Duration::from_secs(30),
            recovery: Recoverable::Private,
            history_events: 100,
            history_age: Duration::from_secs(120),
            history_bytes: 64 * 1024 * 1024,
            activity_timeout: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(30),
            max_message_size: 10 * 1024,
            max_event_size: 10 * 1024,
            send_queue: 256,
            client_event_rate: 10,
            subscribe_rate: 50,
            max_connections: 0,
            max_connections_per_ip: 0,
            max_channels_per_connection: 100,
            max_presence_members: 100,
            max_user_info_size: 2 * 1024,
            timestamp_window: Some(Duration::from_secs(600)),
            auth_path: "/broadcasting/auth".into(),
            user_auth_path: "/broadcasting/user-auth".into(),
        }
    }
}

impl BroadcastConfig {
    /// Adds an app.
    pub fn app(mut self, app: AppConfig) -> Self {
        self.apps.push(app);
        self
    }

    /// Whether broadcasting is on (an app is configured).
    pub fn enabled(&self) -> bool {
        !self.apps.is_empty()
    }

    /// Checks the apps (unique, non-empty ids, keys and secrets) and the limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, app) in self.apps.iter().enumerate() {
            for (setting, value) in [
                ("broadcast.apps.id", &app.id),
                ("broadcast.apps.key", &app.key),
                ("broadcast.apps.secret", &app.secret),
            ] {
                if value.trim().is_empty() {
                    return Err(ConfigError::new(setting, "", "must not be empty"));
                }
            }
            if !app
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                || !app
                    .key
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
            {
                return Err(ConfigError::new(
                    "broadcast.apps.key",
                    &app.key,
                    "ids are letters, digits, '-' or '_'; keys are printable, without '/' or ':'",
                ));
            }
            if self.apps[..i]
                .iter()
                .any(|a| a.id == app.id || a.key == app.key)
            {
                return Err(ConfigError::new(
                    "broadcast.apps.id",
                    &app.id,
                    "two apps share an id or a key",
                ));
            }
            if let Some(url) = &app.webhook_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::new(
                        "broadcast.apps.webhook_url",
                        url,
                        "expected an http(s) URL",
                    ));
                }
                if !cfg!(feature = "webhooks") {
                    return Err(ConfigError::new(
                        "broadcast.apps.webhook_url",
                        url,
                        "webhooks need the `webhooks` feature of rustforge-prod",
                    ));
                }
            }
            if app.encryption_master_key.is_some() && app.master_key().is_none_or(|k| k.len() != 32)
            {
                return Err(ConfigError::new(
                    "broadcast.apps.encryption_master_key",
                    "[redacted]",
                    "expected base64 of exactly 32 bytes",
                ));
            }
        }
        if self.node_timeout < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "broadcast.node_timeout",
                humantime::format_duration(self.node_timeout).to_string(),
                "must be at least 1s",
            ));
        }
        if self.recovery != Recoverable::Off && self.history_age.is_zero() {
            return Err(ConfigError::new(
                "broadcast.history_age",
                "0s",
                "must be greater than zero (or turn recovery off)",
            ));
        }
        if self.hold_age.is_zero() {
            return Err(ConfigError::new(
                "broadcast.hold_age",
                "0s",
                "must be greater than zero",
            ));
        }
        let positive = [
            ("broadcast.hold_events", self.hold_events),
            ("broadcast.hold_bytes", self.hold_bytes),
            ("broadcast.history_events", self.history_events),
            ("broadcast.history_bytes", self.history_bytes),
            ("broadcast.max_message_size", self.max_message_size),
            ("broadcast.max_event_size", self.max_event_size),
            ("broadcast.send_queue", self.send_queue),
            (
                "broadcast.client_event_rate",
                self.client_event_rate as usize,
            ),
            ("broadcast.subscribe_rate", self.subscribe_rate as usize),
            ("broadcast.max_presence_members", self.max_presence_members),
            (
                "broadcast.max_channels_per_connection",
                self.max_channels_per_connection,
            ),
            ("broadcast.max_user_info_size", self.max_user_info_size),
        ];
        for (setting, value) in positive {
            if value == 0 {
                return Err(ConfigError::new(setting, "0", "must be greater than zero"));
            }
        }
        if self.activity_timeout < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "broadcast.activity_timeout",
                humantime::format_duration(self.activity_timeout).to_string(),
                "must be at least 1s (the handshake counts whole seconds)",
            ));
        }
        for (setting, path) in [
            ("broadcast.auth_path", &self.auth_path),
            ("broadcast.user_auth_path", &self.user_auth_path),
        ] {
            if !path.starts_with('/') || path.contains(['{', '}', '*']) {
                return Err(ConfigError::new(
                    setting,
                    path,
                    "expected a path like /broadcasting/auth",
                ));
            }
        }
        Ok(())
    }

    /// The environment variables of broadcasting. The `PUSHER_*` variables (Laravel's `.env`
    /// names) describe one app, completed as they arrive.
    pub(crate) const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "PUSHER_APP_ID",
            "broadcast.apps.id",
            "unset",
            "id of the one broadcasting app; broadcasting is on when the three are set",
            |c, _, v| {
                c.env_app().id = v.trim().to_owned();
                Ok(())
            },
        ),
        Setting::new(
            "PUSHER_APP_KEY",
            "broadcast.apps.key",
            "unset",
            "its key (what pusher-js / Echo connect with)",
            |c, _, v| {
                c.env_app().key = v.trim().to_owned();
                Ok(())
            },
        ),
        Setting::new(
            "PUSHER_APP_SECRET",
            "broadcast.apps.secret",
            "unset",
            "its secret (signs the HTTP API and channel authorization)",
            |c, _, v| {
                c.env_app().secret = v.trim().to_owned();
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_CLIENT_EVENTS",
            "broadcast.apps.client_events",
            "`true`",
            "allow `client-` events (Echo's `whisper`)",
            |c, var, v| {
                c.env_app().client_events = parse::bool(var, v.trim())?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_STORE",
            "broadcast.store",
            "`redis` when `REDIS_URL` is set, else `memory`",
            "`memory` (one server) or `redis` (many servers; Redis or Redis Cluster)",
            |c, var, v| {
                c.store = match v.trim().to_ascii_lowercase().as_str() {
                    "memory" => Some(BroadcastStore::Memory),
                    "redis" => Some(BroadcastStore::Redis),
                    _ => return Err(ConfigError::new(var, v.trim(), "expected memory or redis")),
                };
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_MAX_CONNECTIONS",
            "broadcast.max_connections",
            "`0` (no limit)",
            "WebSocket connections per app on one server",
            |c, var, v| {
                c.max_connections = parse::from_str(var, v.trim())?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_MAX_CONNECTIONS_PER_IP",
            "broadcast.max_connections_per_ip",
            "`0` (no limit)",
            "WebSocket connections per client IP on one server (the client behind `RUSTFORGE_TRUSTED_PROXIES`, IPv6 per `RUSTFORGE_RATE_LIMIT_IPV6_PREFIX` network, as for rate limits)",
            |c, var, v| {
                c.max_connections_per_ip = parse::from_str(var, v.trim())?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_MAX_CHANNELS_PER_CONNECTION",
            "broadcast.max_channels_per_connection",
            "`100`",
            "channels one WebSocket connection may subscribe to at once",
            |c, var, v| {
                c.max_channels_per_connection = parse::from_str(var, v.trim())?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_SEND_QUEUE",
            "broadcast.send_queue",
            "`256`",
            "frames queued for one connection before it is closed as too slow (4100)",
            |c, var, v| {
                c.send_queue = parse::from_str(var, v.trim())?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_SUBSCRIBE_RATE",
            "broadcast.subscribe_rate",
            "`50`",
            "subscribes one WebSocket connection may send per second (bursts of as many)",
            |c, var, v| {
                c.subscribe_rate = parse::from_str(var, v.trim())?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_WEBHOOK_URL",
            "broadcast.apps.webhook_url",
            "unset",
            "where Pusher webhooks go (feature `webhooks`)",
            |c, _, v| {
                c.env_app().webhook_url = Some(v.trim().to_owned());
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_NODE_TIMEOUT",
            "broadcast.node_timeout",
            "`25s`",
            "with Redis: a server silent this long is dead; its members are removed within 7/6 of it (29.2 s by default)",
            |c, var, v| {
                c.node_timeout = parse::duration(var, v.trim())?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_HOLD_EVENTS",
            "broadcast.hold_events",
            "`10000`",
            "with Redis: events for the other servers held while Redis is unreachable, published in order when it is back (past it the oldest are lost)",
            |c, var, v| {
                c.hold_events = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_HOLD_BYTES",
            "broadcast.hold_bytes",
            "`16MiB`",
            "with Redis: bytes of held events at most",
            |c, var, v| {
                c.hold_bytes = usize::try_from(parse::size(var, v)?).unwrap_or(usize::MAX);
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_HOLD_AGE",
            "broadcast.hold_age",
            "`30s`",
            "with Redis: a held event older than this is dropped (counted as lost)",
            |c, var, v| {
                c.hold_age = parse::duration(var, v.trim())?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_RECOVERY",
            "broadcast.recovery",
            "`private`",
            "channels whose events get positions and are kept for connection recovery: `private` (private, presence and server-to-user channels), `all`, or `off`",
            |c, var, v| {
                c.recovery = match v.trim().to_ascii_lowercase().as_str() {
                    "off" => Recoverable::Off,
                    "private" => Recoverable::Private,
                    "all" => Recoverable::All,
                    _ => {
                        return Err(ConfigError::new(
                            var,
                            v.trim(),
                            "expected private, all or off",
                        ));
                    }
                };
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_HISTORY_EVENTS",
            "broadcast.history_events",
            "`100`",
            "events kept per recoverable channel for clients that reconnect",
            |c, var, v| {
                c.history_events = parse::from_str(var, v.trim())?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_HISTORY_AGE",
            "broadcast.history_age",
            "`2m`",
            "how long a recoverable channel's event is kept",
            |c, var, v| {
                c.history_age = parse::duration(var, v.trim())?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BROADCAST_HISTORY_BYTES",
            "broadcast.history_bytes",
            "`64MiB`",
            "bytes of kept events of all channels on one server (memory bus); past it the oldest go first",
            |c, var, v| {
                c.history_bytes = usize::try_from(parse::size(var, v)?).unwrap_or(usize::MAX);
                Ok(())
            },
        ),
    ];

    /// The app the `PUSHER_*` variables describe: the first, made when the first one arrives.
    fn env_app(&mut self) -> &mut AppConfig {
        if self.apps.is_empty() {
            self.apps.push(AppConfig::new("", "", ""));
        }
        &mut self.apps[0]
    }
}

/// Whether broadcasting runs on Redis: explicitly, or by default when Redis is configured.
#[cfg(feature = "redis")]
pub(crate) fn uses_redis(config: &BroadcastConfig, redis_configured: bool) -> bool {
    match config.store {
        Some(BroadcastStore::Redis) => true,
        Some(BroadcastStore::Memory) => false,
        None => redis_configured,
    }
}

/// Checks the store against the Redis settings: Redis needs `REDIS_URL` (and the `redis`
/// feature).
pub(crate) fn check_store(
    config: &BroadcastConfig,
    redis_configured: bool,
) -> Result<(), ConfigError> {
    if !config.enabled() {
        return Ok(());
    }
    #[cfg(feature = "redis")]
    if uses_redis(config, redis_configured) && !redis_configured {
        return Err(ConfigError::new(
            "broadcast.store",
            "redis",
            "broadcasting on Redis needs REDIS_URL",
        ));
    }
    #[cfg(not(feature = "redis"))]
    if config.store == Some(BroadcastStore::Redis) {
        let _ = redis_configured;
        return Err(ConfigError::new(
            "broadcast.store",
            "redis",
            "broadcasting on Redis needs the `redis` feature of rustforge-prod",
        ));
    }
    Ok(())
}

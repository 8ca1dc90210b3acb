//! [`SessionConfig`]: the store, the cookie and the lifetimes, from code or the environment.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::backend::StoreKind;
use crate::env::{Setting, parse};
use crate::error::ConfigError;

/// The cookie's `SameSite` attribute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SameSite {
    /// Sent on top-level navigations from other sites, not on their sub-requests (default).
    #[default]
    Lax,
    /// Never sent from another site.
    Strict,
    /// Always sent (needs `Secure`): for embedding in other sites.
    None,
}

impl std::str::FromStr for SameSite {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "lax" => Ok(Self::Lax),
            "strict" => Ok(Self::Strict),
            "none" => Ok(Self::None),
            _ => Err("expected lax, strict or none".into()),
        }
    }
}

/// Session settings. Sessions cost nothing until a handler behind
/// [`ProductionLayer::session_layer`](crate::ProductionLayer::session_layer) touches one.
///
/// ```
/// use std::time::Duration;
/// use rustforge_prod::Config;
///
/// let config = Config::from_vars([
///     ("RUSTFORGE_SESSION_TTL", "30m"),
///     ("RUSTFORGE_SESSION_SECRET", "0123456789abcdef0123456789abcdef-at-least-32-bytes"),
/// ])?;
/// assert_eq!(config.session.ttl, Duration::from_secs(1800));
/// assert_eq!(config.session.cookie_name(), "__Host-session");
/// # Ok::<(), rustforge_prod::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Where sessions live; default: Redis when Redis is configured, else memory.
    pub store: Option<StoreKind>,
    /// The cookie's name; default `__Host-session` when `secure` (the browser then refuses it
    /// unless it is Secure, host-only and for `/`), `session` otherwise.
    pub cookie: Option<String>,
    /// A session ends after this long without a request that loads it, reads included
    /// (default 2 hours; at most a tenth of it, and at most a minute, later: an unchanged
    /// session's expiry is extended once per that slack, not on every request).
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// A session ends this long after it started, however active (default 24 hours; `None`:
    /// only inactivity ends it).
    #[serde(with = "humantime_serde")]
    pub absolute_ttl: Option<Duration>,
    /// Encrypts and authenticates the cookie (at least 32 bytes, the same on every server).
    /// Unset: the cookie holds the bare session id, 128 random bits.
    pub secret: Option<String>,
    /// Send the cookie over HTTPS only (default `true`; `false` for plain-HTTP development on
    /// a host other than `localhost`).
    pub secure: bool,
    /// The cookie's `SameSite` (default `lax`).
    pub same_site: SameSite,
    /// The largest session, encoded (default 64 KiB): a save above it fails the request.
    pub max_size: u64,
    /// Sessions the memory store holds at most (default 100,000).
    pub max_sessions: u64,
    /// Bytes of sessions the memory store holds at most, plus 96 per session (default
    /// 256 MiB).
    pub max_bytes: u64,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("store", &self.store)
            .field("cookie", &self.cookie)
            .field("ttl", &self.ttl)
            .field("absolute_ttl", &self.absolute_ttl)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secure", &self.secure)
            .field("same_site", &self.same_site)
            .field("max_size", &self.max_size)
            .field("max_sessions", &self.max_sessions)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            store: None,
            cookie: None,
            ttl: Duration::from_secs(2 * 3600),
            absolute_ttl: Some(Duration::from_secs(24 * 3600)),
            secret: None,
            secure: true,
            same_site: SameSite::Lax,
            max_size: 64 * 1024,
            max_sessions: 100_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The shortest secret: 256 bits.
const MIN_SECRET: usize = 32;

impl SessionConfig {
    /// The cookie's name: [`cookie`](Self::cookie), or the default for [`secure`](Self::secure).
    pub fn cookie_name(&self) -> &str {
        match (&self.cookie, self.secure) {
            (Some(name), _) => name,
            (None, true) => "__Host-session",
            (None, false) => "session",
        }
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name = self.cookie_name();
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(ConfigError::new(
                "session.cookie",
                name,
                "expected a cookie name: letters, digits and !#$%&'*+-.^_`|~",
            ));
        }
        if name.starts_with("__Host-") && !self.secure {
            return Err(ConfigError::new(
                "session.cookie",
                name,
                "a __Host- cookie must be secure: unset the name or keep RUSTFORGE_SESSION_SECURE on",
            ));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(ConfigError::new(
                "session.same_site",
                "none",
                "browsers drop SameSite=None cookies that are not secure",
            ));
        }
        if let Some(secret) = &self.secret
            && secret.len() < MIN_SECRET
        {
            return Err(ConfigError::new(
                "session.secret",
                "<redacted>",
                format!("must be at least {MIN_SECRET} bytes (e.g. `openssl rand -base64 48`)"),
            ));
        }
        for (setting, value) in [
            ("session.ttl", Some(self.ttl)),
            ("session.absolute_ttl", self.absolute_ttl),
        ] {
            if value.is_some_and(|d| d.as_secs() == 0) {
                return Err(ConfigError::new(
                    setting,
                    "0s",
                    "must be at least one second",
                ));
            }
        }
        for (setting, value) in [
            ("session.max_size", self.max_size),
            ("session.max_sessions", self.max_sessions),
            ("session.max_bytes", self.max_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::new(setting, "0", "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The environment variables of sessions.
    pub(crate) const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "RUSTFORGE_SESSION_STORE",
            "session.store",
            "`redis` when `REDIS_URL` is set, else `memory`",
            "where sessions live: `memory` or `redis`",
            |c, var, v| {
                c.store = Some(parse::from_str(var, v)?);
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_SESSION_COOKIE",
            "session.cookie",
            "`__Host-session` (`session` when not secure)",
            "the session cookie's name",
            |c, _, v| {
                c.cookie = Some(v.trim().to_owned());
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_SESSION_TTL",
            "session.ttl",
            "`2h`",
            "a session ends after this long without a request",
            |c, var, v| {
                c.ttl = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_SESSION_ABSOLUTE_TTL",
            "session.absolute_ttl",
            "`24h`",
            "a session ends this long after it started, however active; `off`: never",
            |c, var, v| {
                c.absolute_ttl = parse::optional_duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_SESSION_SECRET",
            "session.secret",
            "unset (the cookie holds the bare random id)",
            "encrypts and authenticates the session cookie; ≥ 32 bytes, the same on every server",
            |c, _, v| {
                c.secret = Some(v.trim().to_owned());
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_SESSION_SECURE",
            "session.secure",
            "`true`",
            "send the session cookie over HTTPS only (`false` for plain-HTTP development)",
            |c, var, v| {
                c.secure = parse::bool(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_SESSION_SAME_SITE",
            "session.same_site",
            "`lax`",
            "the session cookie's `SameSite`: `lax`, `strict` or `none`",
            |c, var, v| {
                c.same_site = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_SESSION_MAX_SIZE",
            "session.max_size",
            "`64KiB`",
            "the largest session, encoded; a bigger save fails the request",
            |c, var, v| {
                c.max_size = parse::size(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_SESSION_MAX_SESSIONS",
            "session.max_sessions",
            "`100000`",
            "sessions the in-process store holds at most",
            |c, var, v| {
                c.max_sessions = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_SESSION_MAX_BYTES",
            "session.max_bytes",
            "`256MiB`",
            "bytes of sessions the in-process store holds at most (plus 96 per session)",
            |c, var, v| {
                c.max_bytes = parse::size(var, v)?;
                Ok(())
            },
        ),
    ];
}

//! [`DatabaseConfig`]: the pool's settings, each with the reason for its default.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;

use crate::env::{Setting, parse};
use crate::error::ConfigError;
use crate::util::redact_url;

/// PostgreSQL pool settings. The database is on when `url` is set (`DATABASE_URL`).
///
/// | setting | default | why |
/// |---|---|---|
/// | `max_connections` | 10 | servers × this must stay below PostgreSQL's `max_connections` (100 by default) minus its reserved slots: ten servers fit |
/// | `min_connections` | 1 | one warm connection: the first request after a quiet spell does not pay a TCP + TLS + auth handshake |
/// | `acquire_timeout` | 3 s | well under the request timeout (30 s): an exhausted pool answers an error quickly instead of holding the request |
/// | `idle_timeout` | 10 min | gives connections back to PostgreSQL after a peak |
/// | `max_lifetime` | 30 min | recycles connections (server-side memory, a failed-over primary's new address) |
/// | `lifetime_jitter` | 10 % | connections opened together (at start, after a restart) retire spread over the last tenth of their lifetime instead of all at once |
/// | `statement_timeout` | 30 s | PostgreSQL cancels a runaway query itself, releasing its locks, when the client has long given up |
/// | `application_name` | the program's name | shows who holds each connection in `pg_stat_activity` |
///
/// ```
/// use std::time::Duration;
/// use rustforge_prod::Config;
///
/// let config = Config::from_vars([
///     ("DATABASE_URL", "postgres://app:secret@db.internal:5432/app"),
///     ("RUSTFORGE_DB_MAX_CONNECTIONS", "20"),
///     ("RUSTFORGE_DB_STATEMENT_TIMEOUT", "5s"),
/// ])?;
/// let db = config.database.unwrap();
/// assert_eq!(db.max_connections, 20);
/// assert_eq!(db.statement_timeout, Some(Duration::from_secs(5)));
/// assert!(!format!("{db:?}").contains("secret"));
/// # Ok::<(), rustforge_prod::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/database?sslmode=…` (`DATABASE_URL`).
    pub url: String,
    /// The most connections this server opens (default 10).
    pub max_connections: u32,
    /// Connections kept open even when idle (default 1).
    pub min_connections: u32,
    /// How long a query waits for a free connection before failing (default 3 s).
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// An idle connection above `min_connections` is closed after this (default 10 min).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// A connection is closed after this long, however busy (default 30 min).
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
    /// The share of `max_lifetime` over which retirements are spread, in percent (default 10).
    pub lifetime_jitter: u8,
    /// PostgreSQL's `statement_timeout` for every connection (default 30 s; `None`: the
    /// server's own setting).
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Option<Duration>,
    /// `application_name` of every connection (default: the program's file name).
    pub application_name: Option<String>,
    /// A failing pool fails readiness (default `true`: a server without its database cannot
    /// serve); `false` only reports it in `/health`.
    pub readiness: bool,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("lifetime_jitter", &self.lifetime_jitter)
            .field("statement_timeout", &self.statement_timeout)
            .field("application_name", &self.application_name)
            .field("readiness", &self.readiness)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 10,
            min_connections: 1,
            acquire_timeout: Duration::from_secs(3),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            lifetime_jitter: 10,
            statement_timeout: Some(Duration::from_secs(30)),
            application_name: None,
            readiness: true,
        }
    }
}

impl DatabaseConfig {
    /// Settings for the database at `url`, the rest at their defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Checks every setting (the URL is parsed; nothing connects).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.connect_options()?;
        if self.max_connections == 0 {
            return Err(ConfigError::new(
                "database.max_connections",
                "0",
                "must be at least 1",
            ));
        }
        if self.min_connections > self.max_connections {
            return Err(ConfigError::new(
                "database.min_connections",
                self.min_connections.to_string(),
                format!("must not exceed max_connections ({})", self.max_connections),
            ));
        }
        if self.lifetime_jitter > 50 {
            return Err(ConfigError::new(
                "database.lifetime_jitter",
                self.lifetime_jitter.to_string(),
                "a percentage from 0 to 50",
            ));
        }
        if self.acquire_timeout.is_zero() {
            return Err(ConfigError::new(
                "database.acquire_timeout",
                "0s",
                "must be greater than zero",
            ));
        }
        Ok(())
    }

    /// The connection options: the URL, `application_name` and `statement_timeout`.
    pub(crate) fn connect_options(&self) -> Result<PgConnectOptions, ConfigError> {
        let bad = |why: String| {
            ConfigError::new(
                "database.url",
                redact_url(&self.url),
                format!("expected postgres://user:password@host:port/database{why}"),
            )
        };
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(bad(String::new()));
        }
        let options = PgConnectOptions::from_str(&self.url).map_err(|e| bad(format!(" ({e})")))?;
        let name = self.application_name.clone().unwrap_or_else(program_name);
        let options = options.application_name(&name);
        Ok(match self.statement_timeout {
            // A startup parameter: no extra round trip per connection.
            Some(timeout) => {
                options.options([("statement_timeout", timeout.as_millis().to_string())])
            }
            None => options,
        })
    }

    /// The environment variables of the database pool.
    pub(crate) const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "DATABASE_URL",
            "database.url",
            "unset (no database)",
            "PostgreSQL URL; turns the pool, its readiness check and its metrics on",
            |c, _, v| {
                c.url = v.trim().to_owned();
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_DB_MAX_CONNECTIONS",
            "database.max_connections",
            "`10`",
            "most connections this server opens (servers × this < PostgreSQL's `max_connections`)",
            |c, var, v| {
                c.max_connections = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_DB_MIN_CONNECTIONS",
            "database.min_connections",
            "`1`",
            "connections kept open even when idle",
            |c, var, v| {
                c.min_connections = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_DB_ACQUIRE_TIMEOUT",
            "database.acquire_timeout",
            "`3s`",
            "how long a query waits for a free connection",
            |c, var, v| {
                c.acquire_timeout = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_DB_IDLE_TIMEOUT",
            "database.idle_timeout",
            "`10m`",
            "idle connections above the minimum close after this; `off`: never",
            |c, var, v| {
                c.idle_timeout = parse::optional_duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_DB_MAX_LIFETIME",
            "database.max_lifetime",
            "`30m`",
            "connections close after this long; `off`: never",
            |c, var, v| {
                c.max_lifetime = parse::optional_duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_DB_LIFETIME_JITTER",
            "database.lifetime_jitter",
            "`10`",
            "percent of the lifetime over which retirements are spread (0–50)",
            |c, var, v| {
                c.lifetime_jitter = parse::from_str(var, v.trim().trim_end_matches('%'))?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_DB_STATEMENT_TIMEOUT",
            "database.statement_timeout",
            "`30s`",
            "PostgreSQL cancels statements running longer; `off`: the server's setting",
            |c, var, v| {
                c.statement_timeout = parse::optional_duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_DB_APPLICATION_NAME",
            "database.application_name",
            "the program's name",
            "`application_name` in `pg_stat_activity`",
            |c, _, v| {
                c.application_name = Some(v.trim().to_owned());
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_DB_READINESS",
            "database.readiness",
            "`true`",
            "a failing database fails readiness; `false`: only reported in `/health`",
            |c, var, v| {
                c.readiness = parse::bool(var, v)?;
                Ok(())
            },
        ),
    ];
}

/// The running program's file name, for `application_name`.
fn program_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "rustforge-prod".to_owned())
}

//! [`HealthConfig`] and its environment variables.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::env::{Setting, parse};
use crate::error::ConfigError;

/// Health settings.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HealthConfig {
    /// Serve the health routes (default `true`).
    pub enabled: bool,
    /// Liveness path (default `/health/live`).
    pub live_path: String,
    /// Readiness path (default `/health/ready`).
    pub ready_path: String,
    /// Detailed report path (default `/health`).
    pub path: String,
    /// Bearer token that shows details.
    pub token: Option<String>,
    /// Show details to everyone (default `false`).
    pub public_details: bool,
    /// Timeout of each check (default 1 s).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a report is reused (default 1 s).
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Refresh the report on this interval in the background (default off).
    #[serde(with = "humantime_serde")]
    pub background_refresh: Option<Duration>,
    /// Status of a degraded service (default 200).
    pub degraded_status: u16,
    /// Not ready until [`Health::startup_complete`](super::Health::startup_complete) is called (default `false`: ready at once).
    pub wait_for_startup: bool,
    /// `version` in the report.
    pub version: Option<String>,
    /// `serviceId` in the report.
    pub service_id: Option<String>,
    /// Check the disk holding this path.
    pub disk_path: Option<PathBuf>,
    /// Disk degraded above this percent used (default 70).
    pub disk_warn_percent: f64,
    /// Disk unhealthy above this percent used (default 90).
    pub disk_fail_percent: f64,
    /// Register the memory check (default `true`).
    pub memory: bool,
    /// Memory degraded above this percent used (default 90).
    pub memory_warn_percent: f64,
    /// Memory unhealthy above this percent used (default 97).
    pub memory_fail_percent: f64,
    /// Whether a failing Redis takes this server out of readiness (and fails `/health`).
    /// `None` (the default) decides by what the server needs: only when it cannot serve without
    /// Redis (a rate limiter that fails closed); otherwise Redis is shared by every server, and
    /// failing them all at once would turn a degradation into an outage — it is then reported in
    /// `/health` as a non-critical check.
    pub redis_readiness: Option<bool>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            live_path: "/health/live".into(),
            ready_path: "/health/ready".into(),
            path: "/health".into(),
            token: None,
            public_details: false,
            timeout: Duration::from_secs(1),
            cache_ttl: Duration::from_secs(1),
            background_refresh: None,
            degraded_status: 200,
            wait_for_startup: false,
            version: None,
            service_id: None,
            disk_path: None,
            disk_warn_percent: 70.0,
            disk_fail_percent: 90.0,
            memory: true,
            memory_warn_percent: 90.0,
            memory_fail_percent: 97.0,
            redis_readiness: None,
        }
    }
}

impl std::fmt::Debug for HealthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthConfig")
            .field("paths", &[&self.live_path, &self.ready_path, &self.path])
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("cache_ttl", &self.cache_ttl)
            .field("disk_path", &self.disk_path)
            .finish_non_exhaustive()
    }
}

impl HealthConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, path) in [
            ("health.live_path", &self.live_path),
            ("health.ready_path", &self.ready_path),
            ("health.path", &self.path),
        ] {
            if !path.starts_with('/') || path.contains(['{', '}', '*']) {
                return Err(ConfigError::new(
                    key,
                    path,
                    "a fixed path starting with `/`",
                ));
            }
        }
        crate::util::check_bearer_token("health.token", self.token.as_deref())?;
        for (key, d) in [("health.timeout", self.timeout)] {
            if d.is_zero() {
                return Err(ConfigError::new(key, "0s", "must be greater than zero"));
            }
        }
        if !(200..=599).contains(&self.degraded_status) {
            return Err(ConfigError::new(
                "health.degraded_status",
                self.degraded_status.to_string(),
                "expected an HTTP status code",
            ));
        }
        for (warn_key, warn, fail_key, fail) in [
            (
                "health.disk_warn_percent",
                self.disk_warn_percent,
                "health.disk_fail_percent",
                self.disk_fail_percent,
            ),
            (
                "health.memory_warn_percent",
                self.memory_warn_percent,
                "health.memory_fail_percent",
                self.memory_fail_percent,
            ),
        ] {
            for (key, value) in [(warn_key, warn), (fail_key, fail)] {
                if !(0.0..=100.0).contains(&value) {
                    return Err(ConfigError::new(
                        key,
                        value.to_string(),
                        "a percentage from 0 to 100",
                    ));
                }
            }
            if warn > fail {
                return Err(ConfigError::new(
                    fail_key,
                    fail.to_string(),
                    format!("must not be below {warn_key} ({warn})"),
                ));
            }
        }
        Ok(())
    }
    /// The environment variables of the health module.
    pub(crate) const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "RUSTFORGE_HEALTH_TOKEN",
            "health.token",
            "unset (details hidden)",
            "bearer token that shows health details",
            |c, _, v| {
                c.token = Some(v.to_owned());
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_HEALTH_TIMEOUT",
            "health.timeout",
            "`1s`",
            "timeout of each health check",
            |c, var, v| {
                c.timeout = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_HEALTH_CACHE_TTL",
            "health.cache_ttl",
            "`1s`",
            "how long a health report is reused",
            |c, var, v| {
                c.cache_ttl = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_HEALTH_PUBLIC_DETAILS",
            "health.public_details",
            "`false`",
            "show health details to everyone",
            |c, var, v| {
                c.public_details = parse::bool(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_HEALTH_DISK_PATH",
            "health.disk_path",
            "unset",
            "check the free space of the disk holding this path",
            |c, _, v| {
                c.disk_path = Some(PathBuf::from(v));
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_HEALTH_DISK_WARN",
            "health.disk_warn_percent",
            "`70`",
            "disk used-% that makes the disk check warn",
            |c, var, v| {
                c.disk_warn_percent = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_HEALTH_DISK_FAIL",
            "health.disk_fail_percent",
            "`90`",
            "disk used-% that makes the disk check fail",
            |c, var, v| {
                c.disk_fail_percent = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_HEALTH_MEMORY_WARN",
            "health.memory_warn_percent",
            "`90`",
            "memory used-% that makes the memory check warn",
            |c, var, v| {
                c.memory_warn_percent = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_HEALTH_MEMORY_FAIL",
            "health.memory_fail_percent",
            "`97`",
            "memory used-% that makes the memory check fail",
            |c, var, v| {
                c.memory_fail_percent = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_HEALTH_REDIS_READINESS",
            "health.redis_readiness",
            "only when the server cannot serve without Redis (rate limiter `fail-closed`)",
            "`true`: a Redis outage takes the server out of the load balancer; `false`: never",
            |c, var, v| {
                c.redis_readiness = Some(parse::bool(var, v)?);
                Ok(())
            },
        ),
    ];
}

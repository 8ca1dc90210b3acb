//! [`MetricsConfig`] and its environment variables.

use serde::{Deserialize, Serialize};

use crate::env::{Setting, parse};
use crate::error::ConfigError;

/// Metrics settings.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// Record HTTP metrics and serve `/metrics` (default `true`).
    pub enabled: bool,
    /// Path of the Prometheus endpoint (default `/metrics`).
    pub path: String,
    /// Bearer token the scraper must send (default none: open).
    pub token: Option<String>,
    /// `service.name` of the resource; `OTEL_SERVICE_NAME` when unset.
    pub service_name: Option<String>,
    /// Serve the endpoint on its own port (on all interfaces) instead of the app's router, so
    /// it can stay off the public load balancer (`RUSTFORGE_METRICS_PORT`; `0` picks a free
    /// port, see [`ProductionLayer::metrics_addr`](crate::ProductionLayer::metrics_addr)).
    pub port: Option<u16>,
    /// Keep the Prometheus registry and serve the endpoint (default `true`); off when
    /// `OTEL_METRICS_EXPORTER` does not name `prometheus`, e.g. when only pushing over OTLP.
    pub prometheus: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/metrics".into(),
            token: None,
            service_name: None,
            port: None,
            prometheus: true,
        }
    }
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("enabled", &self.enabled)
            .field("path", &self.path)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("service_name", &self.service_name)
            .field("port", &self.port)
            .field("prometheus", &self.prometheus)
            .finish()
    }
}

impl MetricsConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.path.starts_with('/') || self.path.contains(['{', '}', '*']) {
            return Err(ConfigError::new(
                "metrics.path",
                &self.path,
                "a fixed path starting with `/`",
            ));
        }
        crate::util::check_bearer_token("metrics.token", self.token.as_deref())?;
        Ok(())
    }

    /// Whether `/metrics` is served.
    pub(crate) fn serves_prometheus(&self) -> bool {
        self.enabled && self.prometheus
    }
    /// The environment variables of the metrics module.
    pub(crate) const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "RUSTFORGE_METRICS",
            "metrics.enabled",
            "`true`",
            "HTTP metrics and `/metrics` on/off",
            |c, var, v| {
                c.enabled = parse::bool(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_METRICS_PATH",
            "metrics.path",
            "`/metrics`",
            "Prometheus endpoint path",
            |c, _, v| {
                c.path = v.trim().to_owned();
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_METRICS_TOKEN",
            "metrics.token",
            "unset (open)",
            "bearer token the scraper must send",
            |c, _, v| {
                c.token = Some(v.to_owned());
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_METRICS_PORT",
            "metrics.port",
            "unset (app router)",
            "serve `/metrics` on its own port (all interfaces) instead of the app's router",
            |c, var, v| {
                c.port = Some(parse::from_str(var, v)?);
                Ok(())
            },
        ),
        Setting::read_elsewhere(
            "OTEL_SERVICE_NAME",
            "unset",
            "the telemetry resource's `service.name` (`target_info`), read by the OpenTelemetry SDK",
        ),
        Setting::read_elsewhere(
            "OTEL_RESOURCE_ATTRIBUTES",
            "unset",
            "further resource attributes (`key=value,…`), read by the OpenTelemetry SDK",
        ),
    ];
}

//! Metrics: an OpenTelemetry meter provider exported in the Prometheus text format at
//! `/metrics`, HTTP server metrics per the semantic conventions, and the crate's own metrics.
//!
//! ```
//! use axum::{Router, routing::get};
//! use opentelemetry::KeyValue;
//! use rustforge_prod::ProductionLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rustforge_prod::Error> {
//! let prod = ProductionLayer::builder().build().await?;
//! // The application's own instruments land on the same /metrics.
//! let signups = prod.metrics().meter("my_app").u64_counter("my_app.signups")
//!     .with_description("Accounts created").build();
//! signups.add(1, &[KeyValue::new("plan", "free")]);
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hi" }))
//!     .merge(prod.routes())            // GET /metrics
//!     .layer(prod.layer());            // records http.server.* for every route
//! assert!(prod.metrics().render().contains("my_app_signups_total"));
//! # let _ = app; Ok(()) }
//! ```
//!
//! Every metric, its type, unit and labels are listed in `docs/metrics.md`. The crate's own
//! instruments are named `rustforge.*` (`rustforge_*` in Prometheus).

mod http;
mod provider;
mod routes;
mod text;

use serde::{Deserialize, Serialize};

pub use http::{
    CountingBody, DURATION_BUCKETS, HttpMetrics, HttpMetricsLayer, HttpMetricsService,
    ResponseFuture, SIZE_BUCKETS,
};
#[cfg(all(feature = "otlp", feature = "middleware"))]
pub(crate) use http::{method_name, scheme};
#[cfg(feature = "otlp")]
pub(crate) use provider::resource;
pub use provider::{Metrics, SCOPE};
pub use routes::PROMETHEUS_TEXT;

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
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ConfigError::new("metrics.token", "", "must not be empty"));
        }
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

/// The health module's instruments: `rustforge.health.check.status` (1 pass, 0.5 warn, 0 fail)
/// and `rustforge.health.check.duration` (s), per check.
#[cfg(feature = "health")]
pub(crate) fn health_observer(
    metrics: &Metrics,
) -> impl Fn(&crate::health::Report) + Send + Sync + 'static {
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::{Gauge, Histogram};

    let meter = metrics.meter(SCOPE);
    let status: Gauge<f64> = meter
        .f64_gauge("rustforge.health.check.status")
        .with_description("Health check status: 1 pass, 0.5 warn, 0 fail.")
        .build();
    let duration: Histogram<f64> = meter
        .f64_histogram("rustforge.health.check.duration")
        .with_unit("s")
        .with_description("Duration of health check runs.")
        .with_boundaries(DURATION_BUCKETS.to_vec())
        .build();
    move |report: &crate::health::Report| {
        for check in &report.checks {
            let attributes = [
                KeyValue::new("check", check.name.clone()),
                KeyValue::new("critical", check.critical),
            ];
            let value = match check.result.status {
                crate::health::Status::Healthy => 1.0,
                crate::health::Status::Degraded { .. } => 0.5,
                crate::health::Status::Unhealthy { .. } => 0.0,
            };
            status.record(value, &attributes);
            duration.record(check.duration.as_secs_f64(), &attributes);
        }
    }
}

/// The rate limiter's instruments: `rustforge.ratelimit.decisions` per limiter, outcome and
/// source, and the store's failure handling (`rustforge.ratelimit.backend.errors`,
/// `rustforge.ratelimit.failure.decisions` per policy, `rustforge.ratelimit.breaker.open`).
#[cfg(feature = "ratelimit")]
pub(crate) fn observe_rate_limits(
    metrics: &Metrics,
    layer: crate::ratelimit::RateLimitLayer,
) -> crate::ratelimit::RateLimitLayer {
    use opentelemetry::KeyValue;

    let meter = metrics.meter(SCOPE);
    let store = layer.store().clone();
    let errors = store.clone();
    meter
        .u64_observable_counter("rustforge.ratelimit.backend.errors")
        .with_description("Rate-limit store errors and timeouts.")
        .with_callback(move |o| o.observe(errors.stats().errors, &[]))
        .build();
    let failures = store.clone();
    meter
        .u64_observable_counter("rustforge.ratelimit.failure.decisions")
        .with_description(
            "Checks decided by the failure policy while the store failed (fallback, fail_open, fail_closed).",
        )
        .with_callback(move |o| {
            let s = failures.stats();
            for (policy, n) in [
                ("fallback", s.fallbacks),
                ("fail_open", s.fail_open),
                ("fail_closed", s.fail_closed),
            ] {
                o.observe(n, &[KeyValue::new("policy", policy)]);
            }
        })
        .build();
    meter
        .u64_observable_gauge("rustforge.ratelimit.breaker.open")
        .with_description("1 while the circuit breaker skips the rate-limit store, else 0.")
        .with_callback(move |o| o.observe(u64::from(store.stats().breaker_open), &[]))
        .build();
    let decisions = meter
        .u64_counter("rustforge.ratelimit.decisions")
        .with_description(
            "Rate-limit decisions by limiter, outcome (allowed, limited) and source (memory, redis, deny_cache, fallback, fail_open).",
        )
        .build();
    layer.with_observer(move |limiter, decision| {
        decisions.add(
            1,
            &[
                KeyValue::new("limiter", limiter.to_owned()),
                KeyValue::new(
                    "outcome",
                    if decision.allowed {
                        "allowed"
                    } else {
                        "limited"
                    },
                ),
                KeyValue::new("source", decision.source.as_str()),
            ],
        );
    })
}

/// The storage module's instruments: `rustforge.storage.operations` per disk, operation and
/// outcome (ok, not_found, error), `rustforge.storage.operation.duration` (s) and
/// `rustforge.storage.io` (bytes) per disk and direction (read, written).
#[cfg(feature = "storage")]
pub(crate) fn storage_observer(
    metrics: &Metrics,
) -> std::sync::Arc<dyn crate::storage::StorageObserver> {
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::{Counter, Histogram};

    use crate::storage::{Direction, Operation, Outcome};

    struct Instruments {
        operations: Counter<u64>,
        duration: Histogram<f64>,
        bytes: Counter<u64>,
    }

    impl crate::storage::StorageObserver for Instruments {
        fn operation(
            &self,
            disk: &str,
            operation: Operation,
            outcome: Outcome,
            elapsed: std::time::Duration,
        ) {
            let disk = KeyValue::new("disk", disk.to_owned());
            let operation = KeyValue::new("operation", operation.as_str());
            self.duration
                .record(elapsed.as_secs_f64(), &[disk.clone(), operation.clone()]);
            self.operations.add(
                1,
                &[disk, operation, KeyValue::new("outcome", outcome.as_str())],
            );
        }

        fn bytes(&self, disk: &str, direction: Direction, bytes: u64) {
            let attributes = [
                KeyValue::new("disk", disk.to_owned()),
                KeyValue::new("direction", direction.as_str()),
            ];
            self.bytes.add(bytes, &attributes);
        }
    }

    let meter = metrics.meter(SCOPE);
    std::sync::Arc::new(Instruments {
        operations: meter
            .u64_counter("rustforge.storage.operations")
            .with_description(
                "Storage operations by disk, operation and outcome (ok, not_found, error).",
            )
            .build(),
        duration: meter
            .f64_histogram("rustforge.storage.operation.duration")
            .with_unit("s")
            .with_description("Duration of storage operations (a streaming read counts until its response starts).")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
        bytes: meter
            .u64_counter("rustforge.storage.io")
            .with_unit("By")
            .with_description("Bytes read from and written to storage, by disk and direction.")
            .build(),
    })
}

/// The broadcaster's instruments, per app: `rustforge.broadcast.connections` (gauge),
/// `rustforge.broadcast.messages` (frames in from clients / out to clients),
/// `rustforge.broadcast.slow_consumers` (closed with 4100) and
/// `rustforge.broadcast.refused_connections` (over a connection limit).
#[cfg(feature = "broadcast")]
pub(crate) fn observe_broadcast(metrics: &Metrics, broadcaster: &crate::broadcast::Broadcaster) {
    use std::sync::atomic::AtomicU64;
    use std::sync::atomic::Ordering::Relaxed;

    use crate::broadcast::Stats;

    use opentelemetry::KeyValue;

    let meter = metrics.meter(SCOPE);
    let b = broadcaster.clone();
    meter
        .u64_observable_gauge("rustforge.broadcast.connections")
        .with_description("Open WebSocket connections, per app.")
        .with_callback(move |o| {
            for hub in b.hubs() {
                let app = [KeyValue::new("app", hub.app.id.clone())];
                o.observe(hub.stats.connections.load(Relaxed), &app);
            }
        })
        .build();
    let b = broadcaster.clone();
    meter
        .u64_observable_counter("rustforge.broadcast.messages")
        .with_description(
            "Protocol frames received from clients (in) and queued to clients (out), per app.",
        )
        .with_callback(move |o| {
            for hub in b.hubs() {
                for (direction, n) in [
                    ("in", hub.stats.messages_in.load(Relaxed)),
                    ("out", hub.stats.messages_out.load(Relaxed)),
                ] {
                    let attributes = [
                        KeyValue::new("app", hub.app.id.clone()),
                        KeyValue::new("direction", direction),
                    ];
                    o.observe(n, &attributes);
                }
            }
        })
        .build();
    // A counter per app read from one field of the hub's stats.
    let per_app =
        |name: &'static str, description: &'static str, field: fn(&Stats) -> &AtomicU64| {
            let b = broadcaster.clone();
            meter
                .u64_observable_counter(name)
                .with_description(description)
                .with_callback(move |o| {
                    for hub in b.hubs() {
                        let app = [KeyValue::new("app", hub.app.id.clone())];
                        o.observe(field(&hub.stats).load(Relaxed), &app);
                    }
                })
                .build();
        };
    per_app(
        "rustforge.broadcast.slow_consumers",
        "Connections closed (4100) because their send queue was full.",
        |s| &s.slow_consumers,
    );
    per_app(
        "rustforge.broadcast.refused_connections",
        "Connections refused (4100) over the per-app or per-IP limit.",
        |s| &s.refused_connections,
    );
    #[cfg(feature = "redis")]
    if let Some(cluster) = broadcaster.hub().cluster().cloned() {
        let events = cluster.clone();
        meter
            .u64_observable_counter("rustforge.broadcast.redis.events")
            .with_description(
                "Events exchanged with the other servers through Redis: published, received, lost (could not be published).",
            )
            .with_callback(move |o| {
                let s = &events.stats;
                for (outcome, n) in [
                    ("published", s.published.load(Relaxed)),
                    ("received", s.received.load(Relaxed)),
                    ("lost", s.lost.load(Relaxed)),
                ] {
                    o.observe(n, &[KeyValue::new("outcome", outcome)]);
                }
            })
            .build();
        let c = cluster.clone();
        meter
            .u64_observable_counter("rustforge.broadcast.redis.reconnects")
            .with_description(
                "Times the Redis pub/sub connection was re-established and resubscribed.",
            )
            .with_callback(move |o| {
                o.observe(c.stats.reconnects.load(Relaxed), &[]);
            })
            .build();
        let c = cluster.clone();
        meter
            .u64_observable_gauge("rustforge.broadcast.redis.pending")
            .with_description(
                "Presence and subscription writes that failed and wait to be retried.",
            )
            .with_callback(move |o| {
                o.observe(c.pending() as u64, &[]);
            })
            .build();
        let c = cluster;
        meter
            .u64_observable_counter("rustforge.broadcast.redis.reaped_servers")
            .with_description(
                "Servers found dead (no heartbeat) whose presence members were removed.",
            )
            .with_callback(move |o| {
                o.observe(c.stats.reaped_nodes.load(Relaxed), &[]);
            })
            .build();
    }
    #[cfg(feature = "webhooks")]
    {
        let b = broadcaster.clone();
        meter
            .u64_observable_counter("rustforge.broadcast.webhooks")
            .with_description(
                "Webhook events sent, failed after retries, or dropped on a full queue, per app.",
            )
            .with_callback(move |o| {
                for hub in b.hubs() {
                    let Some(webhooks) = &hub.webhooks else {
                        continue;
                    };
                    let s = &webhooks.stats;
                    for (outcome, n) in [
                        ("sent", s.sent.load(Relaxed)),
                        ("failed", s.failed.load(Relaxed)),
                        ("dropped", s.dropped.load(Relaxed)),
                    ] {
                        let attributes = [
                            KeyValue::new("app", hub.app.id.clone()),
                            KeyValue::new("outcome", outcome),
                        ];
                        o.observe(n, &attributes);
                    }
                }
            })
            .build();
    }
}

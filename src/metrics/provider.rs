//! [`Metrics`]: the meter provider, the Prometheus registry it exports into, and rendering.

use std::sync::Arc;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, Registry, TextEncoder};

use super::MetricsConfig;
use crate::error::ConfigError;

/// The name of the instrumentation scope of the crate's own instruments.
pub const SCOPE: &str = "rustforge-prod";

/// The metrics handle: cheap to clone. Get application meters from it; everything recorded on
/// them appears on `/metrics`.
///
/// ```
/// use rustforge_prod::metrics::{Metrics, MetricsConfig};
///
/// let metrics = Metrics::new(&MetricsConfig::default()).unwrap();
/// let orders = metrics.meter("shop").u64_counter("shop.orders").with_description("Orders placed").build();
/// orders.add(1, &[opentelemetry::KeyValue::new("channel", "web")]);
/// assert!(metrics.render().contains("shop_orders_total{channel=\"web\""));
/// ```
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    provider: SdkMeterProvider,
    registry: Registry,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A provider exporting into a fresh Prometheus registry. The service name comes from
    /// [`MetricsConfig::service_name`], else `OTEL_SERVICE_NAME`; `OTEL_RESOURCE_ATTRIBUTES` adds
    /// resource attributes (shown on `target_info`).
    pub fn new(config: &MetricsConfig) -> Result<Self, ConfigError> {
        let registry = Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            // No otel_scope_* labels on every series: they repeat the same two strings on every
            // line (a third of the output) and Prometheus users select by metric name.
            .scope_info_enabled(false)
            .build()
            .map_err(|e| ConfigError::new("metrics", "prometheus exporter", e.to_string()))?;
        let mut resource = Resource::builder();
        if let Some(name) = &config.service_name {
            resource = resource.with_service_name(name.clone());
        }
        let provider = SdkMeterProvider::builder()
            .with_reader(exporter)
            .with_resource(resource.build())
            .build();
        Ok(Self {
            inner: Arc::new(Inner { provider, registry }),
        })
    }

    /// A meter for the application's own instruments.
    pub fn meter(&self, name: &'static str) -> Meter {
        self.inner.provider.meter(name)
    }

    /// The meter provider, e.g. to install it globally with
    /// `opentelemetry::global::set_meter_provider`.
    pub fn provider(&self) -> &SdkMeterProvider {
        &self.inner.provider
    }

    /// Everything recorded so far, in the Prometheus text format.
    pub fn render(&self) -> String {
        let families = self.inner.registry.gather();
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(error = %err, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Flushes and stops the provider (on graceful shutdown).
    pub fn shutdown(&self) {
        if let Err(err) = self.inner.provider.shutdown() {
            tracing::debug!(error = %err, "metrics provider shutdown");
        }
    }
}

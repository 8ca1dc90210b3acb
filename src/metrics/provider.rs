//! [`Metrics`]: the meter provider, the Prometheus registry it exports into, and rendering.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::Registry;

use super::MetricsConfig;
use crate::error::ConfigError;

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
    last_size: AtomicUsize,
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
        Self::build(config, None::<opentelemetry_sdk::metrics::ManualReader>)
    }

    /// Like [`new`](Self::new), also exporting through `push` (a periodic OTLP reader, say),
    /// and without the Prometheus registry when [`MetricsConfig::prometheus`] is off.
    pub fn with_reader(
        config: &MetricsConfig,
        push: Option<impl opentelemetry_sdk::metrics::reader::MetricReader>,
    ) -> Result<Self, ConfigError> {
        Self::build(config, push)
    }

    fn build(
        config: &MetricsConfig,
        push: Option<impl opentelemetry_sdk::metrics::reader::MetricReader>,
    ) -> Result<Self, ConfigError> {
        let registry = Registry::new();
        let mut provider = SdkMeterProvider::builder().with_resource(resource(config));
        if config.prometheus {
            let exporter = opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                // No otel_scope_* labels on every series: they repeat the same two strings on
                // every line (a third of the output) and Prometheus users select by metric name.
                .scope_info_enabled(false)
                .build()
                .map_err(|e| ConfigError::new("metrics", "prometheus exporter", e.to_string()))?;
            provider = provider.with_reader(exporter);
        }
        if let Some(push) = push {
            provider = provider.with_reader(push);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                provider: provider.build(),
                registry,
                last_size: AtomicUsize::new(0),
            }),
        })
    }

    /// A meter for the application's own instruments.
    pub fn meter(&self, name: &'static str) -> Meter {
        self.inner.provider.meter(name)
    }

    /// The Prometheus registry behind `/metrics`: collectors registered here with the
    /// `prometheus` crate (an existing app's metrics, say) are served next to the
    /// OpenTelemetry ones.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The meter provider, e.g. to install it globally with
    /// `opentelemetry::global::set_meter_provider`.
    pub fn provider(&self) -> &SdkMeterProvider {
        &self.inner.provider
    }

    /// Everything recorded so far, in the Prometheus text format.
    pub fn render(&self) -> String {
        let families = self.inner.registry.gather();
        // The last render's size is a good guess for this one: one allocation, no regrowth.
        let mut out = String::with_capacity(self.inner.last_size.load(Ordering::Relaxed) + 4096);
        super::text::encode(&families, &mut out);
        self.inner.last_size.store(out.len(), Ordering::Relaxed);
        out
    }

    /// Pushes what is recorded to the OTLP collector now, if one is configured (blocks up to
    /// the export timeout; the Prometheus endpoint needs nothing).
    pub fn flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.provider.force_flush()
    }

    /// Flushes and stops the provider (on graceful shutdown).
    pub fn shutdown(&self) {
        if let Err(err) = self.inner.provider.shutdown() {
            tracing::debug!(error = %err, "metrics provider shutdown");
        }
    }
}

/// The resource every signal describes: `service.name` from the config, else the
/// `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` the SDK reads.
pub(crate) fn resource(config: &MetricsConfig) -> Resource {
    let mut resource = Resource::builder();
    if let Some(name) = &config.service_name {
        resource = resource.with_service_name(name.clone());
    }
    resource.build()
}

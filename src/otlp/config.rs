//! [`OtlpConfig`] and the exporters it builds.

use std::time::Duration;

use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::PeriodicReader;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};

use super::ids::RequestIds;
use crate::env::Setting;
use crate::error::ConfigError;

/// OTLP export settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct OtlpConfig {
    /// Base URL of the collector's OTLP/HTTP receiver, e.g. `http://collector:4318`
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`); `/v1/metrics` and `/v1/traces` are appended. `None`
    /// (the default) exports nothing.
    pub endpoint: Option<String>,
    /// The full URL metrics go to, used as is (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`); wins
    /// over [`endpoint`](Self::endpoint) for metrics.
    pub metrics_endpoint: Option<String>,
    /// The full URL spans go to, used as is (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); wins over
    /// [`endpoint`](Self::endpoint) for spans.
    pub traces_endpoint: Option<String>,
    /// Push metrics to the endpoint (default `true`; `OTEL_METRICS_EXPORTER`).
    pub metrics: bool,
    /// Export request spans to the endpoint (default `true`; `OTEL_TRACES_EXPORTER`).
    pub traces: bool,
    /// How often metrics are pushed (`OTEL_METRIC_EXPORT_INTERVAL`, in ms; default 60 s).
    #[serde(with = "humantime_serde")]
    pub metrics_interval: Duration,
    /// How long one export may take (`OTEL_EXPORTER_OTLP_TIMEOUT`, in ms; default 10 s).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            metrics_endpoint: None,
            traces_endpoint: None,
            metrics: true,
            traces: true,
            metrics_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

impl OtlpConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, endpoint) in [
            ("otlp.endpoint", &self.endpoint),
            ("otlp.metrics_endpoint", &self.metrics_endpoint),
            ("otlp.traces_endpoint", &self.traces_endpoint),
        ] {
            let Some(endpoint) = endpoint else { continue };
            let uri: http::Uri = endpoint
                .parse()
                .map_err(|e| ConfigError::new(key, endpoint, format!("not a URL: {e}")))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(ConfigError::new(
                    key,
                    endpoint,
                    "an http:// or https:// URL with a host, e.g. http://collector:4318",
                ));
            }
        }
        for (key, value) in [
            ("otlp.metrics_interval", self.metrics_interval),
            ("otlp.timeout", self.timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(key, "0", "must be longer than zero"));
            }
        }
        Ok(())
    }
    /// The environment variables of OTLP export (the exporter choices, `OTEL_*_EXPORTER`, are
    /// the crate's: they switch the Prometheus endpoint too).
    pub(crate) const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "otlp.endpoint",
            "unset (no OTLP export)",
            "OTLP/HTTP collector base URL (feature `otlp`): push metrics, export a span per request",
            |c, _, v| {
                c.endpoint = url(v);
                Ok(())
            },
        ),
        Setting::new(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "otlp.metrics_endpoint",
            "unset",
            "the metrics' full URL, used as is (feature `otlp`)",
            |c, _, v| {
                c.metrics_endpoint = url(v);
                Ok(())
            },
        ),
        Setting::new(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "otlp.traces_endpoint",
            "unset",
            "the spans' full URL, used as is (feature `otlp`)",
            |c, _, v| {
                c.traces_endpoint = url(v);
                Ok(())
            },
        ),
        Setting::new(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "otlp.protocol",
            "`http/protobuf`",
            "only `http/protobuf` is supported",
            |_, var, v| match v.trim() {
                "http/protobuf" => Ok(()),
                _ => Err(ConfigError::new(
                    var,
                    v,
                    "only http/protobuf is supported (gRPC would add tonic)",
                )),
            },
        ),
        Setting::new(
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "otlp.timeout",
            "`10000`",
            "time allowed for one export, ms",
            |c, var, v| {
                c.timeout = millis(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "OTEL_METRIC_EXPORT_INTERVAL",
            "otlp.metrics_interval",
            "`60000`",
            "time between metric pushes, ms",
            |c, var, v| {
                c.metrics_interval = millis(var, v)?;
                Ok(())
            },
        ),
        Setting::read_elsewhere(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "unset",
            "headers sent with each export (`api-key=…`), read by the OpenTelemetry SDK",
        ),
        Setting::read_elsewhere(
            "OTEL_TRACES_SAMPLER",
            "`parentbased_always_on`",
            "span sampler (and `OTEL_TRACES_SAMPLER_ARG`), read by the OpenTelemetry SDK",
        ),
    ];

    /// Where `signal` goes: its own endpoint as is, else the base endpoint + `/v1/<signal>`.
    fn url(&self, enabled: bool, own: &Option<String>, signal: &str) -> Option<String> {
        if !enabled {
            return None;
        }
        own.clone().or_else(|| {
            let base = self.endpoint.as_deref()?;
            Some(format!("{}/v1/{signal}", base.trim_end_matches('/')))
        })
    }

    /// An exporter builder sending to `url` within the configured timeout.
    fn http<B: WithExportConfig>(&self, builder: B, url: &str) -> B {
        builder.with_endpoint(url).with_timeout(self.timeout)
    }

    /// The periodic reader pushing metrics, when metrics export is on.
    pub(crate) fn metric_reader(
        &self,
    ) -> Result<Option<PeriodicReader<MetricExporter>>, ConfigError> {
        let Some(url) = self.url(self.metrics, &self.metrics_endpoint, "metrics") else {
            return Ok(None);
        };
        let exporter = self
            .http(MetricExporter::builder().with_http(), &url)
            .build()
            .map_err(|e| build_error(&url, e))?;
        Ok(Some(
            PeriodicReader::builder(exporter)
                .with_interval(self.metrics_interval)
                .build(),
        ))
    }

    /// The tracer provider exporting request spans, when trace export is on.
    pub(crate) fn tracer_provider(
        &self,
        resource: Resource,
    ) -> Result<Option<SdkTracerProvider>, ConfigError> {
        let Some(url) = self.url(self.traces, &self.traces_endpoint, "traces") else {
            return Ok(None);
        };
        let exporter = self
            .http(SpanExporter::builder().with_http(), &url)
            .build()
            .map_err(|e| build_error(&url, e))?;
        Ok(Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_id_generator(RequestIds)
                .with_resource(resource)
                .build(),
        ))
    }
}

fn build_error(url: &str, err: opentelemetry_otlp::ExporterBuildError) -> ConfigError {
    ConfigError::new("otlp.endpoint", url, err.to_string())
}

/// A URL variable; empty means unset.
fn url(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

/// A whole number of milliseconds, as the OpenTelemetry variables give durations.
fn millis(var: &str, value: &str) -> Result<Duration, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| ConfigError::new(var, value, "a whole number of milliseconds"))
}

//! Structured logging: JSON lines in production, pretty output in development.
//!
//! ```no_run
//! use rustforge_prod::{init_logging, LogConfig, LogFormat};
//!
//! # fn main() -> Result<(), rustforge_prod::Error> {
//! // Keep the guard alive for the life of the program: dropping it flushes the log writer.
//! let _guard = init_logging(&LogConfig { format: LogFormat::Json, filter: Some("info".into()) })?;
//! tracing::info!(answer = 42, "logging is ready");
//! # Ok(()) }
//! ```
//!
//! Every request handled by the [middleware stack](crate::middleware) runs inside a `request` span
//! that carries `method`, `route` and `request_id`, so each line logged while serving it — by
//! the crate or by the application — names the request it belongs to. In JSON each line is one
//! flat object ([`JsonFormat`]):
//!
//! ```text
//! {"timestamp":"2026-11-27T06:27:46.121144Z","level":"INFO","target":"rustforge_prod::middleware::trace","message":"request completed","status":200,"latency_us":344,"method":"GET","route":"/users/{id}","request_id":"01a21bb0-4348-7466-96b4-ea325c7259b2"}
//! ```

mod json;
mod writer;

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry};

use crate::env::{Setting, parse};
use crate::error::{ConfigError, Error};
#[cfg(feature = "metrics")]
pub use crate::telemetry::{TraceContext, link_request_span};
pub use json::{JsonFields, JsonFormat};
pub use writer::{BatchWriter, FLUSH_AT, FLUSH_INTERVAL, MAX_BUFFERED, WriterGuard, non_blocking};

/// The filter used when neither [`LogConfig::filter`] nor `RUST_LOG` is set.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (production; what log shippers parse).
    #[default]
    Json,
    /// Human-readable, coloured multi-line output (development).
    Pretty,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            _ => Err("expected json or pretty".to_owned()),
        }
    }
}

/// Logging settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Output format; JSON by default.
    pub format: LogFormat,
    /// A filter in [`EnvFilter`] syntax (`info,my_app=debug`); `None` uses
    /// [`DEFAULT_LOG_FILTER`].
    pub filter: Option<String>,
}

impl LogConfig {
    /// The environment variables of logging.
    pub(crate) const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "RUST_LOG",
            "log.filter",
            "`info`",
            "log filter (`info,my_app=debug`)",
            |c, _, v| {
                c.filter = Some(v.to_owned());
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_LOG_FORMAT",
            "log.format",
            "`json`",
            "`json` (production) or `pretty` (development)",
            |c, var, v| {
                c.format = parse::from_str(var, v)?;
                Ok(())
            },
        ),
    ];

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.env_filter().map(drop)
    }

    fn env_filter(&self) -> Result<EnvFilter, ConfigError> {
        let filter = self.filter.as_deref().unwrap_or(DEFAULT_LOG_FILTER);
        EnvFilter::try_new(filter)
            .map_err(|e| ConfigError::new("log.filter", filter, format!("not a valid filter: {e}")))
    }
}

/// Keeps the background log writer alive; dropping it flushes what is still buffered.
#[must_use = "dropping the guard stops the log writer"]
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code)] WriterGuard);

/// Installs a global `tracing` subscriber writing to stdout through a [`BatchWriter`], so a
/// slow terminal or log pipe never blocks a request (lines are dropped and counted, not waited
/// for, when its buffer is full). [`ProductionLayer::init_logging`](crate::ProductionLayer::init_logging)
/// does the same and also exports request spans when OTLP is configured.
///
/// Fails with [`Error::Config`] for an invalid filter and [`Error::Logging`] when a global
/// subscriber is already installed.
pub fn init_logging(config: &LogConfig) -> Result<LogGuard, Error> {
    install(|writer| subscriber(config, writer))
}

/// Installs the subscriber `make` builds around a non-blocking stdout writer.
pub(crate) fn install(
    make: impl FnOnce(BatchWriter) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, ConfigError>,
) -> Result<LogGuard, Error> {
    let (writer, guard) = non_blocking(std::io::stdout());
    tracing::subscriber::set_global_default(make(writer)?)
        .map_err(|e| Error::Logging(e.to_string()))?;
    Ok(LogGuard(guard))
}

/// The subscriber [`init_logging`] installs, writing to any `writer`: use it with
/// [`tracing::subscriber::set_default`] to capture logs in tests, or to write to a file.
pub fn subscriber<W>(
    config: &LogConfig,
    writer: W,
) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, ConfigError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    build_subscriber(config, writer, None)
}

/// A layer that follows every span next to the log output (the OTLP span exporter).
pub(crate) type SpanLayer = Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>;

/// The log subscriber, with `spans` (when given) seeing every span the filter lets through.
pub(crate) fn build_subscriber<W>(
    config: &LogConfig,
    writer: W,
    spans: Option<SpanLayer>,
) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, ConfigError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = config.env_filter()?;
    // The filter is global whatever its place: what it rejects reaches no layer.
    let registry = Registry::default().with(spans).with(filter);

    Ok(match config.format {
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonFormat)
                    .fmt_fields(JsonFields)
                    .with_writer(writer),
            ),
        ),
        LogFormat::Pretty => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .pretty()
                    .with_writer(writer),
            ),
        ),
    })
}

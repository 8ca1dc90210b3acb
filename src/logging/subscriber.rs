//! The `tracing` subscriber: JSON or pretty lines through the non-blocking writer, and the
//! global installation.

use tracing_subscriber::Registry;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use super::config::{LogConfig, LogFormat};
use super::json::{JsonFields, JsonFormat};
use super::writer::{BatchWriter, WriterGuard, non_blocking};
use crate::error::{ConfigError, Error};

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
    tracing::subscriber::set_global_default(make(writer)?).map_err(Error::Logging)?;
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

//! [`LogConfig`]: the format and filter of the logs, and their environment variables.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

use crate::env::{Setting, parse};
use crate::error::ConfigError;

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

    pub(super) fn env_filter(&self) -> Result<EnvFilter, ConfigError> {
        let filter = self.filter.as_deref().unwrap_or(DEFAULT_LOG_FILTER);
        EnvFilter::try_new(trimmed_directives(filter))
            .map_err(|e| ConfigError::new("log.filter", filter, format!("not a valid filter: {e}")))
    }
}

/// The filter with the whitespace around each directive removed. tracing-subscriber 0.3 parses a
/// directive by the positions of its trimmed text but slices the untrimmed one, and panics when
/// that lands inside a multi-byte character (found by `fuzz/` on `RUST_LOG="\t\t1…\u{34d}…"`).
fn trimmed_directives(filter: &str) -> String {
    filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The class of input `fuzz/` found: whitespace before a directive with a multi-byte
    /// character (`EnvFilter::try_new(" [{1é}é")` panics in tracing-subscriber 0.3.23); through
    /// `LogConfig` it is a filter (or a `ConfigError`) like any other.
    #[test]
    fn whitespace_before_a_multi_byte_directive_is_no_panic() {
        for filter in [" [{1\u{e9}}\u{e9}", "info, [{1\u{e9}}\u{e9}"] {
            let config = LogConfig {
                filter: Some(filter.into()),
                ..LogConfig::default()
            };
            let _ = config.env_filter();
        }
    }
}

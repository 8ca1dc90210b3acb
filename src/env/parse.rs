//! Parsers shared by every module's environment table, each naming the variable in its error.

// Each module uses the parsers it needs; with some features off, some go unused.
#![allow(dead_code)]

use std::time::Duration;

use crate::error::ConfigError;

/// `true/false`, `1/0`, `yes/no`, `on/off` (any case).
pub(crate) fn bool(setting: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(setting, value, "expected true or false")),
    }
}

/// A humantime duration such as `250ms`, `30s`, `2m`; zero is rejected.
pub(crate) fn duration(setting: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = duration_or_zero(setting, value)?;
    if d.is_zero() {
        return Err(ConfigError::new(
            setting,
            value,
            "must be greater than zero",
        ));
    }
    Ok(d)
}

/// A humantime duration such as `0s`, `250ms` or `5s`, zero included (for waits that may be
/// skipped, such as the shutdown drain).
pub(crate) fn duration_or_zero(setting: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        ConfigError::new(
            setting,
            value,
            format!("expected a duration like 30s ({e})"),
        )
    })
}

/// A duration, or `off`/`none`/`false` for no limit.
pub(crate) fn optional_duration(
    setting: &str,
    value: &str,
) -> Result<Option<Duration>, ConfigError> {
    if is_off(value) {
        return Ok(None);
    }
    duration(setting, value).map(Some)
}

/// A byte size such as `2MiB`, `512KB` or `1048576`; zero is rejected.
pub(crate) fn size(setting: &str, value: &str) -> Result<u64, ConfigError> {
    let size: bytesize::ByteSize = value.trim().parse().map_err(|e| {
        ConfigError::new(setting, value, format!("expected a size like 2MiB ({e})"))
    })?;
    if size.as_u64() == 0 {
        return Err(ConfigError::new(
            setting,
            value,
            "must be greater than zero",
        ));
    }
    Ok(size.as_u64())
}

/// A size, or `off`/`none`/`false` for no limit.
pub(crate) fn optional_size(setting: &str, value: &str) -> Result<Option<u64>, ConfigError> {
    if is_off(value) {
        return Ok(None);
    }
    size(setting, value).map(Some)
}

/// An `OTEL_*_EXPORTER` list such as `otlp,prometheus` or `none`, of the names in `known`.
pub(crate) fn exporters(
    setting: &str,
    value: &str,
    known: &[&str],
) -> Result<Vec<String>, ConfigError> {
    let names = list(value);
    if names.is_empty()
        || names
            .iter()
            .any(|n| n != "none" && !known.contains(&n.as_str()))
    {
        return Err(ConfigError::new(
            setting,
            value,
            format!("a comma-separated list of {} or none", known.join(", ")),
        ));
    }
    Ok(names)
}

/// A comma-separated list; empty items are dropped.
pub(crate) fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Any `FromStr` value.
pub(crate) fn from_str<T>(setting: &str, value: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e| ConfigError::new(setting, value, format!("{e}")))
}

pub(crate) fn is_off(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "off" | "none" | "false" | "disabled"
    )
}

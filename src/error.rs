//! The crate's error types.
//!
//! [`ConfigError`] is what every bad setting becomes — at [`from_env`](crate::Config::from_env),
//! when a config file is deserialized, or at [`build`](crate::ProductionLayerBuilder::build).
//! [`Error`] is the crate-wide error returned by `build()`; each module adds its own
//! `#[non_exhaustive]` error enum.

use std::fmt;

/// An invalid setting: names the setting (environment variable, builder method or config key),
/// the value that was given and why it was rejected.
///
/// ```
/// use rustforge_prod::Config;
///
/// let err = Config::from_vars([("RUSTFORGE_REQUEST_TIMEOUT", "soon")]).unwrap_err();
/// assert_eq!(err.setting(), "RUSTFORGE_REQUEST_TIMEOUT");
/// assert_eq!(err.value(), "soon");
/// assert!(err.to_string().contains("RUSTFORGE_REQUEST_TIMEOUT"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    setting: String,
    value: String,
    reason: String,
}

impl ConfigError {
    /// A new error for `setting` (e.g. `"RUSTFORGE_CORS_ORIGINS"` or `"cors.origins"`) holding `value`.
    pub fn new(
        setting: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            setting: setting.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// The setting that was rejected: an environment variable, a builder method or a config key.
    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// The rejected value, as given.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why the value was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The same error reported under another setting name (used when a config key was set from an
    /// environment variable, so the error names the variable the user actually wrote).
    pub(crate) fn renamed(mut self, setting: impl Into<String>) -> Self {
        self.setting = setting.into();
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value {:?} for {}: {}",
            self.value, self.setting, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

/// The error returned by [`ProductionLayerBuilder::build`](crate::ProductionLayerBuilder::build).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting was invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The shared Redis handle could not be created; the source is a
    /// [`RedisError`](crate::redis::RedisError).
    #[cfg(feature = "redis")]
    #[error(transparent)]
    Redis(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Logging could not be initialised (a global subscriber was already installed).
    #[error("logging could not be initialised: {0}")]
    Logging(#[from] tracing::subscriber::SetGlobalDefaultError),
}

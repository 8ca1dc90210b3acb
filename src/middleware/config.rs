//! [`HttpConfig`]: the settings of the middleware stack, and its environment variables.

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::{CompressionConfig, CorsConfig, HttpStack, RequestIdConfig, TraceConfig};
use crate::env::{Setting, parse};
use crate::error::ConfigError;

/// Settings of the middleware stack. `Default` is the production default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Request ids.
    pub request_id: RequestIdConfig,
    /// Request logging.
    pub trace: TraceConfig,
    /// CORS.
    pub cors: CorsConfig,
    /// Response compression and optional request decompression.
    pub compression: CompressionConfig,
    /// Time allowed until the response headers (default 30 s); `None` for no limit.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Status of a timed-out request: 408, 503 (default) or 504.
    pub timeout_status: u16,
    /// Largest request body (default 2 MiB; also sets axum's `DefaultBodyLimit`); `None` for no
    /// limit.
    pub body_limit: Option<ByteSize>,
    /// Turn handler panics into 500 responses (default `true`).
    pub catch_panic: bool,
    /// Give empty error responses a JSON body with the request id (default `true`).
    pub error_bodies: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_id: RequestIdConfig::default(),
            trace: TraceConfig::default(),
            cors: CorsConfig::default(),
            compression: CompressionConfig::default(),
            timeout: Some(Duration::from_secs(30)),
            timeout_status: 503,
            body_limit: Some(ByteSize::mib(2)),
            catch_panic: true,
            error_bodies: true,
        }
    }
}

impl HttpConfig {
    /// Every middleware switched off (add back what you need).
    pub fn none() -> Self {
        Self {
            request_id: RequestIdConfig::disabled(),
            trace: TraceConfig {
                enabled: false,
                quiet_routes: Vec::new(),
            },
            cors: CorsConfig::disabled(),
            compression: CompressionConfig::disabled(),
            timeout: None,
            timeout_status: 503,
            body_limit: None,
            catch_panic: false,
            error_bodies: false,
        }
    }

    /// Checks every setting by building the stack once ([`HttpStack::new`] makes the checks).
    pub fn validate(&self) -> Result<(), ConfigError> {
        HttpStack::new(self).map(drop)
    }

    /// The checks of settings that are not a layer's own configuration.
    pub(super) fn validate_scalars(&self) -> Result<(), ConfigError> {
        if ![408, 503, 504].contains(&self.timeout_status) {
            return Err(ConfigError::new(
                "http.timeout_status",
                self.timeout_status.to_string(),
                "expected 408, 503 or 504",
            ));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "http.timeout",
                "0s",
                "must be greater than zero",
            ));
        }
        if self.body_limit.is_some_and(|b| b.as_u64() == 0) {
            return Err(ConfigError::new(
                "http.body_limit",
                "0",
                "must be greater than zero",
            ));
        }
        Ok(())
    }

    /// The environment variables of the middleware stack.
    pub(crate) const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "RUSTFORGE_REQUEST_ID_HEADER",
            "http.request_id.header",
            "`x-request-id`",
            "request-id header",
            |c, _, v| {
                c.request_id.header = v.trim().to_owned();
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_CORS_ORIGINS",
            "http.cors.origins",
            "none (same-origin only)",
            "comma-separated origins, or `*` (not with credentials)",
            |c, _, v| {
                c.cors.origins = parse::list(v);
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_CORS_CREDENTIALS",
            "http.cors.credentials",
            "`false`",
            "allow cookies / credentials cross-origin (`true`/`false`)",
            |c, var, v| {
                c.cors.credentials = parse::bool(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_CORS_HEADERS",
            "http.cors.headers",
            "`accept, accept-language, authorization, content-type, x-requested-with, x-request-id, x-socket-id, x-csrf-token, x-xsrf-token`",
            "comma-separated request headers browsers may send",
            |c, _, v| {
                c.cors.headers = parse::list(v);
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_CORS_MAX_AGE",
            "http.cors.max_age",
            "`1h`",
            "how long browsers cache a preflight",
            |c, var, v| {
                c.cors.max_age = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_COMPRESSION",
            "http.compression.enabled",
            "`true`",
            "response compression on/off",
            |c, var, v| {
                c.compression.enabled = parse::bool(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_COMPRESSION_LEVEL",
            "http.compression.level",
            "`1` (fastest)",
            "level 1–9 for gzip, brotli, zstd, deflate",
            |c, var, v| {
                c.compression.level = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_COMPRESSION_MIN_SIZE",
            "http.compression.min_size",
            "`1KiB`",
            "smaller responses are not compressed",
            |c, var, v| {
                c.compression.min_size = ByteSize::b(parse::size(var, v)?);
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_REQUEST_TIMEOUT",
            "http.timeout",
            "`30s`",
            "time to the response headers (`30s`, `off`)",
            |c, var, v| {
                c.timeout = parse::optional_duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_BODY_LIMIT",
            "http.body_limit",
            "`2MiB`",
            "largest request body (`2MiB`, `off`)",
            |c, var, v| {
                c.body_limit = parse::optional_size(var, v)?.map(ByteSize::b);
                Ok(())
            },
        ),
    ];
}

//! Request ids: accept a sane incoming id, otherwise generate a UUID v7.

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Request};
use serde::{Deserialize, Serialize};
use tower_http::request_id::{MakeRequestId, RequestId};

use crate::error::ConfigError;

/// The longest incoming request id that is kept; longer ones are replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Request-id settings.
///
/// An incoming id is kept only when it is 1–128 visible ASCII characters (no spaces, no control
/// characters), so a client cannot inject text into log lines; otherwise a UUID v7 is generated.
/// The id is echoed on the response and recorded on the `request` span, so it appears in every
/// log line of the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestIdConfig {
    /// Set, propagate and log request ids (default `true`).
    pub enabled: bool,
    /// The header carrying the id (default `x-request-id`).
    pub header: String,
}

impl Default for RequestIdConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            header: "x-request-id".to_owned(),
        }
    }
}

impl RequestIdConfig {
    /// Request ids carried in `header` instead of `x-request-id`.
    pub fn header(header: impl Into<String>) -> Self {
        Self {
            header: header.into(),
            ..Self::default()
        }
    }

    /// No request ids at all.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    pub(crate) fn header_name(&self) -> Result<HeaderName, ConfigError> {
        HeaderName::try_from(self.header.as_str()).map_err(|_| {
            ConfigError::new(
                "http.request_id.header",
                &self.header,
                "not a valid HTTP header name",
            )
        })
    }
}

/// Whether an incoming request id may be kept as it is.
pub fn is_sane_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// Removes the request-id header unless it holds exactly one sane value, so that
/// `SetRequestId` generates a fresh id for it.
pub(crate) fn drop_insane_request_id(header: &HeaderName, headers: &mut HeaderMap) {
    let mut values = headers.get_all(header).iter();
    let keep = match (values.next(), values.next()) {
        (Some(value), None) => is_sane_request_id(value),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !keep {
        headers.remove(header);
    }
}

/// Generates time-ordered UUID v7 request ids (they sort by arrival in logs and databases).
#[derive(Clone, Copy, Debug, Default)]
pub struct MakeRequestUuidV7;

impl MakeRequestId for MakeRequestUuidV7 {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let mut buf = uuid::Uuid::encode_buffer();
        let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
        HeaderValue::from_str(id).ok().map(RequestId::new)
    }
}

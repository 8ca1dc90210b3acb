//! The production HTTP middleware stack, built entirely from tower-http layers.
//!
//! Request ids, request logging, CORS, compression, timeout, body limit, panic catching and
//! sensitive-header redaction — each on by default with production defaults, each configurable
//! through [`HttpConfig`] or removable. [`HttpStack`] holds them as one layer; its docs give the
//! order and the reasons for it.
//!
//! ```
//! use axum::{Router, routing::get};
//! use rustforge_prod::middleware::{CorsConfig, HttpConfig, HttpStack};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), rustforge_prod::ConfigError> {
//! let mut http = HttpConfig::default();
//! http.cors = CorsConfig::origins(["https://app.example.com"]);
//! http.timeout = Some(Duration::from_secs(10));
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(HttpStack::new(&http)?);
//! # let _ = app; Ok(()) }
//! ```
//!
//! Most applications get the stack from [`ProductionLayer::layer`](crate::ProductionLayer::layer)
//! instead, configured by the builder or the environment.
//!
//! Error responses made by the stack (timeout, body limit, panic, and axum's empty 404/405) carry
//! an RFC 9457 problem-details body (`application/problem+json`:
//! `{"type":"about:blank","title":"…","status":…,"request_id":"…"}`); turn that off with
//! [`HttpConfig::error_bodies`].

mod compression;
mod config;
mod cors;
mod errors;
mod request_id;
mod stack;
mod trace;

pub use compression::{CompressionConfig, DEFAULT_EXCLUDED_CONTENT_TYPES, NoneOf, ShouldCompress};
pub use config::HttpConfig;
pub use cors::{
    CorsConfig, DEFAULT_ALLOW_HEADERS, DEFAULT_ALLOW_METHODS, DEFAULT_EXPOSE_HEADERS,
    OriginPredicate,
};
pub use request_id::{MAX_REQUEST_ID_LEN, MakeRequestUuidV7, RequestIdConfig, is_sane_request_id};
pub use stack::{HttpService, HttpServiceLike, HttpStack};
// For `ProductionStack`, which puts other modules' layers into the stack.
#[allow(unused_imports)]
pub(crate) use stack::optional;
pub use trace::{LogResponse, MakeRequestSpan, TraceConfig};

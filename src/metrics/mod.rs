//! Metrics: an OpenTelemetry meter provider exported in the Prometheus text format at
//! `/metrics`, HTTP server metrics per the semantic conventions, and the crate's own metrics.
//!
//! ```
//! use axum::{Router, routing::get};
//! use opentelemetry::KeyValue;
//! use rustforge_prod::ProductionLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rustforge_prod::Error> {
//! let prod = ProductionLayer::builder().build().await?;
//! // The application's own instruments land on the same /metrics.
//! let signups = prod.metrics().meter("my_app").u64_counter("my_app.signups")
//!     .with_description("Accounts created").build();
//! signups.add(1, &[KeyValue::new("plan", "free")]);
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hi" }))
//!     .merge(prod.routes())            // GET /metrics
//!     .layer(prod.layer());            // records http.server.* for every route
//! assert!(prod.metrics().render().contains("my_app_signups_total"));
//! # let _ = app; Ok(()) }
//! ```
//!
//! Every metric, its type, unit and labels are listed in `docs/metrics.md`. The crate's own
//! instruments are named `rustforge.*` (`rustforge_*` in Prometheus).

mod config;
mod http;
mod provider;
mod routes;
mod text;

pub use crate::telemetry::{DURATION_BUCKETS, SCOPE, SIZE_BUCKETS};
pub use config::MetricsConfig;
pub use http::{CountingBody, HttpMetrics, HttpMetricsLayer, HttpMetricsService, ResponseFuture};
pub use provider::Metrics;
#[cfg(feature = "otlp")]
pub(crate) use provider::resource;
pub use routes::PROMETHEUS_TEXT;

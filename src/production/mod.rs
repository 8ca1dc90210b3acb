//! Where the modules meet: the builder, one build step per module, the layer composition, the
//! routes, the settings that span modules, and the registration of each module's health checks
//! and instruments.
//!
//! **Work inside your module; connecting two modules happens only here** (and in
//! [`Config`](crate::Config), which joins the modules' settings). A module — `middleware`,
//! `ratelimit`, `broadcast`, `health`, `metrics`, `storage`, `logging`, `otlp`, `server` — uses the shared
//! primitives (`error`, `env`, `util`, `shutdown`, `telemetry`, `problem`, the [`redis`](crate::redis)
//! handle) and nothing of another module; `tests/architecture.rs` keeps it so. A module's
//! instruments are declared in the module, given a `Meter`; this is where they are registered.
//!
//! ```
//! use axum::{Router, routing::get};
//! use rustforge_prod::ProductionLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rustforge_prod::Error> {
//! let prod = ProductionLayer::builder().build().await?;
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .merge(prod.routes())
//!     .layer(prod.layer());
//! # let _ = app; Ok(()) }
//! ```

mod build;
mod builder;
mod checks;
mod layer;
mod serve;
#[cfg(feature = "middleware")]
mod stack;

pub use builder::ProductionLayerBuilder;
#[cfg(all(feature = "cache", feature = "health"))]
pub use checks::cache_check;
pub(crate) use checks::check_config;
#[cfg(all(feature = "storage", feature = "health"))]
pub use checks::storage_check;
pub use layer::ProductionLayer;
pub use serve::serve;
#[cfg(feature = "middleware")]
pub use stack::ProductionStack;

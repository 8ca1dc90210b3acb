//! Health checks: liveness, readiness and a detailed `application/health+json` report that
//! never hangs.
//!
//! ```
//! use axum::Router;
//! use rustforge_prod::ProductionLayer;
//! use rustforge_prod::health::{CheckResult, check_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rustforge_prod::Error> {
//! let prod = ProductionLayer::builder()
//!     .health_check(check_fn("payments-api", || async { CheckResult::healthy() }).not_critical())
//!     .build()
//!     .await?;
//! let app: Router = Router::new().merge(prod.routes()); // /health/live, /health/ready, /health
//! let report = prod.health().report().await;
//! assert_eq!(report.status().as_str(), "pass");
//! # let _ = app; Ok(()) }
//! ```
//!
//! | route | answers | runs checks |
//! |---|---|---|
//! | `/health/live` | 200 unless the app called [`Health::set_live(false)`](Health::set_live) | never — a dependency outage must not restart every pod |
//! | `/health/ready` | 503 while starting (with [`HealthConfig::wait_for_startup`]), once shutdown began, or when a critical readiness check fails | the checks whose [`HealthCheck::readiness`] is true |
//! | `/health` | the full report | all |
//!
//! **Aggregation.** A critical check that is unhealthy makes the service unhealthy (503). A
//! non-critical failure, or any degraded check, makes it degraded (200 by default,
//! [`HealthConfig::degraded_status`]). A timeout or a panic is an unhealthy result — never
//! healthy, never unknown.
//!
//! **Execution.** Checks run concurrently, each under its own timeout (default 1 s), so a
//! request answers within the largest timeout even when a dependency hangs forever. Reports are
//! cached for [`HealthConfig::cache_ttl`] (default 1 s) and refreshed by one run at a time:
//! a thousand probes at once cost one run. [`HealthConfig::background_refresh`] refreshes on a
//! timer instead, so probes only read.
//!
//! **Details.** Public callers see only `{"status":"pass"}`; callers sending
//! `Authorization: Bearer <token>` ([`HealthConfig::token`], `RUSTFORGE_HEALTH_TOKEN`) see every
//! check with its observed value, unit, time and output.
//!
//! Built in: [`RedisCheck`] (registered when Redis is configured), [`DiskCheck`] (when
//! `RUSTFORGE_HEALTH_DISK_PATH` is set), [`MemoryCheck`] (always, detail only), and
//! [`LatencyCheck`] (a timed round trip to any pool; [`postgres_check`] for an sqlx `PgPool`
//! with the `sqlx-postgres` feature), and [`check_fn`] for anything else. See `docs/health-checks.md` for Kubernetes probes.

mod check;
mod checks;
mod config;
#[cfg(feature = "metrics")]
mod instruments;
mod routes;
mod runner;

pub use check::{BoxFuture, CheckResult, ComponentType, HealthCheck, Observed, Status};
#[cfg(feature = "redis")]
pub use checks::RedisCheck;
#[cfg(feature = "sqlx-postgres")]
pub use checks::postgres_check;
pub use checks::{
    DiskCheck, DiskSpace, FnCheck, LatencyCheck, MemoryCheck, MemorySource, MemoryUsage, check_fn,
};
pub use config::HealthConfig;
#[cfg(feature = "metrics")]
pub(crate) use instruments::observer as instruments;
pub use routes::HEALTH_JSON;
pub use runner::{CheckReport, Health, Report};

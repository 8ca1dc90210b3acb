//! Round-trip checks for datastores: any pool through a closure, and sqlx's `PgPool`.

use std::future::Future;
use std::time::Instant;

use crate::health::{BoxFuture, CheckResult, ComponentType, HealthCheck};

/// A datastore check that times a round trip (observed: `responseTime` in ms): healthy when the
/// closure returns `Ok`, unhealthy with its message otherwise. Works with any pool — MySQL,
/// MongoDB, another HTTP service — as long as the closure reuses pooled connections.
///
/// ```
/// use rustforge_prod::health::LatencyCheck;
///
/// # #[derive(Clone)] struct Pool;
/// # impl Pool { async fn ping(&self) -> Result<(), String> { Ok(()) } }
/// let pool = Pool;
/// let check = LatencyCheck::new("mysql", move || {
///     let pool = pool.clone();
///     async move { pool.ping().await }
/// });
/// # let _ = check;
/// ```
pub struct LatencyCheck<F> {
    name: String,
    critical: bool,
    f: F,
}

impl<F> std::fmt::Debug for LatencyCheck<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyCheck")
            .field("name", &self.name)
            .field("critical", &self.critical)
            .finish_non_exhaustive()
    }
}

impl<F, Fut, E> LatencyCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    /// A check named `name` timing `f`.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        Self {
            name: name.into(),
            critical: true,
            f,
        }
    }

    /// A failure only degrades the service.
    pub fn not_critical(mut self) -> Self {
        self.critical = false;
        self
    }
}

impl<F, Fut, E> HealthCheck for LatencyCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn measurement(&self) -> &str {
        "responseTime"
    }
    fn component_type(&self) -> ComponentType {
        ComponentType::Datastore
    }
    fn critical(&self) -> bool {
        self.critical
    }
    fn check(&self) -> BoxFuture<'_, CheckResult> {
        let round_trip = (self.f)();
        Box::pin(async move {
            let start = Instant::now();
            let outcome = round_trip.await;
            let ms = (start.elapsed().as_secs_f64() * 1e6).round() / 1e3;
            match outcome {
                Ok(()) => CheckResult::healthy().observed(ms, "ms"),
                Err(err) => CheckResult::unhealthy(err.to_string()).observed(ms, "ms"),
            }
        })
    }
}

/// `SELECT 1` on an sqlx 0.8 [`PgPool`](sqlx::PgPool), named `postgres`. For another sqlx
/// version or database, use [`LatencyCheck`] with your own query.
#[cfg(feature = "sqlx-postgres")]
pub fn postgres_check(
    pool: sqlx::PgPool,
) -> LatencyCheck<impl Fn() -> BoxFuture<'static, Result<(), sqlx::Error>> + Send + Sync + 'static>
{
    LatencyCheck::new("postgres", move || {
        let pool = pool.clone();
        Box::pin(async move {
            let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
            debug_assert_eq!(one, 1);
            Ok(())
        }) as BoxFuture<'static, Result<(), sqlx::Error>>
    })
}

//! A check from any async closure.

use std::future::Future;

use crate::health::{BoxFuture, CheckResult, ComponentType, HealthCheck};

/// A [`HealthCheck`] from an async closure; build it with [`check_fn`].
pub struct FnCheck<F> {
    name: String,
    measurement: String,
    component_type: ComponentType,
    critical: bool,
    readiness: bool,
    f: F,
}

impl<F> std::fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnCheck")
            .field("name", &self.name)
            .field("measurement", &self.measurement)
            .field("component_type", &self.component_type)
            .field("critical", &self.critical)
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

/// A check named `name` that runs `f`.
///
/// ```
/// use rustforge_prod::health::{CheckResult, check_fn};
///
/// let queue = check_fn("queue", || async {
///     let depth = 12; // e.g. read from your job queue
///     if depth < 1000 { CheckResult::healthy() } else { CheckResult::degraded("backlog") }
///         .observed(depth as f64, "jobs")
/// })
/// .not_critical();
/// # let _ = queue;
/// ```
pub fn check_fn<F, Fut>(name: impl Into<String>, f: F) -> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CheckResult> + Send + 'static,
{
    FnCheck {
        name: name.into(),
        measurement: "status".to_owned(),
        component_type: ComponentType::Component,
        critical: true,
        readiness: true,
        f,
    }
}

impl<F> FnCheck<F> {
    /// A failure only degrades the service.
    pub fn not_critical(mut self) -> Self {
        self.critical = false;
        self
    }

    /// Only `/health` runs it, not `/health/ready`.
    pub fn not_for_readiness(mut self) -> Self {
        self.readiness = false;
        self
    }

    /// Sets the measurement name.
    pub fn measurement(mut self, measurement: impl Into<String>) -> Self {
        self.measurement = measurement.into();
        self
    }

    /// Sets the component type.
    pub fn component_type(mut self, component_type: ComponentType) -> Self {
        self.component_type = component_type;
        self
    }
}

impl<F, Fut> HealthCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CheckResult> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn measurement(&self) -> &str {
        &self.measurement
    }
    fn component_type(&self) -> ComponentType {
        self.component_type
    }
    fn critical(&self) -> bool {
        self.critical
    }
    fn readiness(&self) -> bool {
        self.readiness
    }
    fn check(&self) -> BoxFuture<'_, CheckResult> {
        Box::pin((self.f)())
    }
}

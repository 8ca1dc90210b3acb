//! The model: [`HealthCheck`], its [`CheckResult`] and the [`Status`] order.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::util::BoxFuture;

/// The state of one check, or of the whole service. The order is explicit:
/// `Unhealthy` beats `Degraded` beats `Healthy` — nothing unknown ever counts as healthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Works (`pass`).
    Healthy,
    /// Works, with a problem worth a look (`warn`).
    Degraded {
        /// What is wrong.
        reason: String,
    },
    /// Does not work (`fail`). Timeouts and panicking checks land here.
    Unhealthy {
        /// What is wrong.
        reason: String,
    },
}

impl Status {
    /// `pass`, `warn` or `fail`, as `application/health+json` writes it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Healthy => "pass",
            Self::Degraded { .. } => "warn",
            Self::Unhealthy { .. } => "fail",
        }
    }

    /// The reason, unless healthy.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Healthy => None,
            Self::Degraded { reason } | Self::Unhealthy { reason } => Some(reason),
        }
    }

    pub(crate) fn rank(&self) -> u8 {
        match self {
            Self::Healthy => 0,
            Self::Degraded { .. } => 1,
            Self::Unhealthy { .. } => 2,
        }
    }
}

/// What the component is, for `componentType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentType {
    /// A database, cache or object store.
    Datastore,
    /// The host: disk, memory, process.
    System,
    /// Anything else.
    Component,
}

/// A measured value and its unit (`3` `ms`, `78.5` `percent`).
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

/// The outcome of one run of a check.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    /// Healthy, degraded or unhealthy.
    pub status: Status,
    /// The measured value, when there is one.
    pub observed: Option<Observed>,
    /// Extra human-readable detail (shown even when healthy).
    pub output: Option<String>,
}

impl CheckResult {
    /// Healthy.
    pub fn healthy() -> Self {
        Self::new(Status::Healthy)
    }

    /// Degraded, for `reason`.
    pub fn degraded(reason: impl Into<String>) -> Self {
        Self::new(Status::Degraded {
            reason: reason.into(),
        })
    }

    /// Unhealthy, for `reason`.
    pub fn unhealthy(reason: impl Into<String>) -> Self {
        Self::new(Status::Unhealthy {
            reason: reason.into(),
        })
    }

    fn new(status: Status) -> Self {
        Self {
            status,
            observed: None,
            output: None,
        }
    }

    /// Adds the measured value.
    pub fn observed(mut self, value: f64, unit: &'static str) -> Self {
        self.observed = Some(Observed { value, unit });
        self
    }

    /// Adds detail text.
    pub fn output(mut self, output: impl Into<String>) -> Self {
        self.output = Some(output.into());
        self
    }
}

/// One health check. Implement it for your own dependencies, or build one from a closure with
/// [`check_fn`](super::check_fn).
///
/// The runner applies the timeout, catches panics and caches results, so `check` only has to
/// look: it should use pooled connections and never open a new client per call.
pub trait HealthCheck: Send + Sync + 'static {
    /// The component name (`redis`, `postgres`, `disk`); no colon.
    fn name(&self) -> &str;

    /// What is measured (`responseTime`, `utilization`, `status`); no colon.
    fn measurement(&self) -> &str {
        "status"
    }

    /// The component type.
    fn component_type(&self) -> ComponentType {
        ComponentType::Component
    }

    /// Whether a failure makes the service unhealthy (503) rather than degraded (default `true`).
    fn critical(&self) -> bool {
        true
    }

    /// Whether `/health/ready` runs it (default `true`); `/health` runs every check.
    fn readiness(&self) -> bool {
        true
    }

    /// Its own timeout, instead of [`HealthConfig::timeout`](super::HealthConfig::timeout).
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// Runs the check once.
    fn check(&self) -> BoxFuture<'_, CheckResult>;
}

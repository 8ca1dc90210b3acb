//! [`Health`]: runs the checks concurrently under timeouts, caches the report, and holds the
//! liveness and readiness state.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;

use super::{CheckResult, ComponentType, HealthCheck, HealthConfig, Status};
use crate::shutdown::Shutdown;

/// One check's outcome in a [`Report`].
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// Component name.
    pub name: String,
    /// Measurement name.
    pub measurement: String,
    /// Component type.
    pub component_type: ComponentType,
    /// Whether a failure makes the service unhealthy.
    pub critical: bool,
    /// Whether readiness depends on it.
    pub readiness: bool,
    /// The result (a timeout or panic is an unhealthy result).
    pub result: CheckResult,
    /// How long the check took.
    pub duration: Duration,
    /// When it finished.
    pub time: SystemTime,
}

/// The results of one run of every check.
#[derive(Clone, Debug)]
pub struct Report {
    /// Every check, in registration order.
    pub checks: Vec<CheckReport>,
    /// When the run finished.
    pub time: SystemTime,
    /// The process' uptime when the run finished.
    pub uptime: Duration,
    taken: Instant,
    /// The detailed JSON bodies, serialized once per report: every request served from the
    /// cache then costs a copy of a reference, not a serialization.
    pub(crate) bodies: [OnceLock<Bytes>; 2],
}

impl Report {
    /// The service's status over every check: any critical unhealthy check makes it unhealthy;
    /// any other failure or degradation makes it degraded.
    pub fn status(&self) -> Status {
        aggregate(self.checks.iter())
    }

    /// The status over the readiness checks only.
    pub fn readiness_status(&self) -> Status {
        aggregate(self.checks.iter().filter(|c| c.readiness))
    }
}

fn aggregate<'a>(checks: impl Iterator<Item = &'a CheckReport>) -> Status {
    let mut status = Status::Healthy;
    for check in checks {
        let effective = match &check.result.status {
            Status::Unhealthy { reason } if !check.critical => Status::Degraded {
                reason: reason.clone(),
            },
            other => other.clone(),
        };
        if effective.rank() > status.rank() {
            let reason = format!("{}: {}", check.name, effective.reason().unwrap_or_default());
            status = match effective {
                Status::Unhealthy { .. } => Status::Unhealthy { reason },
                _ => Status::Degraded { reason },
            };
        }
    }
    status
}

/// The health module's handle: cheap to clone.
///
/// ```
/// use rustforge_prod::health::{CheckResult, Health, HealthConfig, check_fn};
/// use rustforge_prod::Shutdown;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let health = Health::new(HealthConfig::default(), Shutdown::new())
///     .with_check(check_fn("queue", || async { CheckResult::healthy() }));
/// let report = health.report().await;
/// assert_eq!(report.status().as_str(), "pass");
/// assert!(health.readiness().await.0 == rustforge_prod::health::Status::Healthy);
/// # }
/// ```
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    config: HealthConfig,
    checks: Vec<Arc<dyn HealthCheck>>,
    shutdown: Shutdown,
    started: AtomicBool,
    live: AtomicBool,
    start: Instant,
    cache: Mutex<Option<Arc<Report>>>,
    run: tokio::sync::Mutex<()>,
    observer: Option<Observer>,
}

/// A copy for a handle being set up after it was cloned: same settings, checks and state, an
/// empty cache.
impl Clone for Inner {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            checks: self.checks.clone(),
            shutdown: self.shutdown.clone(),
            started: AtomicBool::new(self.started.load(Ordering::Acquire)),
            live: AtomicBool::new(self.live.load(Ordering::Acquire)),
            start: self.start,
            cache: Mutex::new(None),
            run: tokio::sync::Mutex::new(()),
            observer: self.observer.clone(),
        }
    }
}

/// Called with every fresh report (the metrics module records check status and duration).
pub(crate) type Observer = Arc<dyn Fn(&Report) + Send + Sync>;

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.inner.checks.iter().map(|c| c.name()).collect();
        f.debug_struct("Health")
            .field("checks", &names)
            .field("started", &self.inner.started.load(Ordering::Relaxed))
            .finish()
    }
}

impl Health {
    /// A handle with no checks; readiness also turns false once `shutdown` is triggered.
    pub fn new(config: HealthConfig, shutdown: Shutdown) -> Self {
        let started = !config.wait_for_startup;
        Self {
            inner: Arc::new(Inner {
                config,
                checks: Vec::new(),
                shutdown,
                started: AtomicBool::new(started),
                live: AtomicBool::new(true),
                start: Instant::now(),
                cache: Mutex::new(None),
                run: tokio::sync::Mutex::new(()),
                observer: None,
            }),
        }
    }

    /// Adds a check. On a handle that was already cloned, this returns a new handle (with the
    /// same state and an empty cache); the clones keep their checks.
    pub fn with_check(mut self, check: impl HealthCheck) -> Self {
        self.add_check(Arc::new(check));
        self
    }

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn set_observer(&mut self, observer: Observer) {
        self.inner_mut().observer = Some(observer);
    }

    pub(crate) fn add_check(&mut self, check: Arc<dyn HealthCheck>) {
        self.inner_mut().checks.push(check);
    }

    /// The state to change while setting up: this handle's own, or a copy when shared.
    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// The settings.
    pub fn config(&self) -> &HealthConfig {
        &self.inner.config
    }

    /// Declares startup work done: readiness may pass from now on (only needed with
    /// [`HealthConfig::wait_for_startup`]).
    pub fn startup_complete(&self) {
        self.inner.started.store(true, Ordering::Release);
    }

    /// Marks the process broken (`false`) so that liveness fails and the orchestrator restarts
    /// it — for a detected deadlock or corrupted state, never for a dependency outage.
    pub fn set_live(&self, live: bool) {
        self.inner.live.store(live, Ordering::Release);
    }

    /// Whether liveness passes. No I/O.
    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Time since the handle was made (the process' uptime, near enough).
    pub fn uptime(&self) -> Duration {
        self.inner.start.elapsed()
    }

    /// Readiness: unhealthy while starting or shutting down, otherwise the status of the
    /// readiness checks. Returns the report it used, if it ran checks.
    pub async fn readiness(&self) -> (Status, Option<Arc<Report>>) {
        if !self.inner.started.load(Ordering::Acquire) {
            return (
                Status::Unhealthy {
                    reason: "starting".into(),
                },
                None,
            );
        }
        if self.inner.shutdown.is_triggered() {
            return (
                Status::Unhealthy {
                    reason: "shutting down".into(),
                },
                None,
            );
        }
        let report = self.report().await;
        (report.readiness_status(), Some(report))
    }

    /// The latest report: cached for [`HealthConfig::cache_ttl`]; when stale, one caller runs
    /// the checks while concurrent callers wait for that same run.
    pub async fn report(&self) -> Arc<Report> {
        if let Some(report) = self.cached() {
            return report;
        }
        let _running = self.inner.run.lock().await;
        if let Some(report) = self.cached() {
            return report;
        }
        self.refresh().await
    }

    /// Runs every check now and caches the result.
    pub async fn refresh(&self) -> Arc<Report> {
        let report = Arc::new(self.run_checks().await);
        if let Some(observer) = &self.inner.observer {
            observer(&report);
        }
        *self
            .inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(report.clone());
        report
    }

    fn cached(&self) -> Option<Arc<Report>> {
        let cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache
            .as_ref()
            .filter(|r| r.taken.elapsed() < self.inner.config.cache_ttl)
            .cloned()
    }

    async fn run_checks(&self) -> Report {
        let default_timeout = self.inner.config.timeout;
        let runs = self.inner.checks.iter().map(|check| async move {
            let timeout = check.timeout().unwrap_or(default_timeout);
            let start = Instant::now();
            let outcome =
                tokio::time::timeout(timeout, AssertUnwindSafe(check.check()).catch_unwind()).await;
            let result = match outcome {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => CheckResult::unhealthy("the check panicked"),
                Err(_) => CheckResult::unhealthy(format!(
                    "timed out after {}",
                    humantime::format_duration(timeout)
                )),
            };
            CheckReport {
                name: check.name().to_owned(),
                measurement: check.measurement().to_owned(),
                component_type: check.component_type(),
                critical: check.critical(),
                readiness: check.readiness(),
                result,
                duration: start.elapsed(),
                time: SystemTime::now(),
            }
        });
        let checks = futures_util::future::join_all(runs).await;
        Report {
            checks,
            time: SystemTime::now(),
            uptime: self.uptime(),
            taken: Instant::now(),
            bodies: Default::default(),
        }
    }

    /// Refreshes the report every `interval` in the background until shutdown.
    pub(crate) fn spawn_background_refresh(&self, interval: Duration) {
        let health = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let stop = health.inner.shutdown.triggered();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => return,
                    _ = ticker.tick() => {
                        let _running = health.inner.run.lock().await;
                        health.refresh().await;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::check_fn;

    #[tokio::test(flavor = "current_thread")]
    async fn adding_a_check_to_a_shared_handle_copies_it_instead_of_dropping_the_check() {
        let first = Health::new(HealthConfig::default(), Shutdown::new())
            .with_check(check_fn("a", || async { CheckResult::healthy() }));
        let kept = first.clone();
        let second = first.with_check(check_fn("b", || async { CheckResult::healthy() }));
        let names = |h: &Health| {
            h.inner
                .checks
                .iter()
                .map(|c| c.name().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&kept), ["a"]);
        assert_eq!(names(&second), ["a", "b"]);
        assert_eq!(second.report().await.checks.len(), 2);
    }
}

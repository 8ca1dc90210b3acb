//! Disk space on the file system holding a path.

use std::path::PathBuf;

use crate::health::{BoxFuture, CheckResult, ComponentType, HealthCheck};

/// Used space of the file system that holds `path`, in percent (observed), from `statvfs`:
/// degraded above `warn_percent` (default 70), unhealthy above `fail_percent` (default 90).
/// Space reserved for root counts as used, as `df` shows it. Not critical and not in readiness
/// by default: a full disk degrades `/health` without taking the pod out of rotation.
#[derive(Clone, Debug)]
pub struct DiskCheck {
    path: PathBuf,
    warn_percent: f64,
    fail_percent: f64,
}

/// Free and total bytes of the file system holding `path`, as an unprivileged process sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes available to unprivileged users.
    pub available: u64,
    /// Size of the file system.
    pub total: u64,
}

impl DiskSpace {
    /// Reads it with `statvfs`.
    #[cfg(unix)]
    pub fn of(path: &std::path::Path) -> std::io::Result<Self> {
        let stat = rustix::fs::statvfs(path)?;
        Ok(Self {
            available: stat.f_bavail.saturating_mul(stat.f_frsize),
            total: stat.f_blocks.saturating_mul(stat.f_frsize),
        })
    }

    /// Not available on this platform.
    #[cfg(not(unix))]
    pub fn of(_: &std::path::Path) -> std::io::Result<Self> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "statvfs is unix-only",
        ))
    }

    /// Used space in percent of what a user can have (`df`'s `Use%`).
    pub fn used_percent(&self) -> f64 {
        used_percent(self.available, self.total)
    }
}

impl DiskCheck {
    /// Checks the file system holding `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            warn_percent: 70.0,
            fail_percent: 90.0,
        }
    }

    /// Sets the thresholds in percent used.
    pub fn thresholds(mut self, warn_percent: f64, fail_percent: f64) -> Self {
        self.warn_percent = warn_percent;
        self.fail_percent = fail_percent;
        self
    }
}

/// `100 - available / total`, in percent; an empty total counts as full.
pub(crate) fn used_percent(available: u64, total: u64) -> f64 {
    if total == 0 {
        return 100.0;
    }
    100.0 - available as f64 / total as f64 * 100.0
}

/// The result for a used percentage against two thresholds (shared by disk and memory).
pub(crate) fn threshold_result(
    what: &str,
    used_percent: f64,
    warn_percent: f64,
    fail_percent: f64,
    detail: String,
) -> CheckResult {
    let rounded = (used_percent * 100.0).round() / 100.0;
    let result = if used_percent > fail_percent {
        CheckResult::unhealthy(format!("{what} {rounded}% used, above {fail_percent}%"))
    } else if used_percent > warn_percent {
        CheckResult::degraded(format!("{what} {rounded}% used, above {warn_percent}%"))
    } else {
        CheckResult::healthy()
    };
    result.observed(rounded, "percent").output(detail)
}

impl HealthCheck for DiskCheck {
    fn name(&self) -> &str {
        "disk"
    }
    fn measurement(&self) -> &str {
        "utilization"
    }
    fn component_type(&self) -> ComponentType {
        ComponentType::System
    }
    fn critical(&self) -> bool {
        false
    }
    fn readiness(&self) -> bool {
        false
    }
    fn check(&self) -> BoxFuture<'_, CheckResult> {
        Box::pin(async move {
            let path = self.path.clone();
            match tokio::task::spawn_blocking(move || DiskSpace::of(&path)).await {
                Ok(Ok(space)) => threshold_result(
                    "disk",
                    space.used_percent(),
                    self.warn_percent,
                    self.fail_percent,
                    format!(
                        "{}: {} bytes free of {}",
                        self.path.display(),
                        space.available,
                        space.total
                    ),
                ),
                Ok(Err(err)) => CheckResult::unhealthy(format!("{}: {err}", self.path.display())),
                Err(err) => CheckResult::unhealthy(err.to_string()),
            }
        })
    }
}

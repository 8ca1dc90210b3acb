//! Disk space on the file system holding a path.

use std::path::PathBuf;

use super::utilization::{Thresholds, used_percent};
use crate::health::{BoxFuture, CheckResult, ComponentType, HealthCheck};

/// Used space of the file system that holds `path`, in percent (observed), from `statvfs`:
/// degraded above `warn_percent` (default 70), unhealthy above `fail_percent` (default 90).
/// Space reserved for root counts as used, as `df` shows it. Not critical and not in readiness
/// by default: a full disk degrades `/health` without taking the pod out of rotation.
#[derive(Clone, Debug)]
pub struct DiskCheck {
    path: PathBuf,
    thresholds: Thresholds,
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
            thresholds: Thresholds {
                warn_percent: 70.0,
                fail_percent: 90.0,
            },
        }
    }

    /// Sets the thresholds in percent used.
    pub fn thresholds(mut self, warn_percent: f64, fail_percent: f64) -> Self {
        self.thresholds = Thresholds {
            warn_percent,
            fail_percent,
        };
        self
    }
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
                Ok(Ok(space)) => self.thresholds.result(
                    "disk",
                    space.used_percent(),
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

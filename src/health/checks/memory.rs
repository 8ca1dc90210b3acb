//! Memory: the system's available memory and the process' resident set.

use crate::health::{BoxFuture, CheckResult, ComponentType, HealthCheck};

use super::utilization::{Thresholds, used_percent};

/// System memory in use, in percent (observed: `100 - MemAvailable / MemTotal`), and the
/// process' resident set size (in the output): degraded above `warn_percent` (default 90),
/// unhealthy above `fail_percent` (default 97). Linux (`/proc`) only; elsewhere it reports
/// degraded "unsupported". Not critical and not in readiness by default.
#[derive(Clone, Debug)]
pub struct MemoryCheck {
    thresholds: Thresholds,
}

impl Default for MemoryCheck {
    fn default() -> Self {
        Self {
            thresholds: Thresholds {
                warn_percent: 90.0,
                fail_percent: 97.0,
            },
        }
    }
}

/// Memory figures read from `/proc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUsage {
    /// `MemTotal`, bytes.
    pub total: u64,
    /// `MemAvailable`, bytes.
    pub available: u64,
    /// This process' resident set size, bytes.
    pub process_rss: u64,
}

impl MemoryUsage {
    /// Reads `/proc/meminfo` and `/proc/self/statm`.
    pub fn read() -> std::io::Result<Self> {
        let meminfo = std::fs::read_to_string("/proc/meminfo")?;
        let kib = |name: &str| {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|v| v * 1024)
                .ok_or_else(|| std::io::Error::other(format!("{name} missing from /proc/meminfo")))
        };
        let statm = std::fs::read_to_string("/proc/self/statm")?;
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| std::io::Error::other("unexpected /proc/self/statm"))?;
        Ok(Self {
            total: kib("MemTotal")?,
            available: kib("MemAvailable")?,
            process_rss: pages * page_size(),
        })
    }

    /// System memory in use, percent.
    pub fn used_percent(&self) -> f64 {
        used_percent(self.available, self.total)
    }
}

#[cfg(unix)]
fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

#[cfg(not(unix))]
fn page_size() -> u64 {
    4096
}

impl MemoryCheck {
    /// Sets the thresholds in percent of system memory used.
    pub fn thresholds(mut self, warn_percent: f64, fail_percent: f64) -> Self {
        self.thresholds = Thresholds {
            warn_percent,
            fail_percent,
        };
        self
    }
}

impl HealthCheck for MemoryCheck {
    fn name(&self) -> &str {
        "memory"
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
            match MemoryUsage::read() {
                Ok(m) => self.thresholds.result(
                    "memory",
                    m.used_percent(),
                    format!(
                        "{} of {} bytes available; process RSS {} bytes",
                        m.available, m.total, m.process_rss
                    ),
                ),
                Err(err) => {
                    CheckResult::degraded(format!("memory figures unsupported here: {err}"))
                }
            }
        })
    }
}

//! Memory: the system's available memory and the process' resident set.

use std::path::{Path, PathBuf};

use crate::health::{BoxFuture, CheckResult, ComponentType, HealthCheck};

use super::utilization::{Thresholds, used_percent};

/// Memory in use, in percent of the limit that applies — the container's cgroup limit when there
/// is one, else the host's memory ([`MemoryUsage`]) — and the process' resident set size (in the
/// output, with the source): degraded above `warn_percent` (default 90), unhealthy above
/// `fail_percent` (default 97). Linux only; elsewhere it reports degraded "unsupported". Not
/// critical and not in readiness by default.
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

/// Where [`MemoryUsage`] read its figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemorySource {
    /// The process' cgroup v2 limit (`memory.max`, `memory.current`, `memory.stat`): in a
    /// container, the container's memory, not the node's.
    CgroupV2,
    /// The process' cgroup v1 memory controller (`memory.limit_in_bytes`,
    /// `memory.usage_in_bytes`, `memory.stat`).
    CgroupV1,
    /// The host's `/proc/meminfo`: no cgroup memory limit applies.
    Host,
}

impl MemorySource {
    /// `cgroup v2`, `cgroup v1` or `host`, as the report shows it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::CgroupV2 => "cgroup v2",
            Self::CgroupV1 => "cgroup v1",
            Self::Host => "host",
        }
    }
}

/// Memory figures: the limit that applies to this process and what of it is available.
///
/// In a container the limit is the cgroup's (v2 `memory.max`, else v1
/// `memory.limit_in_bytes`), and "used" is the working set as the kubelet counts it (usage minus
/// inactive file cache), so the check fails before the OOM killer acts. Without a cgroup limit
/// the figures are the host's `/proc/meminfo` (`MemTotal`, `MemAvailable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryUsage {
    /// The memory limit: the cgroup's, else `MemTotal`; bytes.
    pub total: u64,
    /// What is left of it: the limit minus the working set, else `MemAvailable`; bytes.
    pub available: u64,
    /// This process' resident set size, bytes.
    pub process_rss: u64,
    /// Where the figures came from.
    pub source: MemorySource,
}

impl MemoryUsage {
    /// Reads this process' cgroup (`/proc/self/cgroup` under `/sys/fs/cgroup`), else
    /// `/proc/meminfo`, and `/proc/self/statm`.
    pub fn read() -> std::io::Result<Self> {
        Self::read_from(Path::new("/sys/fs/cgroup"), Path::new("/proc"))
    }

    /// [`read`](Self::read) with another cgroup mount and `/proc` (for tests, or a host path
    /// mounted into a sidecar).
    pub fn read_from(cgroup_root: &Path, proc_root: &Path) -> std::io::Result<Self> {
        let statm = std::fs::read_to_string(proc_root.join("self/statm"))?;
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| std::io::Error::other("unexpected /proc/self/statm"))?;
        let process_rss = pages * page_size();
        let cgroups = std::fs::read_to_string(proc_root.join("self/cgroup")).unwrap_or_default();
        let limited = cgroup_v2(cgroup_root, &cgroups)
            .map(|(total, used)| (total, used, MemorySource::CgroupV2))
            .or_else(|| {
                cgroup_v1(cgroup_root, &cgroups)
                    .map(|(total, used)| (total, used, MemorySource::CgroupV1))
            });
        if let Some((total, used, source)) = limited {
            return Ok(Self {
                total,
                available: total.saturating_sub(used),
                process_rss,
                source,
            });
        }
        let meminfo = std::fs::read_to_string(proc_root.join("meminfo"))?;
        let kib = |name: &str| {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|v| v * 1024)
                .ok_or_else(|| std::io::Error::other(format!("{name} missing from /proc/meminfo")))
        };
        Ok(Self {
            total: kib("MemTotal")?,
            available: kib("MemAvailable")?,
            process_rss,
            source: MemorySource::Host,
        })
    }

    /// Memory in use, percent of the limit.
    pub fn used_percent(&self) -> f64 {
        used_percent(self.available, self.total)
    }
}

/// The directories where the process' cgroup may be: its path under the mount (host view), or
/// the mount itself (a container's own cgroup namespace).
fn candidates(mount: &Path, path: Option<&str>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(path) = path
        .map(|p| p.trim_start_matches('/'))
        .filter(|p| !p.is_empty())
    {
        dirs.push(mount.join(path));
    }
    dirs.push(mount.to_path_buf());
    dirs
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A counter of `memory.stat` (`inactive_file`, `total_inactive_file`).
fn stat(dir: &Path, name: &str) -> u64 {
    std::fs::read_to_string(dir.join("memory.stat"))
        .ok()
        .and_then(|stat| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// (limit, working set) of the cgroup v2 the process is in, when it has a limit.
fn cgroup_v2(root: &Path, cgroups: &str) -> Option<(u64, u64)> {
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"));
    candidates(root, path).into_iter().find_map(|dir| {
        // `max`: no limit here (the host's figures apply).
        let limit = read_u64(&dir.join("memory.max"))?;
        let current = read_u64(&dir.join("memory.current"))?;
        Some((limit, current.saturating_sub(stat(&dir, "inactive_file"))))
    })
}

/// (limit, working set) of the cgroup v1 memory controller the process is in, when it has a
/// limit below the host's memory (v1 writes "no limit" as a huge number).
fn cgroup_v1(root: &Path, cgroups: &str) -> Option<(u64, u64)> {
    let path = cgroups.lines().find_map(|l| {
        let (_, rest) = l.split_once(':')?;
        let (controllers, path) = rest.split_once(':')?;
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    })?;
    candidates(&root.join("memory"), Some(path))
        .into_iter()
        .find_map(|dir| {
            let limit = read_u64(&dir.join("memory.limit_in_bytes"))?;
            if limit >= 1 << 62 {
                return None;
            }
            let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
            Some((
                limit,
                usage.saturating_sub(stat(&dir, "total_inactive_file")),
            ))
        })
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
                        "{} of {} bytes available ({}); process RSS {} bytes",
                        m.available,
                        m.total,
                        m.source.as_str(),
                        m.process_rss
                    ),
                ),
                Err(err) => {
                    CheckResult::degraded(format!("memory figures unsupported here: {err}"))
                }
            }
        })
    }
}

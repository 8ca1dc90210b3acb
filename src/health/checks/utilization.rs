//! What the disk and memory checks share: a used percentage judged against two thresholds.

use crate::health::CheckResult;

/// `100 - available / total`, in percent; an empty total counts as full.
pub(crate) fn used_percent(available: u64, total: u64) -> f64 {
    if total == 0 {
        return 100.0;
    }
    100.0 - available as f64 / total as f64 * 100.0
}

/// Degraded above `warn_percent` used, unhealthy above `fail_percent`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Thresholds {
    pub(crate) warn_percent: f64,
    pub(crate) fail_percent: f64,
}

impl Thresholds {
    /// The result for `used_percent` of `what`, observed in percent, with `detail` as output.
    pub(crate) fn result(&self, what: &str, used_percent: f64, detail: String) -> CheckResult {
        let rounded = (used_percent * 100.0).round() / 100.0;
        let result = if used_percent > self.fail_percent {
            CheckResult::unhealthy(format!(
                "{what} {rounded}% used, above {}%",
                self.fail_percent
            ))
        } else if used_percent > self.warn_percent {
            CheckResult::degraded(format!(
                "{what} {rounded}% used, above {}%",
                self.warn_percent
            ))
        } else {
            CheckResult::healthy()
        };
        result.observed(rounded, "percent").output(detail)
    }
}

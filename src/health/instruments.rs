//! The health module's instruments, recorded from each report.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Gauge, Histogram, Meter};

use super::{Report, Status};
use crate::telemetry::DURATION_BUCKETS;

/// The health module's instruments: `rustforge.health.check.status` (1 pass, 0.5 warn, 0 fail)
/// and `rustforge.health.check.duration` (s), per check.
pub(crate) fn observer(meter: &Meter) -> impl Fn(&Report) + Send + Sync + 'static {
    let status: Gauge<f64> = meter
        .f64_gauge("rustforge.health.check.status")
        .with_description("Health check status: 1 pass, 0.5 warn, 0 fail.")
        .build();
    let duration: Histogram<f64> = meter
        .f64_histogram("rustforge.health.check.duration")
        .with_unit("s")
        .with_description("Duration of health check runs.")
        .with_boundaries(DURATION_BUCKETS.to_vec())
        .build();
    move |report: &Report| {
        for check in &report.checks {
            let attributes = [
                KeyValue::new("check", check.name.clone()),
                KeyValue::new("critical", check.critical),
            ];
            let value = match check.result.status {
                Status::Healthy => 1.0,
                Status::Degraded { .. } => 0.5,
                Status::Unhealthy { .. } => 0.0,
            };
            status.record(value, &attributes);
            duration.record(check.duration.as_secs_f64(), &attributes);
        }
    }
}

//! The storage module's instruments: operations, their duration, and bytes moved, per disk.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

use super::Operation;
use super::observe::{Direction, Outcome, StorageObserver};
use crate::telemetry::DURATION_BUCKETS;

/// The storage module's instruments: `rustforge.storage.operations` per disk, operation and
/// outcome (ok, not_found, error), `rustforge.storage.operation.duration` (s) and
/// `rustforge.storage.io` (bytes) per disk and direction (read, written).
pub(crate) fn observer(meter: &Meter) -> Arc<dyn StorageObserver> {
    struct Instruments {
        operations: Counter<u64>,
        duration: Histogram<f64>,
        bytes: Counter<u64>,
    }

    impl StorageObserver for Instruments {
        fn operation(
            &self,
            disk: &str,
            operation: Operation,
            outcome: Outcome,
            elapsed: std::time::Duration,
        ) {
            let disk = KeyValue::new("disk", disk.to_owned());
            let operation = KeyValue::new("operation", operation.as_str());
            self.duration
                .record(elapsed.as_secs_f64(), &[disk.clone(), operation.clone()]);
            self.operations.add(
                1,
                &[disk, operation, KeyValue::new("outcome", outcome.as_str())],
            );
        }

        fn bytes(&self, disk: &str, direction: Direction, bytes: u64) {
            let attributes = [
                KeyValue::new("disk", disk.to_owned()),
                KeyValue::new("direction", direction.as_str()),
            ];
            self.bytes.add(bytes, &attributes);
        }
    }

    Arc::new(Instruments {
        operations: meter
            .u64_counter("rustforge.storage.operations")
            .with_description(
                "Storage operations by disk, operation and outcome (ok, not_found, error).",
            )
            .build(),
        duration: meter
            .f64_histogram("rustforge.storage.operation.duration")
            .with_unit("s")
            .with_description("Duration of storage operations (a streaming read counts until its response starts).")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
        bytes: meter
            .u64_counter("rustforge.storage.io")
            .with_unit("By")
            .with_description("Bytes read from and written to storage, by disk and direction.")
            .build(),
    })
}

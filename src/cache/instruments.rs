//! The cache's instruments: reads by result, errors by operation, loader duration.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

use super::cache::CacheObserver;
use crate::telemetry::DURATION_BUCKETS;

/// `rustforge.cache.reads` per store and result (hit, miss), `rustforge.cache.errors` per store
/// and operation, `rustforge.cache.loader.duration` (s) per store and outcome (ok, error).
pub(crate) fn observer(meter: &Meter) -> Arc<dyn CacheObserver> {
    struct Instruments {
        reads: Counter<u64>,
        errors: Counter<u64>,
        loader: Histogram<f64>,
    }

    impl CacheObserver for Instruments {
        fn read(&self, store: &'static str, hit: bool) {
            let result = if hit { "hit" } else { "miss" };
            let attributes = [
                KeyValue::new("store", store),
                KeyValue::new("result", result),
            ];
            self.reads.add(1, &attributes);
        }

        fn error(&self, store: &'static str, operation: &'static str) {
            let attributes = [
                KeyValue::new("store", store),
                KeyValue::new("operation", operation),
            ];
            self.errors.add(1, &attributes);
        }

        fn loaded(&self, store: &'static str, elapsed: Duration, ok: bool) {
            let outcome = if ok { "ok" } else { "error" };
            let attributes = [
                KeyValue::new("store", store),
                KeyValue::new("outcome", outcome),
            ];
            self.loader.record(elapsed.as_secs_f64(), &attributes);
        }
    }

    Arc::new(Instruments {
        reads: meter
            .u64_counter("rustforge.cache.reads")
            .with_description("Cache reads by store and result (hit, miss; a failed read is a miss).")
            .build(),
        errors: meter
            .u64_counter("rustforge.cache.errors")
            .with_description("Failed cache operations by store and operation (get, put, add, forget, increment, lock, unlock, tags, flush, decode).")
            .build(),
        loader: meter
            .f64_histogram("rustforge.cache.loader.duration")
            .with_unit("s")
            .with_description("Duration of `remember` loaders by store and outcome.")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
    })
}

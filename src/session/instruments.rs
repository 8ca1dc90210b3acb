//! The session store's instruments: the duration of every store call by operation and
//! outcome (its count is the number of loads, saves and errors), and the extensions of
//! unchanged sessions.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

use super::store::SessionObserver;
use crate::telemetry::DURATION_BUCKETS;

/// `rustforge.session.store.duration` (s) per store, operation (`load`, `create`, `save`,
/// `delete`) and outcome (`ok`, `error`); `rustforge.session.extensions` per store.
pub(crate) fn observer(meter: &Meter) -> Arc<dyn SessionObserver> {
    struct Instruments {
        duration: Histogram<f64>,
        extensions: Counter<u64>,
    }

    impl SessionObserver for Instruments {
        fn operation(
            &self,
            store: &'static str,
            operation: &'static str,
            took: Duration,
            ok: bool,
        ) {
            let attributes = [
                KeyValue::new("store", store),
                KeyValue::new("operation", operation),
                KeyValue::new("outcome", if ok { "ok" } else { "error" }),
            ];
            self.duration.record(took.as_secs_f64(), &attributes);
        }

        fn extended(&self, store: &'static str) {
            self.extensions.add(1, &[KeyValue::new("store", store)]);
        }
    }

    Arc::new(Instruments {
        duration: meter
            .f64_histogram("rustforge.session.store.duration")
            .with_unit("s")
            .with_description("Session store calls by store, operation (load, create, save, delete) and outcome (ok, error).")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
        extensions: meter
            .u64_counter("rustforge.session.extensions")
            .with_description("Unchanged sessions whose expiry a read extended, by store.")
            .build(),
    })
}

//! The pool's instruments, named as the OpenTelemetry database semantic conventions name them
//! (`db.client.connection.*`, v1.44) — but one: the count of connections by state keeps its
//! semconv 1.24 name, `db.client.connections.usage`. Its current name,
//! `db.client.connection.count`, ends in `_count` in Prometheus, a suffix Prometheus reserves
//! for histograms and summaries; promtool rejects it and PromQL tooling misreads it.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, UpDownCounter};

use super::Database;
use super::observed::PoolObserver;
use crate::telemetry::DURATION_BUCKETS;

/// `db.client.connections.usage` per state (idle, used), `db.client.connection.max`,
/// `db.client.connection.idle.min`, `db.client.connection.pending_requests`,
/// `db.client.connection.timeouts` and `db.client.connection.wait_time` (s), each with
/// `db.client.connection.pool.name`; `db.client.operation.duration` (s) with
/// `db.system.name`, `db.operation.name` and, on failure, `error.type`.
pub(crate) fn instruments(
    meter: &Meter,
    database: Database,
    name: &str,
    max: u32,
    min: u32,
) -> Database {
    let pool_name = KeyValue::new("db.client.connection.pool.name", name.to_owned());
    let pool = database.pool().clone();
    let attribute = pool_name.clone();
    meter
        .i64_observable_up_down_counter("db.client.connections.usage")
        .with_unit("{connection}")
        .with_description("Connections of the pool, by state (idle, used).")
        .with_callback(move |o| {
            let (size, idle) = (i64::from(pool.size()), pool.num_idle() as i64);
            for (state, n) in [("idle", idle), ("used", (size - idle).max(0))] {
                let state = KeyValue::new("db.client.connection.state", state);
                o.observe(n, &[attribute.clone(), state]);
            }
        })
        .build();
    for (instrument, value, description) in [
        (
            "db.client.connection.max",
            max,
            "The most connections the pool opens.",
        ),
        (
            "db.client.connection.idle.min",
            min,
            "Connections the pool keeps open when idle.",
        ),
    ] {
        let attribute = pool_name.clone();
        meter
            .i64_observable_up_down_counter(instrument)
            .with_unit("{connection}")
            .with_description(description)
            .with_callback(move |o| o.observe(i64::from(value), std::slice::from_ref(&attribute)))
            .build();
    }

    struct Instruments {
        pool_name: [KeyValue; 1],
        pending: UpDownCounter<i64>,
        timeouts: Counter<u64>,
        wait: Histogram<f64>,
        operations: Histogram<f64>,
    }

    impl PoolObserver for Instruments {
        fn waiting(&self) {
            self.pending.add(1, &self.pool_name);
        }

        fn acquired(&self, waited: Duration, timed_out: bool) {
            self.pending.add(-1, &self.pool_name);
            self.wait.record(waited.as_secs_f64(), &self.pool_name);
            if timed_out {
                self.timeouts.add(1, &self.pool_name);
            }
        }

        fn query(&self, operation: &'static str, took: Duration, error: Option<&'static str>) {
            let mut attributes = vec![
                KeyValue::new("db.system.name", "postgresql"),
                KeyValue::new("db.operation.name", operation),
            ];
            if let Some(error) = error {
                attributes.push(KeyValue::new("error.type", error));
            }
            self.operations.record(took.as_secs_f64(), &attributes);
        }
    }

    database.with_observer(Arc::new(Instruments {
        pool_name: [pool_name],
        pending: meter
            .i64_up_down_counter("db.client.connection.pending_requests")
            .with_unit("{request}")
            .with_description("Callers waiting for a connection.")
            .build(),
        timeouts: meter
            .u64_counter("db.client.connection.timeouts")
            .with_unit("{timeout}")
            .with_description("Acquisitions that gave up after the acquire timeout.")
            .build(),
        wait: meter
            .f64_histogram("db.client.connection.wait_time")
            .with_unit("s")
            .with_description("Time to obtain a connection from the pool.")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
        operations: meter
            .f64_histogram("db.client.operation.duration")
            .with_unit("s")
            .with_description(
                "Duration of queries, by operation (SELECT, INSERT, …) and error type.",
            )
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
    }))
}

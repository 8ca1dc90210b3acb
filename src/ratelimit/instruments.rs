//! The rate limiter's instruments: decisions per limiter, and the store's failure handling.

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use super::RateLimitLayer;

/// The rate limiter's instruments: `rustforge.ratelimit.decisions` per limiter, outcome and
/// source, and the store's failure handling (`rustforge.ratelimit.backend.errors`,
/// `rustforge.ratelimit.failure.decisions` per policy, `rustforge.ratelimit.breaker.open`).
pub(crate) fn observe(meter: &Meter, layer: RateLimitLayer) -> RateLimitLayer {
    let store = layer.store().clone();
    let errors = store.clone();
    meter
        .u64_observable_counter("rustforge.ratelimit.backend.errors")
        .with_description("Rate-limit store errors and timeouts.")
        .with_callback(move |o| o.observe(errors.stats().errors, &[]))
        .build();
    let failures = store.clone();
    meter
        .u64_observable_counter("rustforge.ratelimit.failure.decisions")
        .with_description(
            "Checks decided by the failure policy while the store failed (fallback, fail_open, fail_closed).",
        )
        .with_callback(move |o| {
            let s = failures.stats();
            for (policy, n) in [
                ("fallback", s.fallbacks),
                ("fail_open", s.fail_open),
                ("fail_closed", s.fail_closed),
            ] {
                o.observe(n, &[KeyValue::new("policy", policy)]);
            }
        })
        .build();
    meter
        .u64_observable_gauge("rustforge.ratelimit.breaker.open")
        .with_description("1 while the circuit breaker skips the rate-limit store, else 0.")
        .with_callback(move |o| o.observe(u64::from(store.stats().breaker_open), &[]))
        .build();
    let decisions = meter
        .u64_counter("rustforge.ratelimit.decisions")
        .with_description(
            "Rate-limit decisions by limiter, outcome (allowed, limited) and source (memory, redis, deny_cache, fallback, fail_open).",
        )
        .build();
    layer.with_observer(move |limiter, decision| {
        decisions.add(
            1,
            &[
                KeyValue::new("limiter", limiter.to_owned()),
                KeyValue::new(
                    "outcome",
                    if decision.allowed {
                        "allowed"
                    } else {
                        "limited"
                    },
                ),
                KeyValue::new("source", decision.source.as_str()),
            ],
        );
    })
}

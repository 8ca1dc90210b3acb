//! Span ids: random, except for the request span, which takes the request's own.

use std::cell::Cell;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

thread_local! {
    /// Ids for the next span the SDK starts on this thread: the request's [`TraceContext`](crate::telemetry::TraceContext).
    static NEXT_IDS: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// Random ids, except for the request span, which takes the ids of the request's
/// [`TraceContext`](crate::telemetry::TraceContext) — the ones already in its log lines and passed to downstream calls. The
/// SDK has no other way to start a span with given ids.
#[derive(Debug)]
pub(super) struct RequestIds;

impl IdGenerator for RequestIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_IDS
            .with(|ids| ids.get().map(|(trace, _)| trace))
            .unwrap_or_else(|| RandomIdGenerator::default().new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_IDS
            .with(|ids| ids.get().map(|(_, span)| span))
            .unwrap_or_else(|| RandomIdGenerator::default().new_span_id())
    }
}

/// Runs `start` (which starts a span on this thread) with `(trace, span)` as the ids the SDK
/// hands out.
#[cfg(feature = "middleware")]
pub(super) fn with_ids<T>(ids: (TraceId, SpanId), start: impl FnOnce() -> T) -> T {
    NEXT_IDS.with(|next| next.set(Some(ids)));
    let started = start();
    NEXT_IDS.with(|next| next.set(None));
    started
}

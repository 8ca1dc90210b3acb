//! The broadcaster's instruments, per app: connections, frames, slow consumers, refusals, and
//! with Redis the events exchanged with the other servers.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use super::bus::BusStats;
use super::history::ResumeFailure;
use super::{Broadcaster, Stats};

/// The broadcaster's instruments, per app: `rustforge.broadcast.connections` (gauge),
/// `rustforge.broadcast.messages` (frames in from clients / out to clients),
/// `rustforge.broadcast.slow_consumers` (closed with 4100) and
/// `rustforge.broadcast.refused_connections` (over a connection limit).
pub(crate) fn observe(meter: &Meter, broadcaster: &Broadcaster) {
    let b = broadcaster.clone();
    meter
        .u64_observable_gauge("rustforge.broadcast.connections")
        .with_description("Open WebSocket connections, per app.")
        .with_callback(move |o| {
            for hub in b.hubs() {
                let app = [KeyValue::new("app", hub.app.id.clone())];
                o.observe(hub.stats.connections.load(Relaxed), &app);
            }
        })
        .build();
    let b = broadcaster.clone();
    meter
        .u64_observable_counter("rustforge.broadcast.messages")
        .with_description(
            "Protocol frames received from clients (in) and queued to clients (out), per app.",
        )
        .with_callback(move |o| {
            for hub in b.hubs() {
                for (direction, n) in [
                    ("in", hub.stats.messages_in.load(Relaxed)),
                    ("out", hub.stats.messages_out.load(Relaxed)),
                ] {
                    let attributes = [
                        KeyValue::new("app", hub.app.id.clone()),
                        KeyValue::new("direction", direction),
                    ];
                    o.observe(n, &attributes);
                }
            }
        })
        .build();
    // A counter per app read from one field of the hub's stats.
    let per_app =
        |name: &'static str, description: &'static str, field: fn(&Stats) -> &AtomicU64| {
            let b = broadcaster.clone();
            meter
                .u64_observable_counter(name)
                .with_description(description)
                .with_callback(move |o| {
                    for hub in b.hubs() {
                        let app = [KeyValue::new("app", hub.app.id.clone())];
                        o.observe(field(&hub.stats).load(Relaxed), &app);
                    }
                })
                .build();
        };
    per_app(
        "rustforge.broadcast.slow_consumers",
        "Connections closed (4100) because their send queue was full.",
        |s| &s.slow_consumers,
    );
    per_app(
        "rustforge.broadcast.refused_connections",
        "Connections refused (4100) over the per-app or per-IP limit.",
        |s| &s.refused_connections,
    );
    per_app(
        "rustforge.broadcast.recovery.replayed",
        "Events sent again to clients that resumed a subscription (connection recovery).",
        |s| &s.replayed,
    );
    let b = broadcaster.clone();
    meter
        .u64_observable_counter("rustforge.broadcast.recovery.resumes")
        .with_description(
            "Subscriptions that asked to resume from a position: resumed with every missed event, or failed with the reason sent in pusher:resume_failed, per app.",
        )
        .with_callback(move |o| {
            for hub in b.hubs() {
                let failures = ResumeFailure::ALL
                    .iter()
                    .zip(&hub.stats.resume_failures)
                    .map(|(f, n)| (f.reason(), n));
                for (outcome, n) in std::iter::once(("resumed", &hub.stats.resumed)).chain(failures)
                {
                    let attributes = [
                        KeyValue::new("app", hub.app.id.clone()),
                        KeyValue::new("outcome", outcome),
                    ];
                    o.observe(n.load(Relaxed), &attributes);
                }
            }
        })
        .build();
    // Gauges of this server's history, per app: (events, bytes).
    for (name, description, part) in [
        (
            "rustforge.broadcast.recovery.history.events",
            "Events kept on this server for connection recovery, per app.",
            0,
        ),
        (
            "rustforge.broadcast.recovery.history.bytes",
            "Bytes of the events kept on this server for connection recovery, per app.",
            1,
        ),
    ] {
        let b = broadcaster.clone();
        meter
            .u64_observable_gauge(name)
            .with_description(description)
            .with_callback(move |o| {
                for hub in b.hubs() {
                    let (events, bytes) = hub.history_size();
                    let n = if part == 0 { events } else { bytes };
                    o.observe(n as u64, &[KeyValue::new("app", hub.app.id.clone())]);
                }
            })
            .build();
    }
    // A distributed bus (Redis) also counts what it exchanges with the other servers.
    if broadcaster.hub().bus().stats().is_some() {
        // A counter or gauge read from one field of the bus's stats.
        let bus_stat = |name: &'static str,
                        description: &'static str,
                        gauge: bool,
                        field: fn(&BusStats) -> u64| {
            let b = broadcaster.clone();
            let callback = move |o: &dyn opentelemetry::metrics::AsyncInstrument<u64>| {
                if let Some(stats) = b.hub().bus().stats() {
                    o.observe(field(&stats), &[]);
                }
            };
            if gauge {
                meter
                    .u64_observable_gauge(name)
                    .with_description(description)
                    .with_callback(callback)
                    .build();
            } else {
                meter
                    .u64_observable_counter(name)
                    .with_description(description)
                    .with_callback(callback)
                    .build();
            }
        };
        let b = broadcaster.clone();
        meter
            .u64_observable_counter("rustforge.broadcast.redis.events")
            .with_description(
                "Events exchanged with the other servers through Redis: published, received, lost (dropped past the hold bounds, or the publish queue was full), missed (another server's events that never arrived, told by a gap in their sequence numbers).",
            )
            .with_callback(move |o| {
                let Some(s) = b.hub().bus().stats() else {
                    return;
                };
                for (outcome, n) in [
                    ("published", s.published),
                    ("received", s.received),
                    ("lost", s.lost),
                    ("missed", s.missed),
                ] {
                    o.observe(n, &[KeyValue::new("outcome", outcome)]);
                }
            })
            .build();
        bus_stat(
            "rustforge.broadcast.redis.reconnects",
            "Times the Redis pub/sub connection was re-established and resubscribed.",
            false,
            |s| s.reconnects,
        );
        bus_stat(
            "rustforge.broadcast.redis.pending",
            "Presence and subscription writes that failed and wait to be retried.",
            true,
            |s| s.pending,
        );
        bus_stat(
            "rustforge.broadcast.redis.held",
            "Events for the other servers held while Redis cannot take them; published in order once it is back.",
            true,
            |s| s.held,
        );
        bus_stat(
            "rustforge.broadcast.redis.reaped_servers",
            "Servers found dead (no heartbeat) whose presence members were removed.",
            false,
            |s| s.reaped_nodes,
        );
        bus_stat(
            "rustforge.broadcast.redis.reaped_self",
            "Times this server found the others had taken it for dead (frozen, or cut off from Redis longer than the node timeout) and wrote its presence back.",
            false,
            |s| s.reaped_self,
        );
    }
    #[cfg(feature = "webhooks")]
    {
        let b = broadcaster.clone();
        meter
            .u64_observable_counter("rustforge.broadcast.webhooks")
            .with_description(
                "Webhook events sent, failed after retries, or dropped on a full queue, per app.",
            )
            .with_callback(move |o| {
                for hub in b.hubs() {
                    let Some(webhooks) = &hub.webhooks else {
                        continue;
                    };
                    let s = &webhooks.stats;
                    for (outcome, n) in [
                        ("sent", s.sent.load(Relaxed)),
                        ("failed", s.failed.load(Relaxed)),
                        ("dropped", s.dropped.load(Relaxed)),
                    ] {
                        let attributes = [
                            KeyValue::new("app", hub.app.id.clone()),
                            KeyValue::new("outcome", outcome),
                        ];
                        o.observe(n, &attributes);
                    }
                }
            })
            .build();
    }
}

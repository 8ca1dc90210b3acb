//! The broadcaster's instruments, per app: connections, frames, slow consumers, refusals, and
//! with Redis the events exchanged with the other servers.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

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
    #[cfg(feature = "redis")]
    if let Some(cluster) = broadcaster.hub().cluster().cloned() {
        let events = cluster.clone();
        meter
            .u64_observable_counter("rustforge.broadcast.redis.events")
            .with_description(
                "Events exchanged with the other servers through Redis: published, received, lost (could not be published).",
            )
            .with_callback(move |o| {
                let s = &events.stats;
                for (outcome, n) in [
                    ("published", s.published.load(Relaxed)),
                    ("received", s.received.load(Relaxed)),
                    ("lost", s.lost.load(Relaxed)),
                ] {
                    o.observe(n, &[KeyValue::new("outcome", outcome)]);
                }
            })
            .build();
        let c = cluster.clone();
        meter
            .u64_observable_counter("rustforge.broadcast.redis.reconnects")
            .with_description(
                "Times the Redis pub/sub connection was re-established and resubscribed.",
            )
            .with_callback(move |o| {
                o.observe(c.stats.reconnects.load(Relaxed), &[]);
            })
            .build();
        let c = cluster.clone();
        meter
            .u64_observable_gauge("rustforge.broadcast.redis.pending")
            .with_description(
                "Presence and subscription writes that failed and wait to be retried.",
            )
            .with_callback(move |o| {
                o.observe(c.pending() as u64, &[]);
            })
            .build();
        let c = cluster;
        meter
            .u64_observable_counter("rustforge.broadcast.redis.reaped_servers")
            .with_description(
                "Servers found dead (no heartbeat) whose presence members were removed.",
            )
            .with_callback(move |o| {
                o.observe(c.stats.reaped_nodes.load(Relaxed), &[]);
            })
            .build();
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

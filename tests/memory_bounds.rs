//! The in-process stores' byte bounds: far more bytes written than the bound, and the store
//! holds at most the bound while the process' resident memory stays far below what was
//! written — and the broadcaster's history for connection recovery. Alone in its test binary:
//! the resident set is the whole process'.

use std::time::Duration;

use rustforge_prod::broadcast::{AppConfig, BroadcastConfig, Broadcaster};
use rustforge_prod::cache::{self, Cache};
use rustforge_prod::session::{self, SessionStore};
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};

const MIB: u64 = 1 << 20;

/// The resident set size of this process (`VmRSS`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

#[tokio::test]
async fn values_far_beyond_the_byte_bound_keep_memory_bounded() {
    let bound = 16 * MIB;

    // The cache: 160 values of 1 MiB into a 16 MiB store.
    let store = cache::MemoryStore::bounded(100_000, bound);
    let cache = Cache::new(store.clone());
    let value = "x".repeat(MIB as usize - 64);
    let before = rss();
    for i in 0..160 {
        cache.put(&format!("k{i}"), &value, None).await.unwrap();
    }
    store.run_pending_tasks().await;
    assert!(
        store.weighted_size() <= bound,
        "the cache holds {} bytes",
        store.weighted_size()
    );
    let grown = rss().saturating_sub(before);
    eprintln!(
        "cache: 160 MiB written, the process grew by {} MiB",
        grown / MIB
    );
    assert!(
        grown < 96 * MIB,
        "160 MiB written into a 16 MiB cache grew the process by {} MiB",
        grown / MIB
    );

    // Sessions: 2,500 sessions of 60 KB (150 MB) into a 16 MiB session store.
    let sessions =
        session::MemoryStore::bounded(100_000, bound, 64 * 1024, Duration::from_secs(3600));
    let blob = serde_json::Value::from("s".repeat(60_000));
    let before = rss();
    for _ in 0..2_500 {
        let mut record = Record {
            id: Id::default(),
            data: [("blob".to_owned(), blob.clone())].into_iter().collect(),
            expiry_date: OffsetDateTime::now_utc()
                + tower_sessions::cookie::time::Duration::hours(1),
        };
        sessions.create(&mut record).await.unwrap();
    }
    sessions.run_pending_tasks().await;
    assert!(
        sessions.weighted_size() <= bound,
        "the session store holds {} bytes",
        sessions.weighted_size()
    );
    let grown = rss().saturating_sub(before);
    eprintln!(
        "sessions: 150 MB written, the process grew by {} MiB",
        grown / MIB
    );
    assert!(
        grown < 96 * MIB,
        "150 MB of sessions into a 16 MiB store grew the process by {} MiB",
        grown / MIB
    );

    // Connection recovery: 100 events of 1 KB on each of 10,000 private channels (1 GB) into
    // the default 64 MiB history; every channel keeps its newest events, the oldest go first.
    let broadcaster = Broadcaster::new(
        BroadcastConfig::default().app(AppConfig::new("1", "key", "secret")),
        None,
    )
    .unwrap();
    let data = serde_json::Value::from("h".repeat(1_000));
    let before = rss();
    for round in 0..100 {
        for channel in 0..10_000 {
            let name = format!("private-c{channel}");
            broadcaster
                .publish([name.as_str()], "e", &data)
                .await
                .unwrap();
        }
        if round == 0 {
            // One event each: all kept.
            let page = broadcaster.history("private-c0", 100, None).await.unwrap();
            assert_eq!(page.events.len(), 1);
        }
    }
    let newest = broadcaster
        .history("private-c9999", 100, None)
        .await
        .unwrap();
    assert!(
        !newest.events.is_empty(),
        "the newest channel keeps its events"
    );
    let grown = rss().saturating_sub(before);
    eprintln!(
        "recovery: 1 GB of events on 10,000 channels, the process grew by {} MiB",
        grown / MIB
    );
    assert!(
        grown < 128 * MIB,
        "1 GB of events into a 64 MiB history grew the process by {} MiB",
        grown / MIB
    );
}

//! The rate-limit stores: one conformance suite (src/testing/ratelimit.rs) against the memory
//! store, a real Redis and a real 3-master Redis Cluster; Redis TTLs and key layout; the memory
//! store's bound.

mod support;

use std::time::Duration;

use rustforge_prod::ratelimit::{Algorithm, Limit, ManualClock, MemoryStore, RedisStore, Store};
use rustforge_prod::redis::{RedisConfig, RedisHandle};
use rustforge_prod::testing::ratelimit::store_conformance;
use support::redis::{RedisCluster, RedisServer, raw_command, shared_or_spawn};

fn prefix(test: &str) -> String {
    format!("rl-{test}-{}", std::process::id())
}

/// A Redis store with a timeout generous enough for a loaded CI box: these tests are about
/// semantics, the fault tests are about timeouts.
fn redis_store(url: String, test: &str) -> RedisStore {
    let handle = RedisHandle::connect(&RedisConfig::new(url).prefix(prefix(test))).unwrap();
    RedisStore::new(handle).timeout(Duration::from_secs(2))
}

#[tokio::test]
async fn memory_store_conforms() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    store_conformance(&store, &|by| clock.advance(by), "memory").await;
}

#[tokio::test]
async fn redis_store_conforms() {
    let (_server, url) = shared_or_spawn();
    let store = redis_store(url, "single");
    store_conformance(&store, &|by| store.advance_clock(by), "single").await;
    assert_eq!(store.stats().errors, 0, "{:?}", store.stats());
}

#[tokio::test]
async fn redis_cluster_store_conforms() {
    let cluster = RedisCluster::start();
    let store = redis_store(cluster.url(), "cluster");
    store_conformance(&store, &|by| store.advance_clock(by), "cluster").await;
    assert_eq!(store.stats().errors, 0, "{:?}", store.stats());
}

#[tokio::test]
async fn every_redis_key_has_a_ttl_and_one_hash_tag() {
    let server = RedisServer::start();
    let port = server.port();
    let store = redis_store(server.url(), "ttl").deny_cache(0);
    let key = "api:ip:203.0.113.9";
    for algorithm in [
        Algorithm::Gcra,
        Algorithm::SlidingWindow,
        Algorithm::FixedWindow,
        Algorithm::SlidingLog,
    ] {
        let limits = [
            Limit::per_minute(10).algorithm(algorithm),
            Limit::per_hour(100).algorithm(algorithm),
        ];
        assert!(store.check(key, &limits, 1).await.unwrap().allowed);
        let mut tags = Vec::new();
        for limit in &limits {
            let redis_key = store.redis_key(key, limit);
            let ttl: i64 = raw_command(port, &format!("PTTL {redis_key}"))
                .unwrap()
                .trim_start_matches(':')
                .parse()
                .unwrap();
            let max = 2 * limit.period().as_millis() as i64;
            assert!(
                ttl > 0 && ttl <= max,
                "{algorithm}: {redis_key} has PTTL {ttl}"
            );
            tags.push(redis_key[..=redis_key.find('}').unwrap()].to_owned());
        }
        assert_eq!(tags[0], tags[1], "all limits of a key share one hash slot");
        assert!(tags[0].starts_with(&format!("{{{}:rl:", prefix("ttl"))));
    }
    // Keys with `{`/`}` cannot break out of the hash tag.
    let hostile = "h:{evil}";
    let limits = [Limit::per_minute(1)];
    let redis_key = store.redis_key(hostile, &limits[0]);
    let opening = redis_key.chars().filter(|c| *c == '{').count();
    assert_eq!(opening, 1, "{redis_key}");
    let decision = store.check(hostile, &limits, 1).await.unwrap();
    assert!(decision.allowed);
}

#[tokio::test]
async fn memory_store_stays_bounded_under_a_key_scan() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone()).max_keys(6_400);
    let limits = [Limit::per_minute(10)];
    for i in 0..100_000u32 {
        store.check_now(&format!("scan:{i}"), &limits, 1).unwrap();
    }
    assert!(store.len() <= store.capacity(), "{} keys", store.len());
    assert!(store.len() > store.capacity() / 2, "eviction went too far");
    // Idle keys are dropped once their state is back to fresh (GCRA: 6 s for one request).
    clock.advance(Duration::from_secs(7));
    store.check_now("one-more", &limits, 1).unwrap();
    for i in 0..64 * 4 {
        store.check_now(&format!("sweep:{i}"), &limits, 1).unwrap();
    }
    assert!(store.len() < 1_000, "idle keys kept: {}", store.len());
    // A live key under the bound keeps its count.
    let hot = [Limit::per_hour(2)];
    assert!(store.check_now("hot", &hot, 2).unwrap().allowed);
    assert!(!store.check_now("hot", &hot, 1).unwrap().allowed);
}

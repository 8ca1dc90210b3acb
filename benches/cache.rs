//! The cost of the cache over its backends, and `remember` under a stampede.
//!
//! ```sh
//! cargo bench --bench cache --features redis     # spawns its own redis-server
//! ```
//!
//! 1. Redis: `Cache::get` of a small struct against a raw `GET` on the same pool
//!    (`RedisHandle::query`) plus the same serde decode — the same work by hand — and, for scale,
//!    a `GET` on a bb8-redis pool; 64 concurrent readers, rounds interleaved.
//! 2. In process: `Cache::get` on the memory store against moka directly, configured the same
//!    (bounded, a TTL per entry): `get` of the same bytes plus the same decode; one reader.
//! 3. `remember` with 1,000 concurrent misses of one key on two "servers" (two caches on one
//!    Redis, each with its own pool): loader runs per server, with and without the remember lock.
//! 4. Redis: `flexible` in its stale window (a refresh in progress, as while a slow loader runs)
//!    against a plain `Cache::get` hit of the same value; 64 concurrent readers.
//! 5. Redis: `Cache::flush` of a cache of `BENCH_FLUSH_KEYS` entries — until they are out of
//!    reach — against removing them key by key (the store's `SCAN` + `UNLINK` walk, which is
//!    what `flush` did before generations, and what its background task still does after).
//!
//! Settings: `BENCH_ROUNDS` (default 5), `BENCH_SECS` per Redis run (default 2),
//! `BENCH_CONCURRENCY` (default 64), `BENCH_OPS` per memory run (default 1,000,000),
//! `BENCH_FLUSH_KEYS` (default 100,000).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Redis, env, median, runtime, throughput};
use rustforge_prod::cache::{Cache, MemoryStore, RedisStore};
use rustforge_prod::redis::{RedisConfig, RedisHandle};
use serde::{Deserialize, Serialize};

/// A typical cached value: a small record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    email: String,
    roles: Vec<String>,
}

fn profile() -> Profile {
    Profile {
        id: 42,
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        roles: vec!["admin".into(), "editor".into()],
    }
}

/// The stored form of the value, as the crate writes it (`v1:` + JSON).
fn stored() -> Vec<u8> {
    let mut bytes = b"v1:".to_vec();
    bytes.extend(serde_json::to_vec(&profile()).unwrap());
    bytes
}

async fn redis_get(redis: &Redis) {
    let (rounds, secs, concurrency) = (
        env("BENCH_ROUNDS", 5),
        env("BENCH_SECS", 2),
        env("BENCH_CONCURRENCY", 64),
    );
    let handle = RedisHandle::connect(&RedisConfig::new(redis.url()).prefix("bench")).unwrap();
    let cache = Cache::new(RedisStore::new(handle.clone()));
    cache.put("profile", &profile(), None).await.unwrap();
    let manager = bb8_redis::RedisConnectionManager::new(redis.url()).unwrap();
    let pool = bb8::Pool::builder()
        .max_size(RedisConfig::default().pool_size)
        .build(manager)
        .await
        .unwrap();
    let raw_key = "bench:cache:profile";
    {
        let mut conn = pool.get().await.unwrap();
        let stored: Vec<u8> = redis::cmd("GET")
            .arg(raw_key)
            .query_async(&mut *conn)
            .await
            .unwrap();
        assert_eq!(
            stored,
            self::stored(),
            "the crate stores the documented encoding"
        );
    }
    let through_crate = {
        let cache = cache.clone();
        move || {
            let cache = cache.clone();
            async move {
                let value: Option<Profile> = cache.get("profile").await;
                assert!(value.is_some());
            }
        }
    };
    let same_pool = {
        let handle = handle.clone();
        move || {
            let handle = handle.clone();
            async move {
                let bytes: Option<Vec<u8>> =
                    handle.query(redis::cmd("GET").arg(raw_key)).await.unwrap();
                let value: Profile = serde_json::from_slice(&bytes.unwrap()[3..]).unwrap();
                std::hint::black_box(value);
            }
        }
    };
    let raw = {
        let pool = pool.clone();
        move || {
            let pool = pool.clone();
            async move {
                let mut conn = pool.get().await.unwrap();
                let bytes: Vec<u8> = redis::cmd("GET")
                    .arg(raw_key)
                    .query_async(&mut *conn)
                    .await
                    .unwrap();
                let value: Profile = serde_json::from_slice(&bytes[3..]).unwrap();
                std::hint::black_box(value);
            }
        }
    };
    throughput(concurrency, 1, same_pool.clone()).await;
    throughput(concurrency, 1, through_crate.clone()).await;
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(throughput(concurrency, secs, same_pool.clone()).await);
        b.push(throughput(concurrency, secs, through_crate.clone()).await);
        c.push(throughput(concurrency, secs, raw.clone()).await);
    }
    let (same, crate_, bb8) = (median(&mut a), median(&mut b), median(&mut c));
    println!("\n### Redis `get` ({concurrency} concurrent readers, {rounds} rounds × {secs} s)\n");
    println!("| path | gets/s (median) | ratio |");
    println!("|---|---:|---:|");
    println!(
        "| raw `GET` on the same pool (`RedisHandle::query`) + serde decode | {same:.0} | 1.00 |"
    );
    println!(
        "| `Cache::get` (RedisStore) | {crate_:.0} | {:.2} |",
        crate_ / same
    );
    println!(
        "| raw `GET` on a bb8-redis pool + serde decode (for scale) | {bb8:.0} | {:.2} |",
        bb8 / same
    );
}

fn memory_get() {
    let (rounds, ops) = (env("BENCH_ROUNDS", 5), env("BENCH_OPS", 1_000_000));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = Cache::new(MemoryStore::new(100_000));
        let moka: moka::future::Cache<String, Bytes> = moka::future::Cache::builder()
            .max_capacity(100_000)
            .expire_after(Ttl)
            .build();
        for i in 0..1000 {
            let ttl = Some(Duration::from_secs(3600));
            cache
                .put(&format!("profile:{i}"), &profile(), ttl)
                .await
                .unwrap();
            moka.insert(format!("cache:profile:{i}"), Bytes::from(stored()))
                .await;
        }
        let keys: Vec<String> = (0..1000).map(|i| format!("profile:{i}")).collect();
        let moka_keys: Vec<String> = keys.iter().map(|k| format!("cache:{k}")).collect();
        let run_crate = async || {
            let started = Instant::now();
            for i in 0..ops as usize {
                let value: Option<Profile> = cache.get(&keys[i % keys.len()]).await;
                std::hint::black_box(value.unwrap());
            }
            ops as f64 / started.elapsed().as_secs_f64()
        };
        let run_moka = async || {
            let started = Instant::now();
            for i in 0..ops as usize {
                let bytes = moka.get(&moka_keys[i % keys.len()]).await.unwrap();
                let value: Profile = serde_json::from_slice(&bytes[3..]).unwrap();
                std::hint::black_box(value);
            }
            ops as f64 / started.elapsed().as_secs_f64()
        };
        let run_moka_bytes = async || {
            let started = Instant::now();
            for i in 0..ops as usize {
                std::hint::black_box(moka.get(&moka_keys[i % keys.len()]).await.unwrap());
            }
            ops as f64 / started.elapsed().as_secs_f64()
        };
        run_moka().await;
        run_crate().await;
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            a.push(run_moka().await);
            b.push(run_crate().await);
            c.push(run_moka_bytes().await);
        }
        let (moka_rate, crate_rate, bytes_rate) = (median(&mut a), median(&mut b), median(&mut c));
        println!("\n### In-process `get` (one reader, {rounds} rounds × {ops} gets, 1,000 keys)\n");
        println!("| path | gets/s (median) | ratio |");
        println!("|---|---:|---:|");
        println!("| moka `get` + serde decode | {moka_rate:.0} | 1.00 |");
        println!(
            "| `Cache::get` (MemoryStore) | {crate_rate:.0} | {:.2} |",
            crate_rate / moka_rate
        );
        println!(
            "| moka `get` of the bytes alone (no decode, for scale) | {bytes_rate:.0} | {:.2} |",
            bytes_rate / moka_rate
        );
    });
}

/// A TTL per entry, as a cache with `put(key, value, ttl)` needs (here: one hour for all).
struct Ttl;

impl moka::Expiry<String, Bytes> for Ttl {
    fn expire_after_create(&self, _: &String, _: &Bytes, _: Instant) -> Option<Duration> {
        Some(Duration::from_secs(3600))
    }
}

async fn stampede(redis: &Redis) {
    println!("\n### `remember`: 1,000 concurrent misses of one key on two servers\n");
    println!("| remember lock | loader runs | time to serve all (ms) |");
    println!("|---|---:|---:|");
    for (round, lock) in [(0, false), (1, true)] {
        let prefix = format!("stampede-{round}");
        let server = || {
            let handle =
                RedisHandle::connect(&RedisConfig::new(redis.url()).prefix(&prefix)).unwrap();
            let cache = Cache::new(RedisStore::new(handle.clone()));
            if lock {
                cache.with_remember_lock(Duration::from_secs(5))
            } else {
                cache
            }
        };
        let servers = [server(), server()];
        servers[0].ping().await.unwrap();
        servers[1].ping().await.unwrap();
        let loads = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                let (cache, loads) = (servers[i % 2].clone(), loads.clone());
                tokio::spawn(async move {
                    let _: Profile = cache
                        .remember("profile", None, || async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            // A query that takes 20 ms.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok::<_, std::io::Error>(profile())
                        })
                        .await
                        .unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        let label = if lock { "on (5 s)" } else { "off" };
        println!(
            "| {label} | {} | {elapsed:.0} |",
            loads.load(Ordering::SeqCst)
        );
    }
}

/// `flexible` while its value is stale and a refresh runs (the loader never finishes during
/// the run), against a plain hit.
async fn flexible_stale(redis: &Redis) {
    let (rounds, secs, concurrency) = (
        env("BENCH_ROUNDS", 5),
        env("BENCH_SECS", 2),
        env("BENCH_CONCURRENCY", 64),
    );
    let config = RedisConfig::new(redis.url()).prefix("bench-flexible");
    let cache = Cache::new(RedisStore::new(RedisHandle::connect(&config).unwrap()));
    cache.put("plain", &profile(), None).await.unwrap();
    let (fresh, stale) = (Duration::from_millis(1), Duration::from_secs(3600));
    let loads = Arc::new(AtomicUsize::new(0));
    let slow = {
        let loads = loads.clone();
        move || {
            let loads = loads.clone();
            async move {
                // The first load stores the value; every refresh after it never ends.
                if loads.fetch_add(1, Ordering::SeqCst) > 0 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, std::io::Error>(profile())
            }
        }
    };
    let first: Profile = cache
        .flexible("flex", fresh, stale, slow.clone())
        .await
        .unwrap();
    assert_eq!(first, profile());
    tokio::time::sleep(Duration::from_millis(10)).await;
    let hit = {
        let cache = cache.clone();
        move || {
            let cache = cache.clone();
            async move {
                let value: Profile = cache.get("plain").await.unwrap();
                std::hint::black_box(value);
            }
        }
    };
    let flexible = {
        let cache = cache.clone();
        move || {
            let (cache, slow) = (cache.clone(), slow.clone());
            async move {
                let value: Profile = cache.flexible("flex", fresh, stale, slow).await.unwrap();
                std::hint::black_box(value);
            }
        }
    };
    throughput(concurrency, 1, hit.clone()).await;
    throughput(concurrency, 1, flexible.clone()).await;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(throughput(concurrency, secs, hit.clone()).await);
        b.push(throughput(concurrency, secs, flexible.clone()).await);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 2, "one refresh in all");
    let (hit, flexible) = (median(&mut a), median(&mut b));
    println!(
        "\n### `flexible` in its stale window ({concurrency} concurrent readers, {rounds} rounds × {secs} s)\n"
    );
    println!("| path | gets/s (median) | ratio |");
    println!("|---|---:|---:|");
    println!("| `Cache::get` hit | {hit:.0} | 1.00 |");
    println!(
        "| `Cache::flexible`, stale, a refresh running | {flexible:.0} | {:.2} |",
        flexible / hit
    );
}

/// Stores `count` small entries in `cache`, 1,000 to a round trip.
async fn fill(cache: &Cache, count: u64) {
    let keys: Vec<String> = (0..count).map(|n| format!("entry:{n}")).collect();
    for chunk in keys.chunks(1_000) {
        let entries: Vec<(&str, u64)> = chunk.iter().map(|key| (key.as_str(), 7)).collect();
        cache
            .put_many(&entries, Some(Duration::from_secs(600)))
            .await
            .unwrap();
    }
}

async fn flush_cost(redis: &Redis) {
    let (rounds, count) = (env("BENCH_ROUNDS", 5), env("BENCH_FLUSH_KEYS", 100_000));
    let handle = RedisHandle::connect(&RedisConfig::new(redis.url()).prefix("bench")).unwrap();
    let (mut walks, mut flushes) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let walked =
            Cache::new(RedisStore::new(handle.clone())).with_prefix(format!("walk{round}"));
        fill(&walked, count).await;
        let started = Instant::now();
        let removed = walked
            .store()
            .flush(&format!("walk{round}:"), &|_| false)
            .await
            .unwrap();
        walks.push(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(removed, count, "the walk removed every entry");

        let flushed =
            Cache::new(RedisStore::new(handle.clone())).with_prefix(format!("gen{round}"));
        fill(&flushed, count).await;
        let started = Instant::now();
        flushed.flush().await.unwrap();
        flushes.push(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(flushed.get::<u64>("entry:0").await, None, "out of reach");
        // Let its background removal finish before the next round's walk.
        loop {
            let keys: u64 = handle.query(&redis::cmd("DBSIZE")).await.unwrap();
            if keys < 1_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let (walk, flush) = (median(&mut walks), median(&mut flushes));
    println!("\n### `flush` of {count} entries on Redis ({rounds} rounds)\n");
    println!("| way | ms (median) | ratio |");
    println!("|---|---:|---:|");
    println!("| `SCAN` + `UNLINK` walk (the store's `flush`) | {walk:.2} | 1.00 |");
    println!(
        "| `Cache::flush` (a new generation; the walk follows in the background) | {flush:.3} | {:.4} |",
        flush / walk
    );
}

fn main() {
    let redis = Redis::start();
    memory_get();
    runtime().block_on(async {
        redis_get(&redis).await;
        stampede(&redis).await;
        flexible_stale(&redis).await;
        flush_cost(&redis).await;
    });
}

//! The cache against every store: the conformance suite on the memory store, a real Redis and a
//! 3-node Redis Cluster; `remember` across two servers with the remember lock; Redis killed
//! (reads are misses and counted errors, writes report it, nothing hangs) and restarted (hits
//! again); the cache of `ProductionLayer` from the environment, its metrics and health check.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use futures_util::future::join_all;
use rustforge_prod::ProductionLayer;
use rustforge_prod::cache::{Cache, CacheError, MemoryStore, RedisStore};
use rustforge_prod::redis::{RedisConfig, RedisHandle};
use rustforge_prod::testing::cache::{cache_conformance, remember_loads_once};
use support::http::{TestServer, client};
use support::prod::{config_error, metric_sum};
use support::redis::{RedisCluster, RedisServer, shared_or_spawn};

fn redis_cache(url: &str, prefix: &str) -> Cache {
    let config = RedisConfig::new(url)
        .prefix(prefix)
        .command_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300));
    Cache::new(RedisStore::new(RedisHandle::connect(&config).unwrap()))
}

fn unique(test: &str) -> String {
    format!("cache-{test}-{}", std::process::id())
}

#[tokio::test]
async fn the_memory_store_passes_the_conformance_suite() {
    cache_conformance(&Cache::new(MemoryStore::new(10_000)), "memory").await;
}

#[tokio::test]
async fn redis_passes_the_conformance_suite() {
    let (_server, url) = shared_or_spawn();
    let cache = redis_cache(&url, &unique("single"));
    cache_conformance(&cache, "redis").await;
    remember_loads_once(&cache, "redis-1000", 1000).await;
}

#[tokio::test]
async fn a_redis_cluster_passes_the_conformance_suite() {
    let cluster = RedisCluster::start();
    let cache = redis_cache(&cluster.url(), &unique("cluster"));
    cache_conformance(&cache, "cluster").await;
}

#[tokio::test]
async fn the_memory_store_is_bounded() {
    let store = MemoryStore::new(100);
    let cache = Cache::new(store.clone());
    for i in 0..1_000 {
        cache.put(&format!("k{i}"), &i, None).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    // moka applies its bound in the background: wait for it, with a deadline.
    while store.entry_count() > 100 {
        assert!(Instant::now() < deadline, "{} entries", store.entry_count());
        let _ = cache.get::<i32>("k0").await;
        tokio::task::yield_now().await;
    }
}

/// Two app servers (each its own connection pool and single flight) missing one key 1,000
/// times at once: with the remember lock the loader runs once in all.
#[tokio::test]
async fn the_remember_lock_loads_once_across_servers() {
    let (_server, url) = shared_or_spawn();
    let prefix = unique("remember-lock");
    let servers = [
        redis_cache(&url, &prefix).with_remember_lock(Duration::from_secs(5)),
        redis_cache(&url, &prefix).with_remember_lock(Duration::from_secs(5)),
    ];
    let loads = Arc::new(AtomicUsize::new(0));
    let tasks = (0..1000).map(|i| {
        let (cache, loads) = (servers[i % 2].clone(), loads.clone());
        tokio::spawn(async move {
            cache
                .remember("report", Some(Duration::from_secs(60)), || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    Ok::<_, std::io::Error>(vec![1u8, 2, 3])
                })
                .await
                .unwrap()
        })
    });
    for value in join_all(tasks).await {
        assert_eq!(value.unwrap(), [1, 2, 3]);
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "loaded once on two servers"
    );
}

/// Without the lock, each server loads once (its single flight), not once per request.
/// A loader for `flexible` that counts its calls and returns `v<call>`; every call after the
/// first waits for a permit of `gate`, so the test decides when a refresh finishes.
fn gated_loader(
    loads: &Arc<AtomicUsize>,
    gate: &Arc<tokio::sync::Semaphore>,
) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<String, std::io::Error>> + Send>>
+ Send
+ 'static {
    let (loads, gate) = (loads.clone(), gate.clone());
    move || {
        Box::pin(async move {
            let call = loads.fetch_add(1, Ordering::SeqCst) + 1;
            if call > 1 {
                gate.acquire().await.unwrap().forget();
            }
            Ok(format!("v{call}"))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flexible_serves_the_stale_value_at_once_and_refreshes_once_per_fleet() {
    let (_server, url) = shared_or_spawn();
    let prefix = unique("flexible");
    // Two servers: two caches, each on its own pool, sharing one Redis.
    let servers = [redis_cache(&url, &prefix), redis_cache(&url, &prefix)];
    let (loads, gate) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(tokio::sync::Semaphore::new(0)),
    );
    let (fresh, stale) = (Duration::from_millis(500), Duration::from_secs(60));
    let flexible =
        |i: usize| servers[i % 2].flexible("stats", fresh, stale, gated_loader(&loads, &gate));
    let loaded = Instant::now();
    assert_eq!(flexible(0).await.unwrap(), "v1");
    assert_eq!(flexible(1).await.unwrap(), "v1", "fresh: served");
    assert_eq!(loads.load(Ordering::SeqCst), 1);

    // In the stale window: 1,000 requests on both servers all get the old value while the one
    // refresh is held at the gate — none of them waited for it.
    tokio::time::sleep_until((loaded + fresh).into()).await;
    let served = join_all((0..1000).map(flexible)).await;
    assert!(
        served.iter().all(|v| v.as_deref().ok() == Some("v1")),
        "{:?}",
        &served[..3]
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while loads.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "no refresh started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The refresh finishes: the new value is served from then on, and it ran once in all.
    gate.add_permits(1000);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = flexible(1).await.unwrap();
        if value == "v2" {
            break;
        }
        assert_eq!(value, "v1");
        assert!(Instant::now() < deadline, "the refreshed value never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(flexible(0).await.unwrap(), "v2");
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "one refresh for 1,000 stale reads on two servers"
    );
}

#[tokio::test]
async fn flexible_loads_while_the_request_waits_once_the_value_is_too_old() {
    let cache = Cache::new(MemoryStore::new(100));
    let (loads, gate) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(tokio::sync::Semaphore::new(10)),
    );
    let (fresh, stale) = (Duration::from_millis(50), Duration::from_millis(200));
    let loaded = Instant::now();
    let flexible = || cache.flexible("k", fresh, stale, gated_loader(&loads, &gate));
    assert_eq!(flexible().await.unwrap(), "v1");
    tokio::time::sleep_until((loaded + stale + Duration::from_millis(50)).into()).await;
    assert_eq!(
        flexible().await.unwrap(),
        "v2",
        "past `stale`: loaded, not served old"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn without_the_lock_each_server_loads_once() {
    let (_server, url) = shared_or_spawn();
    let prefix = unique("remember-per-server");
    let servers = [redis_cache(&url, &prefix), redis_cache(&url, &prefix)];
    let loads = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let (cache, loads, gate) = (servers[i % 2].clone(), loads.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .remember("report", None, || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        // Held until both servers have started loading.
                        gate.notified().await;
                        Ok::<_, std::io::Error>(7u32)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while loads.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "both servers should be loading");
        tokio::task::yield_now().await;
    }
    gate.notify_waiters();
    for value in join_all(tasks).await {
        assert_eq!(value.unwrap(), 7);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 2, "once per server");
}

#[tokio::test]
async fn killing_redis_turns_reads_into_counted_misses_and_a_restart_brings_hits_back() {
    let mut redis = RedisServer::start();
    let prod = ProductionLayer::builder()
        .from_vars([
            ("REDIS_URL", redis.url()),
            ("RUSTFORGE_REDIS_PREFIX", unique("kill")),
            ("RUSTFORGE_REDIS_COMMAND_TIMEOUT", "300ms".into()),
            ("RUSTFORGE_REDIS_CONNECT_TIMEOUT", "300ms".into()),
            ("RUSTFORGE_CACHE_HEALTH_CHECK", "true".into()),
        ])
        .unwrap()
        .build()
        .await
        .unwrap();
    let cache = prod.cache().clone();
    assert_eq!(cache.store_name(), "redis");
    let route_cache = cache.clone();
    let app = Router::new()
        .route(
            "/cached",
            get(move || {
                let cache = route_cache.clone();
                async move {
                    let value: String = cache
                        .remember("greeting", None, || async {
                            Ok::<_, std::io::Error>("hello".to_owned())
                        })
                        .await
                        .unwrap();
                    value
                }
            }),
        )
        .merge(prod.routes())
        .layer(prod.layer());
    let app = TestServer::start(app).await;
    let http = client();
    let get = async |path: &str| {
        let response = http.get(app.url(path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    assert_eq!(get("/cached").await, (200, "hello".into()));
    assert_eq!(
        cache.get::<String>("greeting").await.as_deref(),
        Some("hello")
    );

    let misses = async || {
        let metrics = get("/metrics").await.1;
        let lines = metrics.lines().filter(|l| {
            l.starts_with("rustforge_cache_reads_total{") && l.contains("result=\"miss\"")
        });
        lines
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };
    let misses_before = misses().await;

    redis.stop();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(
            get("/cached").await,
            (200, "hello".into()),
            "served without Redis"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "bounded by the timeouts"
        );
    }
    assert_eq!(
        cache.get::<String>("greeting").await,
        None,
        "a failed read is a miss"
    );
    match cache.put("k", &1, None).await {
        Err(CacheError::Backend(_)) => {}
        other => panic!("a write without Redis: {other:?}"),
    }
    assert!(cache.increment("n", 1).await.is_err());
    let metrics = get("/metrics").await.1;
    assert!(
        metric_sum(&metrics, "rustforge_cache_errors_total{") >= 6.0,
        "errors counted:\n{metrics}"
    );
    assert!(metrics.contains("operation=\"get\""), "{metrics}");
    // Each read during the outage (five routes' `remember`, one `get`) was a counted miss.
    let outage_misses = misses().await - misses_before;
    assert!(outage_misses >= 6.0, "{outage_misses} misses: {metrics}");
    let health = http
        .get(app.url("/health"))
        .header("authorization", "Bearer none")
        .send()
        .await
        .unwrap();
    assert_ne!(
        health.status().as_u16(),
        503,
        "a cache outage does not fail /health"
    );
    let ready = get("/health/ready").await;
    assert_eq!(ready.0, 200, "nor readiness: {}", ready.1);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // The first request after the restart stores the value again; the next read hits.
        get("/cached").await;
        if cache.get::<String>("greeting").await.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no hits after Redis came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = metric_sum(
        &get("/metrics").await.1,
        "rustforge_cache_reads_total{result=\"hit\"",
    );
    assert_eq!(get("/cached").await, (200, "hello".into()));
    let after = metric_sum(
        &get("/metrics").await.1,
        "rustforge_cache_reads_total{result=\"hit\"",
    );
    assert!(after > before, "hits counted again ({before} -> {after})");
}

#[tokio::test]
async fn the_cache_comes_from_the_environment() {
    let prod = ProductionLayer::builder()
        .from_vars([
            ("RUSTFORGE_CACHE_PREFIX", "app1"),
            ("RUSTFORGE_CACHE_DEFAULT_TTL", "off"),
            ("RUSTFORGE_CACHE_MAX_ENTRIES", "10"),
            ("RUSTFORGE_CACHE_FLUSH_CHECK", "250ms"),
        ])
        .unwrap()
        .build()
        .await
        .unwrap();
    assert_eq!(prod.cache().store_name(), "memory", "no Redis: in process");
    let debug = format!("{:?}", prod.cache());
    assert!(debug.contains("prefix: \"app1\""), "{debug}");
    assert!(debug.contains("flush_check: 250ms"), "{debug}");

    for (var, value) in [
        ("RUSTFORGE_CACHE_STORE", "redis"),
        ("RUSTFORGE_CACHE_STORE", "disk"),
        ("RUSTFORGE_CACHE_DEFAULT_TTL", "soon"),
        ("RUSTFORGE_CACHE_MAX_ENTRIES", "0"),
        ("RUSTFORGE_CACHE_PREFIX", "a b"),
        ("RUSTFORGE_CACHE_FLUSH_CHECK", "0s"),
        ("RUSTFORGE_CACHE_FLUSH_CHECK", "often"),
    ] {
        let err = config_error(&[(var, value)]).await;
        assert!(err.contains(var), "{var}={value}: {err}");
        if value == "redis" {
            assert!(err.contains("REDIS_URL"), "names what is missing: {err}");
        }
    }
}

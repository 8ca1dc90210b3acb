//! The Redis limiter across app servers and under faults: two servers sharing one Redis admit
//! exactly the limit for every algorithm; killing Redis under load follows each failure policy
//! without hanging, opens the breaker, and the layer returns to Redis by itself after a restart;
//! a Redis blocked by `CLIENT PAUSE` costs a request no more than the timeout.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use futures_util::future::join_all;
use rustforge_prod::ProductionLayer;
use rustforge_prod::ratelimit::{
    Algorithm, FailurePolicy, Key, Limit, RateLimitConfig, RateLimitLayer, RateLimiter, RedisStore,
    Source, Store,
};
use rustforge_prod::redis::{RedisConfig, RedisHandle};
use support::http::{TestServer, client};
use support::redis::{RedisCluster, RedisServer, raw_command, shared_or_spawn};

/// Any single request in these tests: answered well within this, whatever Redis does.
const BOUND: Duration = Duration::from_secs(5);

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

fn handle(url: &str, prefix: &str) -> RedisHandle {
    RedisHandle::connect(&RedisConfig::new(url).prefix(prefix)).unwrap()
}

/// An app server with its own Redis connection pool, limited by `limiter` in Redis.
async fn server(store: Arc<RedisStore>, limiter: RateLimiter) -> TestServer {
    let layer = RateLimitLayer::builder(store)
        .limiter(limiter)
        .build()
        .unwrap();
    TestServer::start(app().layer(layer)).await
}

/// `GET /` with a bounded wait; returns the status.
async fn hit(http: &reqwest::Client, url: &str) -> u16 {
    tokio::time::timeout(BOUND, http.get(url).send())
        .await
        .expect("a request hung")
        .expect("request failed")
        .status()
        .as_u16()
}

/// 32 clients, 16 per server, `per_client` requests each; returns the admitted count.
async fn hammer(urls: [&str; 2], per_client: usize) -> usize {
    let admitted = Arc::new(AtomicUsize::new(0));
    let clients = (0..32).map(|i| {
        let url = urls[i % 2].to_owned();
        let admitted = admitted.clone();
        tokio::spawn(async move {
            let http = client();
            for _ in 0..per_client {
                match hit(&http, &url).await {
                    200 => {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    429 => {}
                    other => panic!("unexpected status {other}"),
                }
            }
        })
    });
    for task in join_all(clients).await {
        task.unwrap();
    }
    admitted.load(Ordering::Relaxed)
}

async fn exactly_the_limit_across_two_servers(url: &str, tag: &str) {
    for algorithm in [
        Algorithm::Gcra,
        Algorithm::SlidingWindow,
        Algorithm::FixedWindow,
        Algorithm::SlidingLog,
    ] {
        // Per day: nothing refills during the test, so "exactly 100" is the right answer.
        let limiter = RateLimiter::new("shared", [Limit::per_day(100).algorithm(algorithm)])
            .key(Key::global());
        let prefix = format!("exact-{tag}-{algorithm}-{}", std::process::id());
        let stores = [0, 1].map(|_| {
            Arc::new(RedisStore::new(handle(url, &prefix)).timeout(Duration::from_secs(2)))
        });
        let a = server(stores[0].clone(), limiter.clone()).await;
        let b = server(stores[1].clone(), limiter).await;
        let admitted = hammer([&a.url("/"), &b.url("/")], 10).await;
        for store in &stores {
            let stats = store.stats();
            assert_eq!(
                stats.errors, 0,
                "{algorithm}: Redis failed during the run: {stats:?}"
            );
        }
        assert_eq!(admitted, 100, "{algorithm}: 320 requests on two servers");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_admit_exactly_the_limit() {
    let (_server, url) = shared_or_spawn();
    exactly_the_limit_across_two_servers(&url, "single").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_a_cluster_admit_exactly_the_limit() {
    let cluster = RedisCluster::start();
    exactly_the_limit_across_two_servers(&cluster.url(), "cluster").await;
}

/// A store whose breaker opens after 3 failures and probes again every 500 ms.
fn fragile_store(url: &str, test: &str, policy: FailurePolicy) -> Arc<RedisStore> {
    let prefix = format!("fault-{test}-{}", std::process::id());
    Arc::new(
        RedisStore::new(handle(url, &prefix))
            .timeout(Duration::from_millis(200))
            .on_failure(policy)
            .breaker(3, Duration::from_millis(500)),
    )
}

/// Polls until `done` (never a fixed sleep): the breaker needs a request after its cooldown.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn killing_redis_follows_each_policy_and_recovery_is_automatic() {
    for policy in [
        FailurePolicy::Fallback,
        FailurePolicy::FailOpen,
        FailurePolicy::FailClosed,
    ] {
        let mut redis = RedisServer::start();
        let store = fragile_store(&redis.url(), &format!("{policy:?}"), policy);
        let limiter = RateLimiter::new("ip", [Limit::per_minute(5)]);
        let app = server(store.clone(), limiter).await;
        let http = client();
        let url = app.url("/");
        assert_eq!(hit(&http, &url).await, 200);
        assert_eq!(hit(&http, &url).await, 200);

        redis.stop();
        let statuses: Vec<u16> = join_all((0..40).map(|_| hit(&http, &url))).await;
        match policy {
            // A fresh local store with the same limit: 5 more, then 429 — still limited.
            FailurePolicy::Fallback => {
                assert_eq!(
                    statuses.iter().filter(|s| **s == 200).count(),
                    5,
                    "{statuses:?}"
                );
                assert!(statuses.iter().all(|s| [200, 429].contains(s)));
            }
            FailurePolicy::FailOpen => assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}"),
            FailurePolicy::FailClosed => {
                assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
                let res = http.get(&url).send().await.unwrap();
                assert_eq!(res.status(), 503);
                assert_eq!(res.headers()["content-type"], "application/problem+json");
            }
        }
        let burst = store.stats();
        assert!(burst.breaker_open, "{policy:?}: {burst:?}");
        // Requests already in flight when Redis died each tried it; later ones skip it (up to a
        // probe per cooldown).
        for _ in 0..40 {
            hit(&http, &url).await;
        }
        let stats = store.stats();
        assert!(
            stats.errors - burst.errors < 5,
            "{policy:?}: an open breaker spares requests the Redis attempt: {burst:?} then {stats:?}"
        );
        let decided = stats.fallbacks + stats.fail_open + stats.fail_closed;
        assert!(
            decided >= 80,
            "{policy:?}: every decision counted: {stats:?}"
        );

        redis.restart();
        eventually("the breaker to close after Redis came back", async || {
            hit(&http, &url).await;
            !store.stats().breaker_open
        })
        .await;
        // Counting happens in Redis again: the key exists there, with a TTL.
        let keys = raw_command(redis.port(), "DBSIZE").unwrap();
        assert_eq!(
            keys, ":1",
            "{policy:?}: one limiter key in the restarted Redis"
        );
    }
}

#[tokio::test]
async fn a_blocked_redis_costs_a_request_no_more_than_the_timeout() {
    let redis = RedisServer::start();
    let store = fragile_store(&redis.url(), "pause", FailurePolicy::Fallback);
    let app = server(
        store.clone(),
        RateLimiter::new("ip", [Limit::per_minute(50)]),
    )
    .await;
    let http = client();
    let url = app.url("/");
    assert_eq!(hit(&http, &url).await, 200);
    // Redis stops answering every client for 30 s (as under a long script or a failover).
    assert_eq!(
        raw_command(redis.port(), "CLIENT PAUSE 30000 ALL").unwrap(),
        "+OK"
    );
    // Each request answers within the store's 200 ms timeout, plus a margin for a loaded test
    // machine that is still far below the 30 s pause.
    let limit = Duration::from_millis(200) + Duration::from_millis(800);
    let timed = join_all((0..10).map(|_| async {
        let started = Instant::now();
        (hit(&http, &url).await, started.elapsed())
    }))
    .await;
    for (status, took) in &timed {
        assert_eq!(*status, 200, "the fallback admits");
        assert!(
            *took < limit,
            "a request waited {took:?} for a paused Redis"
        );
    }
    // Every request was answered while Redis was still paused: none waited for it.
    let port = redis.port();
    let still_paused = tokio::task::spawn_blocking(move || raw_command(port, "PING").is_err())
        .await
        .unwrap();
    assert!(still_paused, "Redis should still be paused");
    assert!(store.stats().errors >= 1, "{:?}", store.stats());
}

#[tokio::test]
async fn a_reply_that_misses_the_deadline_is_discarded_and_the_connection_stays_in_step() {
    let redis = RedisServer::start();
    let store = fragile_store(&redis.url(), "late", FailurePolicy::Fallback);
    let limits = [Limit::per_minute(10)];
    let first = store.check("k", &limits, 1).await.unwrap();
    assert_eq!(
        (first.source, first.limits[0].remaining),
        (Source::Redis, 9)
    );
    // Redis holds every command for 1 s: the check gives up after its 200 ms, but its script is
    // already on the wire and runs when the pause ends.
    assert_eq!(
        raw_command(redis.port(), "CLIENT PAUSE 1000 ALL").unwrap(),
        "+OK"
    );
    let late = store.check("k", &limits, 1).await.unwrap();
    assert_eq!(late.source, Source::Fallback);
    let port = redis.port();
    eventually("the pause to end", async || {
        tokio::task::spawn_blocking(move || raw_command(port, "PING").is_ok())
            .await
            .unwrap()
    })
    .await;
    // Same pooled connection: the abandoned script's reply (remaining 8) arrives first and must
    // be dropped, so this check reads its own reply — the abandoned run counted once (never
    // re-sent), this one is the third.
    let next = store.check("k", &limits, 1).await.unwrap();
    assert_eq!((next.source, next.limits[0].remaining), (Source::Redis, 7));
    assert_eq!(store.stats().errors, 1, "{:?}", store.stats());
}

#[tokio::test]
async fn production_layer_uses_redis_when_configured_and_reports_fallbacks_in_metrics() {
    let mut redis = RedisServer::start();
    let mut rate_limit = RateLimitConfig::default();
    rate_limit.limits = vec![Limit::per_minute(100)];
    rate_limit.timeout = Duration::from_millis(200);
    rate_limit.breaker_failures = 1;
    let prod = ProductionLayer::builder()
        .from_vars([
            ("REDIS_URL", redis.url()),
            (
                "RUSTFORGE_REDIS_PREFIX",
                format!("prod-{}", std::process::id()),
            ),
        ])
        .unwrap()
        .rate_limit(rate_limit)
        .build()
        .await
        .unwrap();
    let store = prod.rate_limit().unwrap().store().clone();
    assert!(format!("{store:?}").starts_with("RedisStore"), "{store:?}");
    let app = TestServer::start(app().merge(prod.routes()).layer(prod.layer())).await;
    let http = client();
    assert_eq!(hit(&http, &app.url("/")).await, 200);
    redis.stop();
    for _ in 0..5 {
        assert_eq!(hit(&http, &app.url("/")).await, 200);
    }
    let metrics = http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
            .to_owned()
    };
    assert!(line("rustforge_ratelimit_breaker_open").ends_with(" 1"));
    let fallbacks: f64 = line("rustforge_ratelimit_failure_decisions_total{policy=\"fallback\"")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(fallbacks >= 5.0, "{metrics}");
    assert!(line("rustforge_ratelimit_decisions_total").contains("limiter=\"global\""));
    assert!(metrics.contains("source=\"fallback\""), "{metrics}");
}

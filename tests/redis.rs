//! The shared Redis handle against real `redis-server` processes: a single node (killed and
//! restarted for fault tests) and a 3-master cluster.

mod support;

use std::time::Duration;

use rustforge_prod::ProductionLayer;
use rustforge_prod::redis::{RedisConfig, RedisError, RedisHandle, Script};
use support::redis::{RedisCluster, RedisServer, raw_command, shared_or_spawn};

const INCRBY: &str = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

/// Any Redis call in these tests must finish well within this, whatever the server does.
const BOUND: Duration = Duration::from_secs(5);

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("a Redis call hung")
}

fn unique_prefix(test: &str) -> String {
    format!("test-{test}-{}", std::process::id())
}

#[tokio::test]
async fn ping_eval_and_key_layout() {
    let (_server, url) = shared_or_spawn();
    let redis = RedisHandle::connect(&RedisConfig::new(url).prefix(unique_prefix("eval"))).unwrap();
    assert!(!redis.is_cluster());
    // PING reports its own round trip: a real, positive time within the call's.
    let called = std::time::Instant::now();
    let round_trip = bounded(redis.ping()).await.unwrap();
    assert!(
        round_trip > Duration::ZERO && round_trip <= called.elapsed(),
        "{round_trip:?}"
    );
    let key = redis.key("demo", "counter");
    assert_eq!(key, format!("{{{}:demo}}:counter", redis.prefix()));
    assert_eq!(
        redis.key("demo", ""),
        format!("{{{}:demo}}", redis.prefix())
    );
    let script = Script::new(INCRBY);
    assert_eq!(script.sha().len(), 40);
    let a: i64 = bounded(redis.eval(&script, &[&key], &["5"])).await.unwrap();
    let b: i64 = bounded(redis.eval(&script, &[&key], &["2"])).await.unwrap();
    assert_eq!(b - a, 2);
}

#[tokio::test]
async fn scripts_are_reloaded_after_noscript() {
    let server = RedisServer::start();
    let redis = RedisHandle::connect(&RedisConfig::new(server.url())).unwrap();
    let script = Script::new(INCRBY);
    let key = redis.key("reload", "n");
    assert_eq!(
        bounded(redis.eval::<i64>(&script, &[&key], &["1"]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(raw_command(server.port(), "SCRIPT FLUSH").unwrap(), "+OK");
    // EVALSHA now answers NOSCRIPT: the handle loads the script and runs it exactly once.
    assert_eq!(
        bounded(redis.eval::<i64>(&script, &[&key], &["1"]))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        raw_command(server.port(), &format!("GET {key}")).unwrap(),
        "2"
    );
}

#[tokio::test]
async fn a_killed_server_is_a_prompt_error_and_a_restarted_one_is_used_again() {
    let mut server = RedisServer::start();
    let config = RedisConfig::new(server.url())
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300));
    let redis = RedisHandle::connect(&config).unwrap();
    let script = Script::new(INCRBY);
    let key = redis.key("fault", "n");
    assert_eq!(
        bounded(redis.eval::<i64>(&script, &[&key], &["1"]))
            .await
            .unwrap(),
        1
    );

    server.stop();
    // The pooled connection is dead: the call fails (not hangs) and the connection is discarded.
    let err = bounded(redis.eval::<i64>(&script, &[&key], &["1"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RedisError::Command(_) | RedisError::Unavailable(_)),
        "{err:?}"
    );
    // With nothing listening, new connections are refused promptly.
    let err = bounded(redis.ping()).await.unwrap_err();
    assert!(matches!(err, RedisError::Unavailable(_)), "{err:?}");

    server.restart();
    // The restarted server has no data and no scripts: the next call reconnects, reloads the
    // script and counts from zero.
    assert_eq!(
        bounded(redis.eval::<i64>(&script, &[&key], &["1"]))
            .await
            .unwrap(),
        1
    );
    bounded(redis.ping()).await.unwrap();
}

/// The handle's breaker, opened by a dead or frozen server and closed by its background probe.
fn breaker_config(url: String) -> RedisConfig {
    // A connect timeout far above the guard: a call that waited for it would fail the test.
    RedisConfig::new(url)
        .connect_timeout(Duration::from_secs(30))
        .command_timeout(Duration::from_millis(300))
        .breaker(3, Duration::from_millis(100))
}

/// Calls `ping` until the breaker opens; the errors seen on the way. Each call is bounded by the
/// command timeout, the wait for a connection included (the guard is far below the connect
/// timeout).
async fn until_open(redis: &RedisHandle) -> Vec<RedisError> {
    let mut errors = Vec::new();
    while !redis.breaker_open() {
        errors.push(bounded(redis.ping()).await.unwrap_err());
        assert!(errors.len() <= 3, "the breaker did not open: {errors:?}");
    }
    errors
}

async fn until_closed(redis: &RedisHandle) {
    bounded(async {
        while redis.breaker_open() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_dead_server_opens_the_breaker_and_a_probe_closes_it_when_it_is_back() {
    let mut server = RedisServer::start();
    let redis = RedisHandle::connect(&breaker_config(server.url())).unwrap();
    let script = Script::new(INCRBY);
    let key = redis.key("breaker", "n");
    assert_eq!(
        bounded(redis.eval::<i64>(&script, &[&key], &["1"]))
            .await
            .unwrap(),
        1
    );
    assert!(!redis.breaker_open());

    server.stop();
    // Three failures in a row (the dead pooled connection, then refused connects that the
    // pool keeps retrying) open it, none of them waiting the 30 s connect timeout.
    let errors = until_open(&redis).await;
    assert_eq!(errors.len(), 3, "{errors:?}");
    // Open: every call fails at once, saying why, whatever the command.
    for _ in 0..100 {
        let err = bounded(redis.eval::<i64>(&script, &[&key], &["1"]))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RedisError::Unavailable(why) if why.to_string().contains("circuit breaker open")),
            "{err:?}"
        );
    }
    // Still down: the probe keeps it open.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(redis.breaker_open());

    server.restart();
    until_closed(&redis).await;
    assert_eq!(
        bounded(redis.eval::<i64>(&script, &[&key], &["1"]))
            .await
            .unwrap(),
        1,
        "the restarted, empty server counts from zero"
    );
}

#[tokio::test]
async fn a_frozen_server_opens_the_breaker_by_timeouts_and_errors_do_not() {
    let server = RedisServer::start();
    let redis = RedisHandle::connect(&breaker_config(server.url())).unwrap();
    bounded(redis.ping()).await.unwrap();
    // Error replies are answers: Redis is there, the breaker stays closed.
    for _ in 0..10 {
        let err = bounded(redis.query::<i64>(&redis::cmd("NO-SUCH-COMMAND")))
            .await
            .unwrap_err();
        assert!(matches!(err, RedisError::Command(_)), "{err:?}");
    }
    assert!(!redis.breaker_open());
    // Every client paused for 3 s: three command timeouts open it.
    assert_eq!(
        raw_command(server.port(), "CLIENT PAUSE 3000 ALL").unwrap(),
        "+OK"
    );
    let errors = until_open(&redis).await;
    assert!(
        errors
            .iter()
            .all(|e| matches!(e, RedisError::Timeout(d) if *d == Duration::from_millis(300))),
        "{errors:?}"
    );
    // The pause ends: the probe's PING is answered and the breaker closes.
    until_closed(&redis).await;
    bounded(redis.ping()).await.unwrap();
}

/// `redis+sentinel://`: the handle asks the sentinels for the primary; when it is SIGKILLed under
/// load the sentinels promote the replica and the handle follows — what was written before is
/// there (the replica had it) and writes go to the new primary. The old primary started again
/// comes back as a replica; nothing is written to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_is_followed_by_the_handle() {
    let mut group = support::sentinel::SentinelGroup::start();
    let redis = RedisHandle::connect(&RedisConfig::new(group.url())).unwrap();
    let old = group.primary_port();
    let key = redis.key("sentinel", "n");
    let incr = redis::cmd("INCR").arg(&key).clone();
    for expected in 1..=10 {
        assert_eq!(bounded(redis.query::<i64>(&incr)).await.unwrap(), expected);
    }
    // Replicated before the primary dies (asynchronous replication would otherwise lose them).
    assert_eq!(raw_command(old, "WAIT 1 2000").unwrap(), ":1");

    // Load: INCR every 5 ms; each success is a count the new primary must hold.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (redis, incr, stop) = (redis.clone(), incr.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed, mut last) = (0u64, 0u64, 10i64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match bounded(redis.query::<i64>(&incr)).await {
                    Ok(n) => {
                        ok += 1;
                        last = n;
                    }
                    Err(_) => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, failed, last)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    group.node(old).stop();
    let new = tokio::task::block_in_place(|| group.wait_for_failover_from(old));
    assert_ne!(new, old);
    // The handle writes to the new primary within moments of the switch.
    let written = bounded(async {
        loop {
            if let Ok(n) = redis.query::<i64>(&incr).await {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        written > 10,
        "the count before the failover is kept: {written}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed, last) = load.await.unwrap();
    assert!(
        ok > 0 && failed > 0,
        "the load met the failover: {ok} ok, {failed} failed"
    );
    let on_new = raw_command(new, &format!("GET {key}")).unwrap();
    let on_new: i64 = on_new.parse().unwrap();
    assert!(on_new >= last.max(written), "{on_new} < {last}/{written}");

    // The old primary returns as a replica of the new one; the handle keeps writing to the new.
    group.node(old).restart();
    let reply = raw_command(old, &format!("REPLICAOF 127.0.0.1 {new}")).unwrap();
    assert_eq!(reply, "+OK");
    for _ in 0..20 {
        bounded(redis.query::<i64>(&incr)).await.unwrap();
    }
    assert_eq!(group.primary_port(), new);
}

#[tokio::test]
async fn a_stalled_server_hits_the_command_timeout() {
    let server = RedisServer::start();
    let config = RedisConfig::new(server.url()).command_timeout(Duration::from_millis(100));
    let redis = RedisHandle::connect(&config).unwrap();
    bounded(redis.ping()).await.unwrap();
    // Every client is paused for 1.5 s: our command must give up after its 100 ms.
    assert_eq!(
        raw_command(server.port(), "CLIENT PAUSE 1500 ALL").unwrap(),
        "+OK"
    );
    let err = bounded(redis.ping()).await.unwrap_err();
    assert!(
        matches!(err, RedisError::Timeout(d) if d == Duration::from_millis(100)),
        "{err:?}"
    );
    // A patient client is held by Redis until the pause ends; then ours works again.
    let patient = RedisConfig::new(server.url()).command_timeout(Duration::from_secs(4));
    bounded(RedisHandle::connect(&patient).unwrap().ping())
        .await
        .unwrap();
    bounded(redis.ping()).await.unwrap();
}

#[tokio::test]
async fn scripts_run_on_a_cluster_and_keys_spread_over_masters() {
    let cluster = RedisCluster::start();
    let redis = RedisHandle::connect(&RedisConfig::new(cluster.url()).prefix("c")).unwrap();
    assert!(redis.is_cluster());
    bounded(redis.ping()).await.unwrap();
    let set_two = Script::new(
        "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return 1",
    );
    let mut holders = std::collections::BTreeSet::new();
    for tag in 0..12 {
        let tag = format!("user{tag}");
        let (a, b) = (redis.key(&tag, "a"), redis.key(&tag, "b"));
        // Two keys in one script: works only because they share the hash tag.
        let _: i64 = bounded(redis.eval(&set_two, &[&a, &b], &[&tag]))
            .await
            .unwrap();
        let owners: Vec<u16> = cluster
            .ports()
            .iter()
            .copied()
            .filter(|&p| raw_command(p, &format!("GET {a}")).is_ok_and(|v| v == tag))
            .collect();
        assert_eq!(owners.len(), 1, "{a} lives on exactly one master");
        holders.insert(owners[0]);
    }
    assert!(
        holders.len() >= 2,
        "12 tags all landed on one master: {holders:?}"
    );

    for &port in cluster.ports() {
        assert_eq!(raw_command(port, "SCRIPT FLUSH").unwrap(), "+OK");
    }
    let n: i64 = bounded(redis.eval(&Script::new(INCRBY), &[&redis.key("x", "n")], &["3"]))
        .await
        .unwrap();
    assert_eq!(n, 3);
}

#[tokio::test]
async fn the_builder_shares_one_handle_and_starts_without_redis() {
    let (_server, url) = shared_or_spawn();
    let prod = ProductionLayer::builder()
        .from_vars([("REDIS_URL", url.as_str())])
        .unwrap()
        .build()
        .await
        .unwrap();
    bounded(
        prod.redis()
            .expect("REDIS_URL configures the handle")
            .ping(),
    )
    .await
    .unwrap();

    // A Redis that is down does not stop the app from starting: the handle reports it on use.
    let port = support::free_port();
    let prod = bounded(
        ProductionLayer::builder()
            .redis(RedisConfig::new(format!("redis://127.0.0.1:{port}")))
            .build(),
    )
    .await
    .unwrap();
    let err = bounded(prod.redis().unwrap().ping()).await.unwrap_err();
    assert!(matches!(err, RedisError::Unavailable(_)), "{err:?}");
}

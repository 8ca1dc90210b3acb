//! What the pool-size knobs of `docs/performance-tuning.md` change, each against its default in
//! the same run (rounds interleaved, medians):
//!
//! ```sh
//! cargo bench --bench tuning --features full   # spawns redis-server; needs DATABASE_URL
//! ```
//!
//! 1. `RUST_LOG` and `RUSTFORGE_LOG_FORMAT`: a `ProductionLayer` app (defaults) serving a 13-byte
//!    text to 32 keep-alive connections, logging its request lines as JSON (the default), as
//!    pretty text, not at all (`RUST_LOG=warn`: the request lines are `info`) and with no
//!    subscriber. Each server has its own runtime and dispatcher, logs go to a file.
//! 2. `RUSTFORGE_REDIS_POOL_SIZE`: `Cache::get` of a small record from 64 concurrent tasks with
//!    pools of 1, 2, 8 (the default) and 32 multiplexed connections.
//! 3. `RUSTFORGE_DB_MAX_CONNECTIONS`: 64 concurrent tasks running `SELECT 1` (the database does
//!    no work: the pool and the round trip are all there is) and `SELECT pg_sleep(0.002)` (each
//!    query holds its connection 2 ms, like a query that reads from disk), with pools of 2, 5,
//!    10 (the default) and 20 connections.
//!
//! 4. The listen backlog of `rustforge_prod::bind` against tokio's `TcpListener::bind` (128): a
//!    reconnect storm of `BENCH_STORM` (default 3,000) clients connecting at once, each sending
//!    one request; how many waited for a SYN retransmission (over 900 ms) and the slowest.
//!
//! Settings: `BENCH_ROUNDS` (default 3; each round starts with another setting), `BENCH_SECS`
//! per run (default 2), `BENCH_ONLY` (`backlog`, `logging`, `redis` or `database`),
//! `DATABASE_URL`.

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{Redis, env, load, median, runtime, serve, server_runtime, throughput};
use rustforge_prod::cache::{Cache, RedisStore};
use rustforge_prod::database::{Database, DatabaseConfig};
use rustforge_prod::redis::{RedisConfig, RedisHandle};
use rustforge_prod::{LogConfig, LogFormat, ProductionLayer};

const CONCURRENCY: u64 = 64;

/// The indices `0..n`, starting at a different one each round, so that no setting always runs
/// first or right after the same other one.
fn rotated(n: usize, round: u64) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (i + round as usize) % n)
}

/// Prints one table: each setting's median and its ratio to the default's.
fn report<S: std::fmt::Display + PartialEq>(
    title: &str,
    unit: &str,
    settings: &[S],
    default: S,
    runs: &mut [Vec<f64>],
) {
    let medians: Vec<f64> = runs.iter_mut().map(|r| median(r)).collect();
    let base = medians[settings.iter().position(|s| *s == default).unwrap()];
    println!("\n{title}\n| setting | {unit} (median) | ratio to the default |\n|---:|---:|---:|");
    for (setting, m) in settings.iter().zip(&medians) {
        let mark = if *setting == default {
            " (default)"
        } else {
            ""
        };
        println!("| {setting}{mark} | {m:.0} | {:.2} |", m / base);
    }
}

fn logging(rounds: u64, secs: u64) {
    let log = |format: LogFormat, filter: &str| {
        let path = std::env::temp_dir().join(format!(
            "tuning_bench_{}_{format:?}_{filter}.log",
            std::process::id()
        ));
        let file = std::fs::File::create(&path).unwrap();
        let (writer, guard) = rustforge_prod::logging::non_blocking(file);
        let config = LogConfig {
            format,
            filter: Some(filter.into()),
        };
        let subscriber = rustforge_prod::logging::subscriber(&config, writer).unwrap();
        (tracing::Dispatch::from(subscriber), Some((guard, path)))
    };
    let variants = [
        ("JSON, info", log(LogFormat::Json, "info")),
        ("pretty, info", log(LogFormat::Pretty, "info")),
        ("JSON, warn", log(LogFormat::Json, "warn")),
        ("no subscriber", (tracing::Dispatch::none(), None)),
    ];
    let servers: Vec<_> = variants
        .iter()
        .map(|(_, (dispatch, _))| {
            let rt = server_runtime(dispatch.clone());
            let addr = rt.block_on(async {
                let prod = ProductionLayer::builder().build().await.unwrap();
                let app = Router::new()
                    .route("/", get(|| async { "Hello, World!" }))
                    .layer(prod.layer());
                serve(app).await
            });
            (rt, addr)
        })
        .collect();
    let mut runs = vec![Vec::new(); servers.len()];
    runtime().block_on(async {
        for round in 0..rounds {
            for i in rotated(servers.len(), round) {
                let sample = load(servers[i].1, "/", None, 32, secs).await;
                assert_eq!(sample.failed, 0);
                runs[i].push(sample.rps());
            }
        }
    });
    let names: Vec<&str> = variants.iter().map(|(name, _)| *name).collect();
    report(
        "RUST_LOG / RUSTFORGE_LOG_FORMAT — ProductionLayer app, 13-byte text, 32 connections",
        "req/s",
        &names,
        "JSON, info",
        &mut runs,
    );
    drop(servers);
    for (_, (_, log)) in variants {
        if let Some((guard, path)) = log {
            drop(guard);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `clients` connections opened at once to `addr`, each sending one request and reading the
/// response; the time each took, sorted.
async fn storm(addr: std::net::SocketAddr, clients: u64) -> Vec<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            tokio::spawn(async move {
                let start = Instant::now();
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream
                    .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    .await
                    .unwrap();
                let mut response = Vec::new();
                stream.read_to_end(&mut response).await.unwrap();
                assert!(response.starts_with(b"HTTP/1.1 200"));
                start.elapsed()
            })
        })
        .collect();
    let mut took = Vec::new();
    for task in tasks {
        took.push(task.await.unwrap());
    }
    took.sort();
    took
}

fn listen_backlog(rounds: u64) {
    let clients = env("BENCH_STORM", 3000);
    let server = server_runtime(tracing::Dispatch::none());
    let app = || Router::new().route("/", get(|| async { "Hello, World!" }));
    let (tokio_addr, ours_addr) = server.block_on(async {
        let tokio_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tokio_addr = tokio_listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(tokio_listener, app()).await.unwrap() });
        let ours = rustforge_prod::bind("127.0.0.1:0").await.unwrap();
        let ours_addr = axum::serve::Listener::local_addr(&ours).unwrap();
        tokio::spawn(async move { axum::serve(ours, app()).await.unwrap() });
        (tokio_addr, ours_addr)
    });
    println!("\nListen backlog — {clients} clients connecting at once, one request each");
    println!(
        "| listener | round | waited for a SYN retry (> 900 ms) | slowest ms |\n|---|---:|---:|---:|"
    );
    runtime().block_on(async {
        for round in 1..=rounds {
            for (name, addr) in [
                ("tokio `TcpListener::bind` (128)", tokio_addr),
                ("`rustforge_prod::bind`", ours_addr),
            ] {
                let took = storm(addr, clients).await;
                let retried = took
                    .iter()
                    .filter(|t| **t > Duration::from_millis(900))
                    .count();
                let slowest = took.last().unwrap().as_millis();
                println!("| {name} | {round} | {retried} | {slowest} |");
            }
        }
    });
}

async fn redis_pool(redis: &Redis, rounds: u64, secs: u64) {
    let sizes = [1, 2, 8, 32];
    let caches: Vec<Cache> = sizes
        .iter()
        .map(|&size| {
            let config = RedisConfig::new(redis.url())
                .prefix("bench")
                .pool_size(size);
            Cache::new(RedisStore::new(RedisHandle::connect(&config).unwrap()))
        })
        .collect();
    caches[0]
        .put("profile", &("Ada Lovelace", "ada@example.com", 42u64), None)
        .await
        .unwrap();
    let mut runs = vec![Vec::new(); sizes.len()];
    for round in 0..rounds {
        for i in rotated(sizes.len(), round) {
            let cache = caches[i].clone();
            runs[i].push(
                throughput(CONCURRENCY, secs, move || {
                    let cache = cache.clone();
                    async move {
                        let value: Option<(String, String, u64)> = cache.get("profile").await;
                        assert!(value.is_some());
                    }
                })
                .await,
            );
        }
    }
    report(
        "RUSTFORGE_REDIS_POOL_SIZE — Cache::get, 64 concurrent tasks",
        "gets/s",
        &sizes,
        RedisConfig::default().pool_size,
        &mut runs,
    );
}

async fn database_pool(url: &str, rounds: u64, secs: u64) {
    let sizes = [2, 5, 10, 20];
    let mut dbs = Vec::new();
    for &size in &sizes {
        let mut config = DatabaseConfig::new(url);
        config.max_connections = size;
        config.min_connections = size;
        config.acquire_timeout = Duration::from_secs(30);
        config.application_name = Some("rustforge-bench-tuning".into());
        let db = Database::connect(&config).unwrap();
        // Open every connection before measuring.
        let held: Vec<_> = futures_util::future::join_all((0..size).map(|_| db.acquire())).await;
        drop(held);
        dbs.push(db);
    }
    let default = DatabaseConfig::default().max_connections;
    for (sql, title) in [
        ("SELECT 1", "`SELECT 1`"),
        ("SELECT pg_sleep(0.002)", "`SELECT pg_sleep(0.002)`"),
    ] {
        let mut runs = vec![Vec::new(); sizes.len()];
        for round in 0..rounds {
            for i in rotated(sizes.len(), round) {
                let pool = dbs[i].pool().clone();
                runs[i].push(
                    throughput(CONCURRENCY, secs, move || {
                        let pool = pool.clone();
                        async move {
                            sqlx::query(sql).execute(&pool).await.unwrap();
                        }
                    })
                    .await,
                );
            }
        }
        report(
            &format!("RUSTFORGE_DB_MAX_CONNECTIONS — {title}, 64 concurrent tasks"),
            "queries/s",
            &sizes,
            default,
            &mut runs,
        );
    }
    for db in dbs {
        db.close().await;
    }
}

fn main() {
    let (rounds, secs) = (env("BENCH_ROUNDS", 3), env("BENCH_SECS", 2));
    let url = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL: the database pool runs against a real PostgreSQL");
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    if run("backlog") {
        listen_backlog(rounds);
    }
    if run("logging") {
        logging(rounds, secs);
    }
    if run("redis") {
        let redis = Redis::start();
        runtime().block_on(redis_pool(&redis, rounds, secs));
    }
    if run("database") {
        runtime().block_on(database_pool(&url, rounds, secs));
    }
}

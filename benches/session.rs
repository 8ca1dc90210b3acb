//! The cost of a session per request.
//!
//! ```sh
//! cargo bench --bench session --features redis     # spawns its own redis-server
//! ```
//!
//! 1. Load and save on every request, against the same route without the session layer, on the
//!    memory store and on Redis: each connection keeps its cookie, so every request loads its
//!    session, increments a counter and saves it (the worst case).
//! 2. A request that reads an unchanged session on Redis (the common case), against the same
//!    request reading a key of the same size with a raw `GET` on the shared pool, and against
//!    tower-sessions 0.14 with `tower-sessions-redis-store` 0.16 (the ecosystem's Redis store, on
//!    its own `fred` client) running the same handler (metrics off, plain cookies on both).
//!
//! Rounds are interleaved; `BENCH_ROUNDS` (default 4), `BENCH_SECS` (default 3), `BENCH_CONNS`
//! (default 32).

mod common;

use axum::Router;
use axum::routing::get;
use common::{Redis, env, load_with, median, runtime, serve};
use rustforge_prod::ProductionLayer;
use rustforge_prod::session::Session;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config as FredConfig, Pool};

async fn counter(session: Session) -> String {
    let n: u64 = session.get("n").await.unwrap().unwrap_or(0);
    session.insert("n", n + 1).await.unwrap();
    (n + 1).to_string()
}

/// A server with `/plain` (no session layer) and `/session` (load + save per request).
async fn server(vars: &[(&str, &str)]) -> std::net::SocketAddr {
    let prod = ProductionLayer::builder()
        .from_vars(vars.iter().copied())
        .unwrap()
        .build()
        .await
        .unwrap();
    let sessions = Router::new()
        .route("/session", get(counter))
        .layer(prod.session_layer());
    let app = Router::new()
        .route("/plain", get(|| async { "1" }))
        .merge(sessions);
    serve(app).await
}

/// Reads the session's counter, writing it only when the session is new (each connection's first
/// request): every later request reads an unchanged session.
async fn read(session: Session) -> String {
    match session.get::<u64>("n").await.unwrap() {
        Some(n) => n.to_string(),
        None => {
            session.insert("n", 1u64).await.unwrap();
            "1".to_owned()
        }
    }
}

/// [`read`] for tower-sessions 0.14's `Session`.
async fn read_014(session: tower_sessions_014::Session) -> String {
    match session.get::<u64>("n").await.unwrap() {
        Some(n) => n.to_string(),
        None => {
            session.insert("n", 1u64).await.unwrap();
            "1".to_owned()
        }
    }
}

/// A cookie of the session cookie's length (`__Host-session=` and a 22-character id).
const RAW_COOKIE: &str = "__Host-rawcook=AAAAAAAAAAAAAAAAAAAAAA; Path=/";

/// `/raw` (a `GET` of a 100-byte key on the shared pool), `/read` (an unchanged session read
/// through the crate's layer), `/ecosystem` (the same through tower-sessions 0.14 and
/// tower-sessions-redis-store on fred); all on one Redis, the cookies plain on both layers.
async fn read_server(url: &str) -> std::net::SocketAddr {
    let prod = ProductionLayer::builder()
        .from_vars([
            ("REDIS_URL", url),
            ("RUSTFORGE_REDIS_PREFIX", "bench-read"),
            ("RUSTFORGE_SESSION_STORE", "redis"),
            ("RUSTFORGE_METRICS", "false"), // the same work as the others: no metrics
        ])
        .unwrap()
        .build()
        .await
        .unwrap();
    let redis = prod.redis().unwrap().clone();
    let key = "bench-read:raw".to_owned();
    let _: () = redis
        .query(redis::cmd("SET").arg(&key).arg("x".repeat(100)))
        .await
        .unwrap();
    // The client gets a cookie as long as the session's, so that both routes serve the same
    // requests: what differs is the layer's work, not the header's bytes.
    let raw = move |headers: http::HeaderMap| {
        let (redis, key) = (redis.clone(), key.clone());
        async move {
            let value: Option<String> = redis.query(redis::cmd("GET").arg(&key)).await.unwrap();
            let body = value.map_or(0, |v| v.len()).to_string();
            let cookie = (!headers.contains_key(http::header::COOKIE))
                .then_some([(http::header::SET_COOKIE, RAW_COOKIE)]);
            (cookie, body)
        }
    };
    let pool = Pool::new(FredConfig::from_url(url).unwrap(), None, None, None, 8).unwrap();
    pool.init().await.unwrap();
    let ecosystem = tower_sessions_014::SessionManagerLayer::new(
        tower_sessions_redis_store::RedisStore::new(pool),
    )
    .with_secure(false)
    .with_expiry(tower_sessions_014::Expiry::OnInactivity(
        tower_sessions_014::cookie::time::Duration::hours(2),
    ));
    let app = Router::new()
        .route("/raw", get(raw))
        .merge(
            Router::new()
                .route("/read", get(read))
                .layer(prod.session_layer()),
        )
        .merge(
            Router::new()
                .route("/ecosystem", get(read_014))
                .layer(ecosystem),
        );
    serve(app).await
}

fn main() {
    let redis = Redis::start();
    let url = redis.url();
    let (rounds, secs, conns) = (
        env("BENCH_ROUNDS", 4),
        env("BENCH_SECS", 3),
        env("BENCH_CONNS", 32),
    );
    runtime().block_on(async {
        // BENCH_SESSION_TABLE=read: only the second table.
        let only_read = std::env::var("BENCH_SESSION_TABLE").is_ok_and(|t| t == "read");
        if !only_read {
            println!("\n### Session load + save per request ({conns} connections, {rounds} rounds × {secs} s)\n");
            println!("| store | route | req/s (median) | p99 µs | ratio to no session |");
            println!("|---|---|---:|---:|---:|");
        }
        for store in ["memory", "redis"].into_iter().filter(|_| !only_read) {
            let addr = server(&[
                ("REDIS_URL", url.as_str()),
                ("RUSTFORGE_SESSION_STORE", store),
                ("RUSTFORGE_SESSION_SECRET", "a-bench-secret-of-more-than-thirty-two-bytes"),
            ])
            .await;
            let paths = ["/plain", "/session"];
            for path in paths {
                load_with(addr, path, None, true, conns, 1).await;
            }
            let (mut rps, mut p99) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
            for _ in 0..rounds {
                for (i, path) in paths.iter().enumerate() {
                    let mut sample = load_with(addr, path, None, true, conns, secs).await;
                    assert_eq!(sample.failed, 0, "{store} {path} failed");
                    rps[i].push(sample.rps());
                    p99[i].push(f64::from(sample.percentile(0.99)));
                }
            }
            let plain = median(&mut rps[0]);
            for (i, label) in ["no session layer", "session: load + save"].iter().enumerate() {
                let r = median(&mut rps[i]);
                let p = median(&mut p99[i]);
                println!("| {store} | {label} | {r:.0} | {p:.0} | {:.2} |", r / plain);
            }
        }

        // BENCH_SESSION_ROUTE=/read (or /raw, /ecosystem): load only that route, for a profiler.
        if let Ok(route) = std::env::var("BENCH_SESSION_ROUTE") {
            let addr = read_server(&url).await;
            let path: &'static str = route.leak();
            load_with(addr, path, None, true, conns, 1).await;
            let sample = load_with(addr, path, None, true, conns, secs).await;
            println!("{path}: {:.0} req/s", sample.rps());
            return;
        }
        println!("\n### An unchanged session read, Redis ({conns} connections, {rounds} rounds × {secs} s)\n");
        println!("| route | req/s (median) | p99 µs | ratio to raw GET | ratio to the ecosystem's store |");
        println!("|---|---:|---:|---:|---:|");
        let addr = read_server(&url).await;
        let paths = ["/raw", "/read", "/ecosystem"];
        for path in paths {
            load_with(addr, path, None, true, conns, 1).await;
        }
        let (mut rps, mut p99) = ([vec![], vec![], vec![]], [vec![], vec![], vec![]]);
        for _ in 0..rounds {
            for (i, path) in paths.iter().enumerate() {
                let mut sample = load_with(addr, path, None, true, conns, secs).await;
                assert_eq!(sample.failed, 0, "{path} failed");
                rps[i].push(sample.rps());
                p99[i].push(f64::from(sample.percentile(0.99)));
            }
        }
        // Each ratio is the median of the rounds' own ratios: the routes of one round ran
        // back to back, so a machine that slows down for a while slows all three alike.
        let ratio = |i: usize, base: usize| {
            let mut per_round: Vec<f64> = (0..rounds as usize)
                .map(|r| rps[i][r] / rps[base][r])
                .collect();
            median(&mut per_round)
        };
        let ratios: Vec<(f64, f64)> = (0..3).map(|i| (ratio(i, 0), ratio(i, 2))).collect();
        for (i, label) in [
            "raw `GET` on the shared pool",
            "rustforge session layer (one `GET`)",
            "tower-sessions 0.14 + tower-sessions-redis-store 0.16 (fred)",
        ]
        .iter()
        .enumerate()
        {
            let r = median(&mut rps[i].clone());
            let p = median(&mut p99[i]);
            println!("| {label} | {r:.0} | {p:.0} | {:.2} | {:.2} |", ratios[i].0, ratios[i].1);
        }
    });
}

//! The load generator the benchmarks share: keep-alive HTTP/1.1 connections on loopback, each
//! sending requests back to back, with per-request latencies.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// Serves `app` on a free loopback port of the current runtime.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A two-worker runtime (the machine has two cores).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `op` from `concurrency` tasks for `secs`; operations per second.
pub async fn throughput<F, Fut>(concurrency: u64, secs: u64, op: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, done) = (op.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    op().await;
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    done.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// A two-worker server runtime whose threads log through `dispatch` (each server of a bench
/// can have its own subscriber).
pub fn server_runtime(dispatch: tracing::Dispatch) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // Each runtime thread keeps its dispatcher for its whole life.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .build()
        .unwrap()
}

/// User + system CPU time of a process so far, in milliseconds (`/proc/{pid}/stat`, 100 Hz ticks).
pub fn cpu_ms(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks * 10
}

/// A numeric setting from the environment.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one load run measured.
pub struct Sample {
    pub requests: u64,
    /// Responses with a status other than 2xx.
    pub failed: u64,
    pub latencies_us: Vec<u32>,
    pub elapsed: Duration,
}

impl Sample {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    pub fn percentile(&mut self, p: f64) -> u32 {
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us.get(i).copied().unwrap_or(0)
    }
}

/// `conns` keep-alive connections, each sending requests back to back for `secs`.
pub async fn load(
    addr: SocketAddr,
    path: &'static str,
    encoding: Option<&'static str>,
    conns: u64,
    secs: u64,
) -> Sample {
    load_with(addr, path, encoding, false, conns, secs).await
}

/// [`load`], each connection keeping the cookie it was last given (one session per connection)
/// when `keep_cookie`.
pub async fn load_with(
    addr: SocketAddr,
    path: &'static str,
    encoding: Option<&'static str>,
    keep_cookie: bool,
    conns: u64,
    secs: u64,
) -> Sample {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                let mut latencies = Vec::new();
                let mut failed = 0u64;
                let mut cookie: Option<String> = None;
                while Instant::now() < deadline {
                    let mut req = hyper::Request::get(path)
                        .header("host", "bench")
                        .header("origin", "https://app.example.com");
                    if let Some(encoding) = encoding {
                        req = req.header("accept-encoding", encoding);
                    }
                    if let Some(cookie) = &cookie {
                        req = req.header("cookie", cookie);
                    }
                    let req = req.body(Empty::<Bytes>::new()).unwrap();
                    let sent = Instant::now();
                    let res = sender.send_request(req).await.unwrap();
                    failed += u64::from(!res.status().is_success());
                    if keep_cookie && let Some(set) = res.headers().get("set-cookie") {
                        let set = set.to_str().unwrap();
                        cookie = Some(set.split(';').next().unwrap().to_owned());
                    }
                    let body = res.into_body().collect().await.unwrap().to_bytes();
                    assert!(!body.is_empty());
                    latencies.push(sent.elapsed().as_micros() as u32);
                }
                (latencies, failed)
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    let mut failed = 0;
    for task in tasks {
        let (latencies, task_failed) = task.await.unwrap();
        latencies_us.extend(latencies);
        failed += task_failed;
    }
    Sample {
        requests: latencies_us.len() as u64,
        failed,
        latencies_us,
        elapsed: start.elapsed(),
    }
}

/// The median (sorts `values`).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// A throwaway `redis-server` on a free port (or `REDIS_URL`'s port when set).
pub struct Redis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Self {
        if let Ok(url) = std::env::var("REDIS_URL") {
            let port = url
                .rsplit(':')
                .next()
                .unwrap()
                .trim_end_matches('/')
                .parse()
                .unwrap();
            return Self { port, child: None };
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is needed: apt-get install redis-server");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            port,
            child: Some(child),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id of the server this bench started (none for `REDIS_URL`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

//! Broadcasting at scale: N WebSocket connections speaking the Pusher protocol subscribe to one
//! channel; events published through the signed HTTP API carry their send time; every
//! connection records the delivery latency. The server runs in a child process (its own file
//! descriptors and memory), so its RSS per idle connection is measured too.
//!
//! ```sh
//! cargo bench --bench broadcast      # BENCH_CONNS=10000 BENCH_EVENTS=50
//! ```
//!
//! Reports: connections held, server memory per idle connection, delivery latency p50/p99/max
//! over every (event, connection) pair, and the fan-out time (publish → last subscriber) per
//! event, p50 and max. Targets (issue #6): 10,000 connections, fan-out to 10,000 < 100 ms.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::env;
use futures_util::{SinkExt, StreamExt};
use rustforge_prod::broadcast::signature::{body_md5, sign};
use rustforge_prod::broadcast::{AppConfig, BroadcastConfig, Broadcaster};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "bench-key";
const SECRET: &str = "bench-secret";

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The child: serves the broadcaster and prints its port.
fn server() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut config = BroadcastConfig::default().app(AppConfig::new("1", KEY, SECRET));
        config.activity_timeout = Duration::from_secs(120);
        let broadcaster = Broadcaster::new(config, None).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        let app: axum::Router = broadcaster.routes();
        axum::serve(listener, app).await.unwrap();
    });
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn publish(port: u16, sent_us: u64, seq: usize) {
    let body = format!(
        r#"{{"name":"tick","channel":"bench","data":"{{\"sent\":{sent_us},\"seq\":{seq}}}"}}"#
    );
    let ts = (sent_us / 1_000_000).to_string();
    let md5 = body_md5(body.as_bytes());
    let params = format!("auth_key={KEY}&auth_timestamp={ts}&auth_version=1.0&body_md5={md5}");
    let signature = sign(SECRET, &["POST", "\n", "/apps/1/events", "\n", &params]);
    let url = format!("http://127.0.0.1:{port}/apps/1/events?{params}&auth_signature={signature}");
    let response = reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

fn main() {
    if std::env::args().any(|a| a == "--server") {
        return server();
    }
    let conns = env("BENCH_CONNS", 10_000) as usize;
    let events = env("BENCH_EVENTS", 50) as usize;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--server")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let pid = child.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let base_rss = rss_kib(pid);
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, u64)>();
        let (ready, mut subscribed) = mpsc::unbounded_channel::<()>();
        let started = Instant::now();
        let url = format!("ws://127.0.0.1:{port}/app/{KEY}?protocol=7");
        // Open in waves of 250 so the accept queue never overflows.
        for wave in (0..conns).step_by(250) {
            let mut handles = Vec::new();
            for _ in wave..(wave + 250).min(conns) {
                let (url, tx, ready) = (url.clone(), tx.clone(), ready.clone());
                handles.push(tokio::spawn(async move {
                    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
                    ws.next().await.unwrap().unwrap(); // connection_established
                    let subscribe =
                        r#"{"event":"pusher:subscribe","data":{"channel":"bench","auth":""}}"#;
                    ws.send(Message::text(subscribe)).await.unwrap();
                    ws.next().await.unwrap().unwrap(); // subscription_succeeded
                    let _ = ready.send(());
                    while let Some(Ok(Message::Text(text))) = ws.next().await {
                        let received = now_us();
                        // data is "{\"sent\":N,\"seq\":M}" inside the frame.
                        let field = |name: &str| -> u64 {
                            let at = text.find(name).unwrap() + name.len() + 3;
                            text[at..]
                                .chars()
                                .take_while(char::is_ascii_digit)
                                .collect::<String>()
                                .parse()
                                .unwrap()
                        };
                        let (sent, seq) = (field("sent"), field("seq"));
                        if tx
                            .send((seq as usize, received.saturating_sub(sent)))
                            .is_err()
                        {
                            break;
                        }
                    }
                }));
            }
            for _ in 0..handles.len() {
                subscribed.recv().await.unwrap();
            }
        }
        let connect_time = started.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let per_conn = (rss_kib(pid).saturating_sub(base_rss)) as f64 * 1024.0 / conns as f64;

        let mut latencies = Vec::with_capacity(conns * events);
        let mut fanout = Vec::with_capacity(events);
        for seq in 0..events {
            publish(port, now_us(), seq).await;
            let mut last = 0;
            for _ in 0..conns {
                let (got_seq, latency) = rx.recv().await.unwrap();
                assert_eq!(got_seq, seq);
                latencies.push(latency);
                last = last.max(latency);
            }
            fanout.push(last);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        latencies.sort_unstable();
        fanout.sort_unstable();
        println!(
            "connections held        {conns} (opened in {:.1} s)",
            connect_time.as_secs_f64()
        );
        println!("server memory/idle conn {:.1} KiB", per_conn / 1024.0);
        println!(
            "delivery latency        p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} deliveries)",
            percentile(&latencies, 0.50) as f64 / 1000.0,
            percentile(&latencies, 0.99) as f64 / 1000.0,
            *latencies.last().unwrap() as f64 / 1000.0,
            latencies.len()
        );
        println!(
            "fan-out to all          p50 {:.1} ms  max {:.1} ms  (target < 100 ms at 10,000)",
            percentile(&fanout, 0.50) as f64 / 1000.0,
            *fanout.last().unwrap() as f64 / 1000.0
        );
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

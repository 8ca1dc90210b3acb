//! What the server's heap holds for oversized and unfinished request heads, counted by a global
//! allocator of this test binary (the server runs in this process) rather than judged from the
//! process's RSS, which the allocator does not give back and which moves with the workers'
//! arenas: 300 heads of 350 KB are answered 431 at the 64 KiB limit; 300 heads of 60 KB left
//! unfinished hold at most their buffers until the header-read timeout closes them; and after
//! each of four waves the heap is back where it started.

mod support;

use std::alloc::System;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use axum::serve::Listener as _;
use rustforge_prod::server::{Server, ServerConfig};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The system allocator, counting what is allocated and freed.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not freed yet (a reallocation's growth or shrinkage is counted in
/// `bytes_allocated` or `bytes_deallocated` already).
fn live() -> isize {
    let stats = ALLOCATOR.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: t\r\n\r\n";
const HEADS: usize = 300;
const MIB: isize = 1024 * 1024;

/// Reads until the server closes the connection; what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
            Err(_) => panic!("the server did not close the connection within 30 s"),
            Ok(Ok(0) | Err(_)) => return data,
            Ok(Ok(n)) => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// A `GET /` on a new connection; whether it was answered 200.
async fn served(port: u16) -> bool {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    read_to_close(&mut stream)
        .await
        .starts_with(b"HTTP/1.1 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_unfinished_heads_do_not_hold_memory() {
    let mut config = ServerConfig::default();
    config.header_read_timeout = Duration::from_secs(1);
    let server = Server::new(config).unwrap();
    let listener = rustforge_prod::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().route("/", get(|| async { "ok" }));
    tokio::spawn(async move { server.serve(listener, app, std::future::pending()).await });
    // Warm up: the runtime's and the server's lasting allocations are made.
    let mut warm = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    for _ in 0..20 {
        warm.write_all(GET).await.unwrap();
        let mut buf = [0u8; 1024];
        assert!(warm.read(&mut buf).await.unwrap() > 0);
    }
    drop(warm);
    assert!(served(port).await);
    let filler: Arc<[u8]> = vec![b'a'; 350 * 1024].into();
    let baseline = live();

    // Oversized: answered 431 at the 64 KiB limit and closed.
    let clients = (0..HEADS).map(|_| {
        let filler = filler.clone();
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let _ = stream
                .write_all(b"GET / HTTP/1.1\r\nhost: t\r\nx-big: ")
                .await;
            // The server stops reading at its limit: the rest of the write may fail.
            let _ = stream.write_all(&filler).await;
            read_to_close(&mut stream).await
        })
    });
    for client in futures_util::future::join_all(clients).await {
        let response = client.unwrap();
        assert!(response.starts_with(b"HTTP/1.1 431"), "{response:?}");
    }
    // The connections' tasks end just after their sockets closed.
    let back_to_baseline = || async { live() - baseline < MIB };
    support::eventually("the oversized heads' buffers to be freed", back_to_baseline).await;

    // Unfinished: 60 KB of a head each, then nothing, until the header-read timeout. Each
    // wave's buffers are freed when its connections close: nothing grows wave by wave.
    for _ in 0..4 {
        let mut held = Vec::new();
        for _ in 0..HEADS {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            stream
                .write_all(b"GET / HTTP/1.1\r\nhost: t\r\nx-big: ")
                .await
                .unwrap();
            stream.write_all(&filler[..60 * 1024]).await.unwrap();
            held.push(stream);
        }
        // Still serving; and whatever the server has read of the heads so far is within their
        // buffers (the 64 KiB read buffer, grown in steps, and the connection's state).
        assert!(served(port).await);
        let holding = live() - baseline;
        assert!(
            holding < HEADS as isize * 160 * 1024,
            "held heads cost more than their buffers: {holding} bytes for {HEADS}"
        );
        for stream in &mut held {
            assert!(read_to_close(stream).await.is_empty(), "no response");
        }
        drop(held);
        support::eventually(
            "the unfinished heads' buffers to be freed",
            back_to_baseline,
        )
        .await;
    }
}

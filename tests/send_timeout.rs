//! The server's send deadline and HTTP/2 send buffer against clients that stop reading: an
//! HTTP/1 client that never reads a 64 MiB download, and an HTTP/2 client whose stream windows
//! stay closed while its connection answers pings. The server drops the responses and closes the
//! connections after `send_timeout`; on HTTP/2 each stalled stream pulled at most the send buffer
//! (plus one chunk) from the application. A response waiting for the application's next bytes
//! longer than the timeout is not cut.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use axum::serve::Listener as _;
use bytes::Bytes;
use bytesize::ByteSize;
use futures_util::StreamExt;
use rustforge_prod::server::{Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The download's chunks: 4,096 of 16 KiB (64 MiB).
const CHUNK: usize = 16 * 1024;
const CHUNKS: usize = 4096;
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// What the application saw of its downloads: bytes pulled by the server, bodies dropped.
#[derive(Clone, Default)]
struct Seen {
    pulled: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

/// Counts a dropped body.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `/download`: 64 MiB, counted as the server pulls it; `/slow`: a chunk, then another after
/// three send timeouts of the application thinking.
fn app(seen: Seen) -> Router {
    let download = move || {
        let seen = seen.clone();
        async move {
            let dropped = Dropped(seen.dropped.clone());
            let chunks = futures_util::stream::iter(0..CHUNKS).map(move |_| {
                let _alive = &dropped;
                seen.pulled.fetch_add(CHUNK, Ordering::SeqCst);
                Ok::<_, Infallible>(Bytes::from(vec![b'x'; CHUNK]))
            });
            Body::from_stream(chunks)
        }
    };
    let slow = || async {
        let chunks = futures_util::stream::iter(["first;", "second"]).then(|text| async move {
            if text == "second" {
                tokio::time::sleep(SEND_TIMEOUT * 3).await;
            }
            Ok::<_, Infallible>(Bytes::from(text))
        });
        Body::from_stream(chunks)
    };
    Router::new()
        .route("/download", get(download))
        .route("/slow", get(slow))
}

/// Serves `app` with a 1 s send timeout on a free port until the test ends.
async fn serve(seen: &Seen) -> u16 {
    let mut config = ServerConfig::default();
    config.send_timeout = SEND_TIMEOUT;
    let server = Server::new(config).unwrap();
    let listener = rustforge_prod::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = app(seen.clone());
    tokio::spawn(async move { server.serve(listener, app, std::future::pending()).await });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_that_stops_reading_is_closed_after_the_send_timeout() {
    let seen = Seen::default();
    let port = serve(&seen).await;
    let mut stuck = Vec::new();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream
            .write_all(b"GET /download HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .unwrap();
        stuck.push(stream);
    }
    // Nothing read: the sockets' buffers fill, the server stops being able to send.
    support::eventually("the server to drop the stalled downloads", || async {
        seen.dropped.load(Ordering::SeqCst) == 3
    })
    .await;
    for mut stream in stuck {
        let mut received = 0;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
        assert!(
            received < CHUNK * CHUNKS,
            "the connection was closed mid-response: {received} bytes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_with_closed_windows_is_closed_and_holds_one_send_buffer_a_stream() {
    let seen = Seen::default();
    let port = serve(&seen).await;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            // The streams' windows stay closed: the server may send headers, no data.
            .initial_stream_window_size(0)
            .handshake::<_, http_body_util::Empty<Bytes>>(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    // The connection task keeps answering the server's pings: the client looks alive.
    let connection = tokio::spawn(connection);
    let mut responses = Vec::new();
    for _ in 0..3 {
        let request = http::Request::get(format!("http://127.0.0.1:{port}/download"))
            .body(http_body_util::Empty::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        responses.push(response); // its body is never read
    }
    support::eventually("the server to drop the stalled streams", || async {
        seen.dropped.load(Ordering::SeqCst) == 3
    })
    .await;
    let buffer = ByteSize::kib(64).as_u64() as usize;
    let pulled = seen.pulled.load(Ordering::SeqCst);
    assert!(
        pulled <= 3 * (buffer + CHUNK),
        "each stalled stream held at most the send buffer and a chunk: {pulled} bytes pulled"
    );
    // The connection itself was closed.
    let ended = tokio::time::timeout(Duration::from_secs(10), connection).await;
    assert!(ended.is_ok(), "the HTTP/2 connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_waiting_for_the_application_is_not_cut() {
    let seen = Seen::default();
    let port = serve(&seen).await;
    let body = reqwest::get(format!("http://127.0.0.1:{port}/slow"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "first;second");
}

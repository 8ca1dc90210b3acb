//! `rustforge_prod::serve` against slow, idle and numerous clients, and through a
//! graceful shutdown under load — on `examples/full_stack`, a real process configured by the
//! environment, spoken to with raw sockets over loopback. No timing is asserted beyond the
//! configured timeouts: a close must not come before its timeout, and each wait has a generous
//! guard so that a server that never closes fails instead of hanging. What heads cost the heap:
//! `tests/server_memory.rs`.

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use support::process::Running;

/// How long a test waits for something the server must do before it calls it hung.
const GUARD: Duration = Duration::from_secs(30);

async fn connect(app: &Running) -> TcpStream {
    TcpStream::connect(("127.0.0.1", app.port)).await.unwrap()
}

/// Reads one response (head and a `content-length` body); `None` when the connection closed
/// first.
async fn read_response(stream: &mut TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = find(&data, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if head.starts_with("http/1.1 100") {
                data.drain(..end + 4);
                return Some(head);
            }
            if data.len() >= end + 4 + length {
                return Some(String::from_utf8_lossy(&data[..end + 4 + length]).into_owned());
            }
        }
        match timeout(GUARD, stream.read(&mut buf))
            .await
            .expect("no response")
        {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Waits until the server closes `stream` (EOF or reset); panics on data or after [`GUARD`].
async fn closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    match timeout(GUARD, stream.read(&mut buf)).await {
        Err(_) => panic!("the server did not close the connection within {GUARD:?}"),
        Ok(Ok(0) | Err(_)) => {}
        Ok(Ok(n)) => panic!("unexpected data: {:?}", String::from_utf8_lossy(&buf[..n])),
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: serve.test\r\n\r\n";

/// Sends `GET /` on `stream`; whether it was answered 200.
async fn served(stream: &mut TcpStream) -> bool {
    stream.write_all(GET).await.unwrap();
    read_response(stream)
        .await
        .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
}

#[tokio::test]
async fn a_slowloris_client_is_closed_by_the_header_read_timeout() {
    let app = Running::start(
        "full_stack",
        &[
            ("RUSTFORGE_HEADER_READ_TIMEOUT", "3s"),
            ("RUSTFORGE_IDLE_TIMEOUT", "60s"),
        ],
    );
    let mut stream = connect(&app).await;
    let head = b"GET / HTTP/1.1\r\nhost: serve.test\r\nx-filler: slowly-slowly-slowly\r\n\r\n";
    let started = Instant::now();
    // One byte every 2 s: the whole head would take two minutes.
    let mut buf = [0u8; 64];
    for (sent, byte) in head.iter().enumerate() {
        assert!(sent < head.len() - 1, "the whole head went through");
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        match timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => panic!("a response to half a head: {:?}", &buf[..n]),
        }
    }
    // The server's clock counts whole milliseconds: it may close 1 ms early on its 3 s.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2999),
        "closed before the timeout: {elapsed:?}"
    );
    // And by the 3 s setting, not the 10 s default: the close is seen by the first read after
    // it (a 2 s window), so well before 8 s — the default would not close before 10 s.
    assert!(
        elapsed < Duration::from_secs(8),
        "not closed by the 3 s setting: {elapsed:?}"
    );
    // The server is fine, and a normal client is served.
    let mut stream = connect(&app).await;
    assert!(served(&mut stream).await);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_and_busy_ones_are_not() {
    let app = Running::start(
        "full_stack",
        &[
            ("RUSTFORGE_IDLE_TIMEOUT", "2s"),
            ("PUSHER_APP_ID", "1"),
            ("PUSHER_APP_KEY", "serve-key"),
            ("PUSHER_APP_SECRET", "serve-secret"),
        ],
    );
    // Idle after a request: closed once the idle timeout passed.
    // The server starts the idle clock when its response is done: after `asked`, and before
    // this side has read the response (CI once saw the close less than 2 s after that). Its clock
    // counts whole milliseconds, so the close comes at most 1 ms early on `asked + 2 s`.
    let mut idle = connect(&app).await;
    let asked = Instant::now();
    assert!(served(&mut idle).await);
    closed(&mut idle).await;
    let elapsed = asked.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1999),
        "closed {elapsed:?} after the request"
    );

    // A request whose body takes longer than the idle timeout is in flight, not idle.
    let mut busy = connect(&app).await;
    busy.write_all(
        b"POST /api/echo HTTP/1.1\r\nhost: serve.test\r\ncontent-length: 10\r\n\r\nhello",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 64];
    let quiet = timeout(Duration::from_secs(3), busy.read(&mut buf)).await;
    assert!(
        quiet.is_err(),
        "the connection was cut or answered mid-body: {quiet:?}"
    );
    busy.write_all(b"world").await.unwrap();
    let response = read_response(&mut busy).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("helloworld"), "{response}");

    // A WebSocket is not an idle HTTP connection: it outlives the idle timeout.
    let url = format!("ws://127.0.0.1:{}/app/serve-key?protocol=7", app.port);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let established = ws.next().await.unwrap().unwrap();
    assert!(
        established
            .to_text()
            .unwrap()
            .contains("pusher:connection_established")
    );
    let quiet = timeout(Duration::from_secs(3), ws.next()).await;
    assert!(quiet.is_err(), "the WebSocket got {quiet:?} within 3 s");
    ws.send(Message::text(r#"{"event":"pusher:ping","data":{}}"#))
        .await
        .unwrap();
    let pong = ws.next().await.unwrap().unwrap();
    assert!(pong.to_text().unwrap().contains("pusher:pong"), "{pong:?}");
}

#[tokio::test]
async fn at_the_connection_cap_new_connections_wait_and_open_ones_are_served() {
    let app = Running::start("full_stack", &[("RUSTFORGE_MAX_CONNECTIONS", "10")]);
    let mut open = Vec::new();
    for _ in 0..10 {
        let mut stream = connect(&app).await;
        assert!(served(&mut stream).await);
        open.push(stream);
    }
    // The 11th: the kernel completes the handshake, the server does not accept it yet.
    let mut waiting = connect(&app).await;
    waiting.write_all(GET).await.unwrap();
    // The open connections keep being served...
    for stream in &mut open {
        assert!(served(stream).await);
    }
    // ... while the waiting one got nothing.
    let mut buf = [0u8; 64];
    assert!(
        matches!(waiting.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the connection past the cap was served"
    );
    // One closes: the waiting connection is accepted and served.
    drop(open.remove(0));
    let response = read_response(&mut waiting)
        .await
        .expect("served once a place freed");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_started_requests_under_load() {
    let app = Running::start("full_stack", &[]);
    // A request the handler has started: it asked for the body (100 Continue).
    let mut started = connect(&app).await;
    started
        .write_all(
            b"POST /api/echo HTTP/1.1\r\nhost: serve.test\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n",
        )
        .await
        .unwrap();
    let continue_ = read_response(&mut started).await.unwrap();
    assert!(continue_.starts_with("http/1.1 100"), "{continue_}");
    // An idle keep-alive connection.
    let mut idle = connect(&app).await;
    assert!(served(&mut idle).await);
    // Load: four keep-alive clients in a loop until the server goes away.
    let url = app.url("/api/items/3");
    let (running, mut all_running) = tokio::sync::mpsc::channel(4);
    let load: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            let running = running.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut complete = 0;
                loop {
                    if complete == 10 {
                        running.send(()).await.unwrap();
                    }
                    let Ok(response) = client.get(&url).send().await else {
                        // Refused, or closed before a response began; the server's log tells
                        // whether it had started the request (below).
                        return complete;
                    };
                    assert_eq!(response.status(), 200);
                    let body = response
                        .bytes()
                        .await
                        .expect("a started response is complete");
                    assert!(body.starts_with(b"{"), "{body:?}");
                    complete += 1;
                }
            })
        })
        .collect();

    for _ in 0..4 {
        all_running.recv().await.unwrap();
    }
    app.sigterm();
    app.wait_for_line(|l| l.contains("server stopped accepting"));
    // The idle connection is closed at once; the started request finishes.
    closed(&mut idle).await;
    started.write_all(b"hello").await.unwrap();
    let response = read_response(&mut started)
        .await
        .expect("the started request's response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("hello"), "{response}");
    assert!(response.contains("connection: close"), "{response}");
    closed(&mut started).await;
    let mut complete = 0;
    for client in load {
        complete += client.await.expect("no started request failed");
    }
    assert!(
        TcpStream::connect(("127.0.0.1", app.port)).await.is_err(),
        "the listener is closed"
    );
    // Every response the server produced for the load reached its client whole: a request the
    // server started and the client saw fail would be one more here than the clients counted.
    let produced = app
        .wait_for_clean_exit()
        .iter()
        .filter(|l| l.contains("request completed") && l.contains("/api/items/{id}"))
        .count();
    assert_eq!(
        produced, complete,
        "responses produced by the server / received whole by the clients"
    );
    assert!(complete >= 40, "each client had 10 before the shutdown");
}

/// During the drain the server serves as before (keep-alive included) but refuses WebSocket
/// upgrades (503, for the balancer to send elsewhere). Once it stops accepting, a keep-alive
/// connection is not closed under a balancer that may be sending on it: a request that comes on
/// it — a POST with a body, the request a balancer must never send on a closing connection — is
/// served with `Connection: close`, and a connection left idle closes after the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_the_listener_closes_keep_alive_connections_are_retired_by_their_next_response() {
    let app = Running::start(
        "full_stack",
        &[
            ("RUSTFORGE_SHUTDOWN_DRAIN", "2s"),
            ("PUSHER_APP_ID", "1"),
            ("PUSHER_APP_KEY", "drain-key"),
            ("PUSHER_APP_SECRET", "drain-secret"),
        ],
    );
    let mut kept = connect(&app).await;
    stream_get(&mut kept, "keep-alive").await;
    let mut idle = connect(&app).await;
    stream_get(&mut idle, "keep-alive").await;

    app.sigterm();
    app.wait_for_line(|l| l.contains("draining before shutdown"));
    // The drain: served as usual, the connection kept; upgrades refused with Retry-After.
    stream_get(&mut kept, "keep-alive").await;
    let upgrade = reqwest::Client::new()
        .get(app.url("/app/drain-key?protocol=7"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(upgrade.status(), 503);
    assert_eq!(upgrade.headers()["retry-after"], "1");

    app.wait_for_line(|l| l.contains("server stopped accepting"));
    kept.write_all(
        b"POST /api/echo HTTP/1.1\r\nhost: serve.test\r\ncontent-length: 5\r\n\r\nhello",
    )
    .await
    .unwrap();
    let response = read_response(&mut kept).await.expect("the POST's response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("connection: close"), "{response}");
    assert!(response.ends_with("hello"), "{response}");
    closed(&mut kept).await;
    // Left idle: closed by the server once the grace is over (within the guard).
    closed(&mut idle).await;
    app.wait_for_clean_exit();
}

/// Sends `GET /` on `stream` and checks the answer is a 200 whose `connection` header says
/// `expected` (`keep-alive`: none, or not `close`).
async fn stream_get(stream: &mut TcpStream, expected: &str) -> String {
    stream.write_all(GET).await.unwrap();
    let response = read_response(stream).await.expect("a response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let closes = response.to_ascii_lowercase().contains("connection: close");
    assert_eq!(closes, expected == "close", "{response}");
    response
}

#[tokio::test]
async fn at_the_shutdown_deadline_the_remaining_connections_are_closed() {
    let app = Running::start("full_stack", &[("RUSTFORGE_SHUTDOWN_TIMEOUT", "2s")]);
    // A request whose body never comes.
    let mut stuck = connect(&app).await;
    stuck
        .write_all(
            b"POST /api/echo HTTP/1.1\r\nhost: serve.test\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n",
        )
        .await
        .unwrap();
    assert!(
        read_response(&mut stuck)
            .await
            .unwrap()
            .starts_with("http/1.1 100")
    );
    let stopping = Instant::now();
    app.sigterm();
    app.wait_for_line(|l| l.contains("shutdown timeout reached"));
    assert!(stopping.elapsed() >= Duration::from_secs(2));
    closed(&mut stuck).await;
    app.wait_for_clean_exit();
}

#[tokio::test]
async fn http2_without_tls_is_served() {
    let app = Running::start("full_stack", &[]);
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client.get(app.url("/api/items/2")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
}

/// `bind` asks for a listen backlog the kernel caps at `net.core.somaxconn`, not the 128 of
/// tokio's `bind`: what `ss` reports for the listening socket (its Send-Q) is the cap. Whatever
/// the host's `somaxconn`, the check runs in network namespaces of its own (`unshare -rn`, a
/// user namespace: no root needed) with `somaxconn` set to 200 and to 4096: the test binary runs
/// itself there with `SOMAXCONN_NETNS` set.
#[tokio::test]
async fn bind_listens_with_the_kernels_largest_backlog() {
    if std::env::var_os("SOMAXCONN_NETNS").is_none() {
        for somaxconn in ["200", "4096"] {
            let test = std::env::current_exe().unwrap();
            let status = std::process::Command::new("unshare")
                .args(["-rn", "sh", "-c"])
                .arg(
                    "ip link set lo up && echo \"$SOMAXCONN_NETNS\" > /proc/sys/net/core/somaxconn \
                     && exec \"$0\" --exact bind_listens_with_the_kernels_largest_backlog --quiet",
                )
                .arg(test)
                .env("SOMAXCONN_NETNS", somaxconn)
                .status()
                .expect("unshare (util-linux) and ip (iproute2)");
            assert!(status.success(), "the check with somaxconn {somaxconn}");
        }
        return;
    }
    use axum::serve::Listener as _;
    let listener = rustforge_prod::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let wanted: u32 = std::env::var("SOMAXCONN_NETNS").unwrap().parse().unwrap();
    assert_eq!(somaxconn, wanted, "the namespace's own somaxconn");
    let ss = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) lists listening sockets");
    let line = String::from_utf8(ss.stdout).unwrap();
    let backlog: u32 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(
        backlog,
        somaxconn.min(rustforge_prod::server::LISTEN_BACKLOG),
        "{line}"
    );
    assert!(backlog > 128, "{line}");
}

/// Started with a soft open-file limit of 256 and a hard one of 8,192 (as a shell or a
/// container runtime may start it), the server raises the soft limit to the hard one, so it can
/// hold more than a couple of hundred connections; it warns that 8,192 is below its connection
/// cap (10,000).
#[tokio::test]
async fn serve_raises_the_soft_open_file_limit_to_the_hard_one() {
    let server = Running::start_with_open_files("full_stack", 256, 8192, &[]);
    let warning = server.wait_for_line(|l| l.contains("open-file limit is below"));
    assert!(warning.contains("\"max_connections\":10000"), "{warning}");
    assert_eq!(server.open_file_limits(), (8192, 8192));
    // Many more connections than the old soft limit, all served.
    let mut held = Vec::new();
    for _ in 0..400 {
        held.push(
            TcpStream::connect(("127.0.0.1", server.port))
                .await
                .unwrap(),
        );
    }
    let status = support::http::client()
        .get(server.url("/health/live"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let mut last = held.pop().unwrap();
    last.write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    timeout(Duration::from_secs(10), last.read_exact(&mut buf))
        .await
        .expect("the 400th connection is served")
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
}

/// WebSockets over HTTP/2 (RFC 8441): the server advertises `SETTINGS_ENABLE_CONNECT_PROTOCOL`,
/// so an extended CONNECT to the Pusher endpoint must open a WebSocket, not answer 405.
#[tokio::test]
async fn a_websocket_opens_over_http2_extended_connect() {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    let app = Running::start(
        "full_stack",
        &[
            ("PUSHER_APP_ID", "1"),
            ("PUSHER_APP_KEY", "h2-key"),
            ("PUSHER_APP_SECRET", "h2-secret"),
        ],
    );
    let stream = connect(&app).await;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(hyper::Method::CONNECT)
        .uri(format!(
            "http://127.0.0.1:{}/app/h2-key?protocol=7",
            app.port
        ))
        .header("sec-websocket-version", "13")
        .body(Empty::<Bytes>::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200, "{response:?}");
    let upgraded = hyper::upgrade::on(response).await.unwrap();
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    let established = timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        established
            .to_text()
            .unwrap()
            .contains("pusher:connection_established"),
        "{established:?}"
    );
    ws.send(Message::text(r#"{"event":"pusher:ping","data":{}}"#))
        .await
        .unwrap();
    let pong = ws.next().await.unwrap().unwrap();
    assert!(pong.to_text().unwrap().contains("pusher:pong"), "{pong:?}");
}

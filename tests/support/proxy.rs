//! A TCP proxy on a free loopback port that can go silent: after [`StallingProxy::stall`] the
//! connections open at that moment stop forwarding in both directions without closing — as when
//! a NAT or a load balancer drops a flow, or a failover leaves the old peer unreachable.
//! Connections opened afterwards are forwarded normally.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The proxy; stops accepting and drops every connection when dropped.
pub struct StallingProxy {
    port: u16,
    generation: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl StallingProxy {
    /// Forwards connections on a free port to `127.0.0.1:target`.
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let generation = Arc::new(AtomicU64::new(0));
        let current = generation.clone();
        let accept = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let born = current.load(Ordering::SeqCst);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                for (from, to) in [(client_read, server_write), (server_read, client_write)] {
                    let current = current.clone();
                    connections.spawn(forward(from, to, current, born));
                }
            }
        });
        Self {
            port,
            generation,
            accept,
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every connection open now goes silent (nothing forwarded, nothing closed).
    pub fn stall(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies `from` to `to` until either end closes, or until the proxy stalls the connections of
/// generation `born`: then it holds both halves open and does nothing, for ever — a close from
/// one side (the server killed) is not passed on either.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    current: Arc<AtomicU64>,
    born: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) if current.load(Ordering::SeqCst) != born => {
                let _halves = (from, to);
                return std::future::pending().await;
            }
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if current.load(Ordering::SeqCst) != born {
            let _halves = (from, to);
            return std::future::pending().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A TCP proxy on a free loopback port that can drop its connections and refuse new ones, as a
/// network that went away does ([`cut`](Self::cut)), then accept again on the same port
/// ([`restore`](Self::restore)).
pub struct CuttingProxy {
    port: u16,
    target: u16,
    accept: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl CuttingProxy {
    /// Forwards connections on a free port to `127.0.0.1:target`.
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accept = tokio::spawn(forward_all(listener, target));
        Self {
            port,
            target,
            accept: std::sync::Mutex::new(Some(accept)),
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection and stops listening: connects are refused.
    pub fn cut(&self) {
        // The accept task owns the listener and the connections' tasks.
        if let Some(accept) = self.accept.lock().unwrap().take() {
            accept.abort();
        }
    }

    /// Accepts again, on the same port.
    pub async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let accept = tokio::spawn(forward_all(listener, self.target));
        *self.accept.lock().unwrap() = Some(accept);
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Forwards each connection `listener` accepts to `127.0.0.1:target`; dropping the task drops
/// them all.
async fn forward_all(listener: TcpListener, target: u16) {
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((mut client, _)) = listener.accept().await {
        if let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await {
            connections.spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    }
}

/// A round-robin TCP load balancer on a free loopback port: each connection goes to the next
/// target that accepts it (a stopped server is skipped), as a balancer in front of a fleet.
pub struct RoundRobin {
    port: u16,
    accept: JoinHandle<()>,
}

impl RoundRobin {
    /// Balances over `127.0.0.1:target` for each of `targets`.
    pub async fn start(targets: Vec<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accept = tokio::spawn(async move {
            let mut next = 0;
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let mut server = None;
                for _ in 0..targets.len() {
                    let target = targets[next % targets.len()];
                    next += 1;
                    if let Ok(stream) = TcpStream::connect(("127.0.0.1", target)).await {
                        server = Some(stream);
                        break;
                    }
                }
                if let Some(mut server) = server {
                    connections.spawn(async move {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    });
                }
            }
        });
        Self { port, accept }
    }

    /// The balancer's port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

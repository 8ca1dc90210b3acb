//! The conformance suite of the broadcaster's backends: the same scenarios on one server with
//! the in-process hub, and on several servers sharing Redis (or Redis Cluster), through real
//! WebSocket clients speaking the Pusher protocol.
//!
//! Each scenario puts its clients on the servers in turn (client `i` on server `i % n`) and
//! publishes through the last server, so with two servers every event crosses the bus.
//!
//! ```no_run
//! use rustforge_prod::ProductionLayer;
//! use rustforge_prod::broadcast::{AppConfig, BroadcastConfig};
//! use rustforge_prod::testing::broadcast::{Server, conformance};
//! use axum::serve::Listener as _; // local_addr
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let prod = ProductionLayer::builder()
//!     .broadcast(BroadcastConfig::default().app(AppConfig::new("1", "key", "secret")))
//!     .build()
//!     .await?;
//! let broadcaster = prod.broadcaster().unwrap().clone();
//! let listener = rustforge_prod::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let app = axum::Router::new().merge(prod.routes());
//! tokio::spawn(async move { rustforge_prod::serve(listener, app, &prod).await });
//! conformance(&[Server { addr, broadcaster }]).await;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::broadcast::signature::channel_auth;
use crate::broadcast::{Broadcaster, Event};

/// How long a scenario waits for a frame or a condition before it fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// One app server: where its WebSocket endpoint listens, and its broadcaster (for publishing
/// and the channel queries). Every server serves the same app, and with several servers they
/// share a distributed backend.
#[derive(Clone, Debug)]
pub struct Server {
    /// The address serving [`Broadcaster::routes`].
    pub addr: SocketAddr,
    /// The server's broadcaster.
    pub broadcaster: Broadcaster,
}

/// Runs every scenario against `servers` (one, or several sharing a backend). Channel names are
/// new on each run, so runs against a shared Redis do not collide. Panics with the scenario's
/// name on the first failure.
pub async fn conformance(servers: &[Server]) {
    assert!(!servers.is_empty(), "the conformance suite needs a server");
    let run = &format!("{:08x}", uuid::Uuid::new_v4().as_u128() as u32);
    // Each scenario is boxed: one future nesting all of them is slow to type-check.
    Box::pin(delivery(servers, run)).await;
    Box::pin(socket_exclusion(servers, run)).await;
    Box::pin(presence(servers, run)).await;
    Box::pin(cache_channels(servers, run)).await;
    Box::pin(channel_info(servers, run)).await;
}

/// An event published on any server reaches every subscriber on every server, once.
pub async fn delivery(servers: &[Server], run: &str) {
    let channel = format!("conf-delivery-{run}");
    let mut clients = clients(servers, 2).await;
    for client in &mut clients {
        client.subscribe(&channel, None).await;
    }
    for (n, server) in servers.iter().enumerate() {
        publish(
            server,
            Event::new([channel.clone()], "tick", json!({ "n": n }).to_string()),
        )
        .await;
        for client in &mut clients {
            let event = client.next_event().await;
            assert_eq!(event["event"], "tick", "delivery: {event}");
            assert_eq!(event["channel"], channel.as_str(), "delivery: {event}");
            assert_eq!(
                data(&event),
                json!({ "n": n }),
                "delivery: each event once, in order"
            );
        }
    }
}

/// `socket_id` exclusion holds across servers, for the HTTP API's events and for client events.
pub async fn socket_exclusion(servers: &[Server], run: &str) {
    let channel = format!("private-conf-exclusion-{run}");
    let mut clients = clients(servers, 2).await;
    for client in &mut clients {
        client.subscribe(&channel, None).await;
    }
    let excluded = clients[0].socket_id.clone();
    let last = servers.last().unwrap();
    let mut skip = Event::new([channel.clone()], "skipped", "{}".to_owned());
    skip.except = Some(excluded);
    publish(last, skip).await;
    publish(
        last,
        Event::new([channel.clone()], "everyone", "{}".to_owned()),
    )
    .await;
    assert_eq!(
        clients[1].next_event().await["event"],
        "skipped",
        "socket_exclusion"
    );
    assert_eq!(
        clients[1].next_event().await["event"],
        "everyone",
        "socket_exclusion"
    );
    let event = clients[0].next_event().await;
    assert_eq!(
        event["event"], "everyone",
        "socket_exclusion: the excluded socket got {event}"
    );
    // A client event reaches the others, never its sender.
    clients[1]
        .send(json!({ "event": "client-typing", "channel": channel, "data": { "who": 1 } }))
        .await;
    let event = clients[0].next_event().await;
    assert_eq!(event["event"], "client-typing", "socket_exclusion: {event}");
    publish(
        last,
        Event::new([channel.clone()], "after", "{}".to_owned()),
    )
    .await;
    let event = clients[1].next_event().await;
    assert_eq!(
        event["event"], "after",
        "socket_exclusion: the sender got its own {event}"
    );
}

/// Presence is fleet-wide: one member per user whatever their connections and servers,
/// `member_added` on a user's first connection, `member_removed` on their last.
pub async fn presence(servers: &[Server], run: &str) {
    let channel = format!("presence-conf-{run}");
    let mut ann = client(servers, 0).await;
    let snapshot = ann.subscribe(&channel, Some(member("ann"))).await;
    assert_eq!(snapshot["presence"]["count"], 1, "presence: {snapshot}");
    let mut bob = client(servers, 1).await;
    let snapshot = bob.subscribe(&channel, Some(member("bob"))).await;
    assert_eq!(snapshot["presence"]["count"], 2, "presence: {snapshot}");
    assert_eq!(
        snapshot["presence"]["ids"],
        json!(["ann", "bob"]),
        "presence"
    );
    assert_eq!(
        snapshot["presence"]["hash"]["bob"],
        json!({ "name": "bob" }),
        "presence"
    );
    let added = ann.next_event().await;
    assert_eq!(
        added["event"], "pusher_internal:member_added",
        "presence: {added}"
    );
    assert_eq!(
        data(&added),
        json!({ "user_id": "bob", "user_info": { "name": "bob" } })
    );
    // Bob's second connection, on another server: no second member, no second event.
    let mut bob_again = client(servers, 2).await;
    let snapshot = bob_again.subscribe(&channel, Some(member("bob"))).await;
    assert_eq!(snapshot["presence"]["count"], 2, "presence: {snapshot}");
    drop(bob_again);
    let last = servers.last().unwrap();
    eventually("presence: bob's second connection is gone", || async {
        let info = last.broadcaster.channel_info(&channel).await.unwrap();
        info.subscription_count == 2
    })
    .await;
    publish(
        last,
        Event::new([channel.clone()], "marker", "{}".to_owned()),
    )
    .await;
    let event = ann.next_event().await;
    assert_eq!(
        event["event"], "marker",
        "presence: bob still has a connection, got {event}"
    );
    drop(bob);
    let removed = ann.next_event().await;
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "presence: {removed}"
    );
    assert_eq!(data(&removed), json!({ "user_id": "bob" }), "presence");
    for server in servers {
        let members = server.broadcaster.presence(&channel).await.unwrap();
        assert_eq!(members.ids, ["ann"], "presence: seen from every server");
    }
}

/// A cache channel keeps its last event for later subscribers on any server, and says
/// `pusher:cache_miss` when it has none. "Later" is later than the event reached that server
/// (a bus stores the event before it publishes it): a subscriber there then finds it.
pub async fn cache_channels(servers: &[Server], run: &str) {
    let channel = format!("cache-conf-{run}");
    let mut first = client(servers, 0).await;
    first.subscribe(&channel, None).await;
    let miss = first.next_event().await;
    assert_eq!(miss["event"], "pusher:cache_miss", "cache_channels: {miss}");
    let last = servers.len() - 1;
    let mut witness = client(servers, last).await;
    witness.subscribe(&channel, None).await;
    let miss = witness.next_event().await;
    assert_eq!(miss["event"], "pusher:cache_miss", "cache_channels: {miss}");
    publish(
        &servers[0],
        Event::new([channel.clone()], "price", r#"{"eur":3}"#.to_owned()),
    )
    .await;
    assert_eq!(first.next_event().await["event"], "price", "cache_channels");
    assert_eq!(
        witness.next_event().await["event"],
        "price",
        "cache_channels"
    );
    let mut later = client(servers, last).await;
    later.subscribe(&channel, None).await;
    let cached = later.next_event().await;
    assert_eq!(
        cached["event"], "price",
        "cache_channels: the cached event, got {cached}"
    );
    assert_eq!(data(&cached), json!({ "eur": 3 }), "cache_channels");
}

/// Channel queries answer for the whole fleet: occupation, subscription and user counts, the
/// list of occupied channels.
pub async fn channel_info(servers: &[Server], run: &str) {
    let plain = format!("conf-info-{run}");
    let room = format!("presence-conf-info-{run}");
    let mut clients = clients(servers, 2).await;
    for (i, client) in clients.iter_mut().enumerate() {
        client.subscribe(&plain, None).await;
        client
            .subscribe(&room, Some(member(&format!("user{i}"))))
            .await;
    }
    for server in servers {
        let info = server.broadcaster.channel_info(&plain).await.unwrap();
        assert!(info.occupied, "channel_info: {info:?}");
        assert_eq!(info.subscription_count, 2, "channel_info: {info:?}");
        let info = server.broadcaster.channel_info(&room).await.unwrap();
        assert_eq!(info.user_count, Some(2), "channel_info: {info:?}");
        let listed = server.broadcaster.channels("conf-info-").await.unwrap();
        let found = listed.iter().find(|(name, _)| *name == plain);
        assert_eq!(
            found.map(|(_, i)| i.subscription_count),
            Some(2),
            "channel_info: {listed:?}"
        );
    }
    drop(clients);
    for server in servers {
        eventually("channel_info: vacated everywhere", || async {
            let info = server.broadcaster.channel_info(&plain).await.unwrap();
            let listed = server.broadcaster.channels("conf-info-").await.unwrap();
            !info.occupied && info.subscription_count == 0 && listed.is_empty()
        })
        .await;
    }
}

/// `{"user_id": id, "user_info": {"name": id}}`, the `channel_data` of a presence member.
fn member(id: &str) -> String {
    json!({ "user_id": id, "user_info": { "name": id } }).to_string()
}

fn data(frame: &Value) -> Value {
    frame["data"]
        .as_str()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_else(|| frame["data"].clone())
}

async fn publish(server: &Server, event: Event) {
    server
        .broadcaster
        .publish_event(event)
        .await
        .expect("publish");
}

/// Waits until `condition` holds, checking every 20 ms; fails after [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, condition: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn clients(servers: &[Server], n: usize) -> Vec<Client> {
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        clients.push(client(servers, i).await);
    }
    clients
}

/// A client on server `i % n`.
async fn client(servers: &[Server], i: usize) -> Client {
    Client::connect(&servers[i % servers.len()]).await
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A Pusher-protocol client over a real WebSocket.
struct Client {
    socket: Socket,
    socket_id: String,
    key: String,
    secret: String,
}

impl Client {
    async fn connect(server: &Server) -> Self {
        let app = &server.broadcaster.config().apps[0];
        let url = format!(
            "ws://{}/app/{}?protocol=7&client=js&version=8.4.0",
            server.addr, app.key
        );
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket connect");
        let mut client = Self {
            socket,
            socket_id: String::new(),
            key: app.key.clone(),
            secret: app.secret.clone(),
        };
        let established = client.next_event().await;
        assert_eq!(
            established["event"], "pusher:connection_established",
            "{established}"
        );
        client.socket_id = data(&established)["socket_id"].as_str().unwrap().to_owned();
        client
    }

    async fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .expect("send");
    }

    /// The next frame but pings; fails when none comes within [`PATIENCE`].
    async fn next_event(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("a frame within the patience")
                .expect("the connection is open")
                .expect("a WebSocket message");
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
                if frame["event"] != "pusher:ping" {
                    return frame;
                }
            }
        }
    }

    /// Subscribes (signing private and presence channels); returns the
    /// `subscription_succeeded` data.
    async fn subscribe(&mut self, channel: &str, channel_data: Option<String>) -> Value {
        let mut request = json!({ "channel": channel });
        if channel.starts_with("private-") || channel.starts_with("presence-") {
            let auth = channel_auth(
                &self.key,
                &self.secret,
                &self.socket_id,
                channel,
                channel_data.as_deref(),
            );
            request["auth"] = auth.into();
        }
        if let Some(channel_data) = channel_data {
            request["channel_data"] = channel_data.into();
        }
        self.send(json!({ "event": "pusher:subscribe", "data": request }))
            .await;
        let reply = self.next_event().await;
        assert_eq!(
            reply["event"], "pusher_internal:subscription_succeeded",
            "subscribing to {channel}: {reply}"
        );
        data(&reply)
    }
}

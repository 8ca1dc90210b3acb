//! A Pusher-protocol test client over a real WebSocket (tokio-tungstenite), a signer for the
//! HTTP API, and the app the broadcasting tests serve.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use rustforge_prod::broadcast::signature::{body_md5, sign};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub const APP_ID: &str = "1";
pub const KEY: &str = "app-key";
pub const SECRET: &str = "app-secret-for-tests";

/// One connected client.
pub struct Client {
    pub socket: Socket,
    pub socket_id: String,
}

/// What a read returned: a parsed frame, or the close code.
#[derive(Debug)]
pub enum Received {
    Frame(Value),
    Closed(Option<u16>),
}

impl Client {
    /// Connects to `ws://addr/app/{key}?protocol=7` and reads the handshake.
    pub async fn connect(addr: std::net::SocketAddr) -> Self {
        Self::connect_key(addr, KEY).await.expect("handshake")
    }

    /// Connects with `key`; `Err` holds what came instead of `connection_established`.
    pub async fn connect_key(addr: std::net::SocketAddr, key: &str) -> Result<Self, Received> {
        Self::connect_with(addr, key, &[]).await
    }

    /// Like [`connect_key`](Self::connect_key), with extra request headers.
    pub async fn connect_with(
        addr: std::net::SocketAddr,
        key: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<Self, Received> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;

        let url = format!("ws://{addr}/app/{key}?protocol=7&client=js&version=8.6.0&flash=false");
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("ws connect");
        let mut client = Self {
            socket,
            socket_id: String::new(),
        };
        match client.next().await {
            Received::Frame(f) if f["event"] == "pusher:connection_established" => {
                let data: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
                client.socket_id = data["socket_id"].as_str().unwrap().to_owned();
                Ok(client)
            }
            other => Err(other),
        }
    }

    /// Opens a WebSocket to `url` without reading anything.
    pub async fn open(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Self {
            socket,
            socket_id: String::new(),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.unwrap();
    }

    /// The next frame or close; fails the test after 10 s (a hang).
    pub async fn next(&mut self) -> Received {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("no frame within 10 s");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Received::Frame(serde_json::from_str(&text).unwrap());
                }
                Some(Ok(Message::Close(frame))) => {
                    return Received::Closed(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Received::Closed(None),
            }
        }
    }

    /// The next frame, which must not be a close.
    pub async fn frame(&mut self) -> Value {
        match self.next().await {
            Received::Frame(f) => f,
            closed => panic!("expected a frame, got {closed:?}"),
        }
    }

    /// Reads until a close arrives; returns its code (frames before it are skipped).
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Received::Closed(code) = self.next().await {
                return code;
            }
        }
    }

    pub async fn subscribe(
        &mut self,
        channel: &str,
        auth: Option<String>,
        channel_data: Option<&str>,
    ) -> Value {
        let mut data = serde_json::json!({ "channel": channel, "auth": auth.unwrap_or_default() });
        if let Some(cd) = channel_data {
            data["channel_data"] = Value::String(cd.to_owned());
        }
        self.send(serde_json::json!({ "event": "pusher:subscribe", "data": data }))
            .await;
        self.frame().await
    }

    /// Subscribes with a valid signature of the test app for this socket (private, encrypted or
    /// presence with `channel_data`).
    pub async fn subscribe_signed(&mut self, channel: &str, channel_data: Option<&str>) -> Value {
        let auth = rustforge_prod::broadcast::signature::channel_auth(
            KEY,
            SECRET,
            &self.socket_id,
            channel,
            channel_data,
        );
        self.subscribe(channel, Some(auth), channel_data).await
    }

    /// Pings and expects the pong as the next frame: proves the connection still works and
    /// that nothing else was queued before it.
    pub async fn assert_alive(&mut self) {
        self.send(serde_json::json!({ "event": "pusher:ping", "data": {} }))
            .await;
        let pong = self.frame().await;
        assert_eq!(pong["event"], "pusher:pong", "{pong}");
    }
}

/// `data` of a frame, parsed from its JSON string.
pub fn data(frame: &Value) -> Value {
    match &frame["data"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
        other => other.clone(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The signed query string of an HTTP API request (auth_version 1.0), as the SDKs build it.
pub fn signed_query(
    method: &str,
    path: &str,
    body: &[u8],
    extra: &[(&str, &str)],
    key: &str,
    secret: &str,
    timestamp: u64,
) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("auth_key".into(), key.into()),
        ("auth_timestamp".into(), timestamp.to_string()),
        ("auth_version".into(), "1.0".into()),
    ];
    if !body.is_empty() {
        params.push(("body_md5".into(), body_md5(body)));
    }
    params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    params.sort();
    let joined: Vec<_> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let joined = joined.join("&");
    let signature = sign(secret, &[method, "\n", path, "\n", &joined]);
    format!("{joined}&auth_signature={signature}")
}

/// Sends a signed API request to `base` (e.g. `http://127.0.0.1:PORT`).
pub async fn api(
    base: &str,
    method: &str,
    path: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    api_as(base, method, path, body, extra, KEY, SECRET, now()).await
}

#[allow(clippy::too_many_arguments)]
pub async fn api_as(
    base: &str,
    method: &str,
    path: &str,
    body: &str,
    extra: &[(&str, &str)],
    key: &str,
    secret: &str,
    timestamp: u64,
) -> (u16, Value) {
    let query = signed_query(method, path, body.as_bytes(), extra, key, secret, timestamp);
    let url = format!("{base}{path}?{query}");
    let client = super::http::client();
    let request = match method {
        "POST" => client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_owned()),
        _ => client.get(url),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The settings of the test app: one app with client events.
pub fn config() -> rustforge_prod::broadcast::BroadcastConfig {
    use rustforge_prod::broadcast::{AppConfig, BroadcastConfig};
    BroadcastConfig::default().app(AppConfig::new(APP_ID, KEY, SECRET))
}

/// Serves the crate's routes with `config` and an authorizer that admits the user named by the
/// `X-User-Id` header (presence `user_info` `{"name": id}`), plus `POST /test/close-all`, which
/// closes every socket with 4200 as a shutdown would.
pub async fn serve(
    config: rustforge_prod::broadcast::BroadcastConfig,
) -> (super::http::TestServer, rustforge_prod::ProductionLayer) {
    serve_with(
        config,
        rustforge_prod::ProductionLayer::builder(),
        axum::Router::new(),
    )
    .await
}

/// [`serve`] with `routes` of the test's own (a page and its scripts) on the same origin.
pub async fn serve_with_routes(
    config: rustforge_prod::broadcast::BroadcastConfig,
    routes: axum::Router,
) -> (super::http::TestServer, rustforge_prod::ProductionLayer) {
    serve_with(config, rustforge_prod::ProductionLayer::builder(), routes).await
}

/// [`serve`] with Redis at `url` (key prefix `prefix`): servers with the same Redis and prefix
/// share channels and presence.
#[cfg(feature = "redis")]
pub async fn serve_on_redis(
    config: rustforge_prod::broadcast::BroadcastConfig,
    url: &str,
    prefix: &str,
) -> (super::http::TestServer, rustforge_prod::ProductionLayer) {
    serve_on(
        config,
        rustforge_prod::redis::RedisConfig::new(url).prefix(prefix),
    )
    .await
}

/// A broadcasting server on the Redis `redis` describes (TLS settings and all).
#[cfg(feature = "redis")]
pub async fn serve_on(
    config: rustforge_prod::broadcast::BroadcastConfig,
    redis: rustforge_prod::redis::RedisConfig,
) -> (super::http::TestServer, rustforge_prod::ProductionLayer) {
    serve_with(
        config,
        rustforge_prod::ProductionLayer::builder().redis(redis),
        axum::Router::new(),
    )
    .await
}

async fn serve_with(
    config: rustforge_prod::broadcast::BroadcastConfig,
    builder: rustforge_prod::ProductionLayerBuilder,
    routes: axum::Router,
) -> (super::http::TestServer, rustforge_prod::ProductionLayer) {
    use rustforge_prod::broadcast::{Access, User, authorizer_fn};

    let prod = builder
        .broadcast(config)
        .authorizer(authorizer_fn(|request| async move {
            let user = request
                .headers
                .get("x-user-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match user {
                Some(id) => {
                    let info = serde_json::json!({ "name": id });
                    Access::Member(User::new(id, info))
                }
                None => Access::Deny,
            }
        }))
        .build()
        .await
        .expect("broadcasting app");
    let broadcaster = prod.broadcaster().expect("broadcasting on").clone();
    let app = axum::Router::new()
        .route(
            "/test/close-all",
            axum::routing::post(move || async move {
                broadcaster.close_all();
                "closed"
            }),
        )
        .merge(routes)
        .merge(prod.routes())
        .layer(prod.layer());
    (super::http::TestServer::start(app).await, prod)
}

/// Subscribes with a signature of this socket and the connection-recovery `position` field
/// (`extra` adds fields: `channel_data`, `previous_socket_id`); returns the reply.
pub async fn subscribe_recovering(
    client: &mut Client,
    channel: &str,
    position: &str,
    extra: Value,
) -> Value {
    let auth = (channel.starts_with("private-") || channel.starts_with("presence-")).then(|| {
        rustforge_prod::broadcast::signature::channel_auth(
            KEY,
            SECRET,
            &client.socket_id,
            channel,
            extra["channel_data"].as_str(),
        )
    });
    let mut data =
        json!({ "channel": channel, "auth": auth.unwrap_or_default(), "position": position });
    if let Value::Object(extra) = extra {
        data.as_object_mut().unwrap().extend(extra);
    }
    client
        .send(json!({ "event": "pusher:subscribe", "data": data }))
        .await;
    client.frame().await
}

/// Publishes event `n` with data `n` on `channel` through the HTTP API at `base`, not for
/// `socket_id` when given.
pub async fn publish_n(base: &str, channel: &str, n: u32, socket_id: Option<&str>) {
    let mut body = json!({ "name": "n", "channels": [channel], "data": n.to_string() });
    if let Some(socket_id) = socket_id {
        body["socket_id"] = json!(socket_id);
    }
    let path = format!("/apps/{APP_ID}/events");
    let (status, _) = api(base, "POST", &path, &body.to_string(), &[]).await;
    assert_eq!(status, 200);
}

/// The next frames: (event, data, position).
pub async fn frames(client: &mut Client, count: usize) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    for _ in 0..count {
        let frame = client.frame().await;
        out.push((
            frame["event"].as_str().unwrap().to_owned(),
            frame["data"].as_str().unwrap_or_default().to_owned(),
            frame["position"].as_str().map(str::to_owned),
        ));
    }
    out
}

//! One WebSocket connection speaking the Pusher protocol: handshake, keep-alive, subscriptions,
//! sign-in and client events. A writer task drains the connection's bounded queue; the reader
//! loop below answers the client. Bad input gets the protocol's `pusher:error` (or
//! `pusher:subscription_error`) and the connection stays up.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

use super::bus::Published;
use super::config::BroadcastConfig;
use super::history::{Position, ResumeFailure};
use super::hub::{AppHub, Conn, Resume, SubscribeError};
use super::protocol::{
    Channel, ChannelData, ChannelKind, ClientFrame, MAX_NAME_LEN, SigninData, SubscribeData,
    client_event_frame, close_frame, codes, error_frame, frame, resume_failed_frame,
    subscription_error_frame, with_position,
};
use super::signature::verify_auth;
use super::webhooks::event as webhook;

/// A `^\d+\.\d+$` socket id, random in both halves (unique across servers in practice).
fn new_socket_id() -> String {
    let r = uuid::Uuid::new_v4().as_u128();
    format!(
        "{}.{}",
        (r >> 64) as u64 % 1_000_000_000,
        r as u64 % 1_000_000_000
    )
}

/// The reason sent with a close code.
fn reason(code: u16) -> &'static str {
    match code {
        codes::OVER_CAPACITY => "Over capacity: reconnect later",
        codes::RECONNECT => "Server closing: reconnect",
        codes::PONG_TIMEOUT => "Pong reply not received",
        codes::UNAUTHORIZED => "Connection unauthorized",
        codes::MESSAGE_TOO_BIG => "Message too big",
        codes::INVALID_PAYLOAD => "Text frame is not UTF-8",
        codes::PROTOCOL_ERROR => "Protocol error",
        _ => "",
    }
}

/// Serves one upgraded socket until either side closes it.
pub(crate) async fn serve(
    socket: WebSocket,
    hub: Arc<AppHub>,
    config: Arc<BroadcastConfig>,
    ip: IpAddr,
) {
    // Declared first, dropped last: the task counts as running until its leaves are written.
    let _live = hub.live();
    let (mut sink, mut stream) = socket.split();
    let socket_id: Arc<str> = new_socket_id().into();
    let (conn, mut queue) = Conn::new(socket_id.clone(), config.send_queue);
    if !hub.connect(conn.clone(), ip) {
        let code = codes::OVER_CAPACITY;
        let _ = sink
            .send(Message::Text(error_frame(code, reason(code)).into()))
            .await;
        let close = close_frame(code, reason(code));
        let _ = sink.send(Message::Close(Some(close))).await;
        return;
    }
    let closer = conn.closer().clone();
    let grace = config.pong_timeout;
    let writer = tokio::spawn(async move {
        // One wait for the close switch for the whole connection, not one per frame.
        let pump = async {
            while let Some(text) = queue.recv().await {
                // Everything already queued goes out with one flush (one write syscall for a
                // burst instead of one per frame).
                sink.feed(Message::Text(text)).await?;
                for _ in 0..64 {
                    match queue.try_recv() {
                        Ok(more) => sink.feed(Message::Text(more)).await?,
                        Err(_) => break,
                    }
                }
                sink.flush().await?;
            }
            Ok::<(), axum::Error>(())
        };
        tokio::select! {
            biased;
            () = closer.closed() => {}
            _ = pump => {}
        }
        // Say why, then close with the same code. A client that stopped reading gets the pong
        // timeout to take what was already written and the close; then the socket is dropped.
        if let Some(code) = closer.code() {
            let _ = tokio::time::timeout(grace, async {
                if code >= 4000 {
                    sink.send(Message::Text(error_frame(code, reason(code)).into()))
                        .await?;
                }
                let close = close_frame(code, reason(code));
                sink.send(Message::Close(Some(close))).await
            })
            .await;
        }
    });

    let mut session = Session {
        hub: &hub,
        config: &config,
        conn: &conn,
        client_events: Bucket::new(config.client_event_rate),
        subscribes: Bucket::new(config.subscribe_rate),
        refusals: Bucket::with_burst(
            config.subscribe_rate,
            config.subscribe_rate.saturating_mul(10).max(100),
        ),
        out: Vec::new(),
    };
    let established = serde_json::json!({
        "socket_id": &*socket_id,
        "activity_timeout": config.activity_timeout.as_secs(),
    });
    session.reply(frame(
        "pusher:connection_established",
        None,
        Some(&established.to_string()),
    ));
    let mut pinged = false;
    loop {
        if !session.flush().await {
            break;
        }
        let wait = if pinged {
            config.pong_timeout
        } else {
            config.activity_timeout
        };
        let message = tokio::select! {
            () = conn.closer().closed() => break,
            message = tokio::time::timeout(wait, stream.next()) => message,
        };
        match message {
            Err(_) if pinged => {
                conn.close(codes::PONG_TIMEOUT);
                break;
            }
            Err(_) => {
                session.reply(frame("pusher:ping", None, Some("{}")));
                pinged = true;
            }
            Ok(Some(Err(err))) => {
                // Say why, as RFC 6455 asks, rather than a normal close.
                if let Some(code) = read_error_code(err) {
                    conn.close(code);
                }
                break;
            }
            Ok(None | Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Ok(message))) => {
                pinged = false;
                match message {
                    Message::Text(text) => session.handle(&text).await,
                    Message::Binary(_) => session.error(
                        codes::RECONNECT,
                        "Binary frames are not part of the protocol",
                    ),
                    _ => {}
                }
            }
        }
    }
    let left = hub.disconnect(&socket_id);
    conn.close(1000);
    for (channel, transitions) in left {
        hub.bus().left(&hub, &channel, transitions).await;
    }
    let _ = writer.await;
}

struct Session<'a> {
    hub: &'a AppHub,
    config: &'a BroadcastConfig,
    conn: &'a Conn,
    /// `client_event_rate` client events a second.
    client_events: Bucket,
    /// `subscribe_rate` subscribes a second.
    subscribes: Bucket,
    /// Refusals the subscribe rate may still answer: ten seconds' worth of the rate (at least
    /// 100), refilled at the rate. A client that runs it dry is flooding, not subscribing, and
    /// is disconnected (4100): each refusal would otherwise cost a reply.
    refusals: Bucket,
    /// Replies to the client's own frames, sent (waiting for queue space) before the next read.
    out: Vec<Utf8Bytes>,
}

impl Session<'_> {
    fn reply(&mut self, text: String) {
        self.out.push(text.into());
    }

    /// Sends the queued replies. Unlike fan-out, a reply waits for room in the queue, so a client
    /// that floods requests is slowed to the pace it reads at; one that stops reading for a
    /// pong timeout is closed with 4100. `false` when the connection is closing.
    async fn flush(&mut self) -> bool {
        for text in self.out.drain(..) {
            let wait = self.config.pong_timeout;
            match tokio::time::timeout(wait, self.conn.send_waiting(text, &self.hub.stats)).await {
                Ok(true) => {}
                Ok(false) => return false,
                Err(_) => {
                    self.conn.close(codes::OVER_CAPACITY);
                    return false;
                }
            }
        }
        true
    }

    fn error(&mut self, code: u16, message: &str) {
        self.reply(error_frame(code, message));
    }

    fn socket_id(&self) -> &str {
        &self.conn.socket_id
    }

    async fn handle(&mut self, text: &Utf8Bytes) {
        self.hub.stats.messages_in.fetch_add(1, Ordering::Relaxed);
        if text.len() > self.config.max_message_size {
            return self.error(codes::CLIENT_EVENT_REJECTED, "Message too large");
        }
        let Ok(message) = serde_json::from_str::<ClientFrame>(text.as_str()) else {
            return self.error(codes::RECONNECT, "Invalid message format");
        };
        let data = message.data.as_deref().map_or("{}", |d| d.get());
        match message.event.as_str() {
            "pusher:ping" => self.reply(r#"{"event":"pusher:pong","data":{}}"#.to_owned()),
            "pusher:pong" => {}
            "pusher:subscribe" => self.subscribe(data).await,
            "pusher:unsubscribe" => {
                if let Ok(d) = serde_json::from_str::<SubscribeData>(data) {
                    let transitions = self.hub.unsubscribe(self.socket_id(), &d.channel);
                    self.hub.bus().left(self.hub, &d.channel, transitions).await;
                }
            }
            "pusher:signin" => self.sign_in(data),
            event if event.starts_with("pusher:") => {}
            event if event.starts_with("client-") => {
                self.client_event(event, message.channel.as_deref(), data)
            }
            _ => self.error(codes::CLIENT_EVENT_REJECTED, "Unknown event"),
        }
    }

    async fn subscribe(&mut self, data: &str) {
        let Ok(request) = serde_json::from_str::<SubscribeData>(data) else {
            return self.error(codes::RECONNECT, "Invalid subscribe message");
        };
        let name = request.channel.as_str();
        let refuse = |this: &mut Self, error: &str, status| {
            this.reply(subscription_error_frame(name, error, status))
        };
        if !self.subscribes.take() {
            if !self.refusals.take() {
                self.conn.close(codes::OVER_CAPACITY);
                return;
            }
            return refuse(self, "Subscribing too fast", 429);
        }
        let channel = match Channel::parse(name) {
            Ok(channel) => channel,
            Err(reason) => return refuse(self, reason, 400),
        };
        let (hub, conn) = (self.hub, self.conn);
        let app = &hub.app;
        let auth = request.auth.as_deref().unwrap_or_default();
        let socket: &str = &conn.socket_id;
        let mut member = None;
        match channel.kind {
            ChannelKind::Public => {}
            ChannelKind::User => {
                let user = name.strip_prefix(super::protocol::USER_CHANNEL_PREFIX);
                if self.hub.user_of(socket).as_deref() != user {
                    return refuse(self, "Sign in as this user first", 403);
                }
            }
            ChannelKind::Private | ChannelKind::Encrypted => {
                if !verify_auth(&app.key, &app.secret, &[socket, ":", name], auth) {
                    return refuse(self, "Invalid signature", 401);
                }
            }
            ChannelKind::Presence => {
                let Some(channel_data) = request.channel_data.as_deref() else {
                    return refuse(self, "channel_data is required on presence channels", 400);
                };
                let signed = [socket, ":", name, ":", channel_data];
                if !verify_auth(&app.key, &app.secret, &signed, auth) {
                    return refuse(self, "Invalid signature", 401);
                }
                let Ok(parsed) = serde_json::from_str::<ChannelData>(channel_data) else {
                    return refuse(self, "channel_data is not valid JSON", 400);
                };
                let Some(user_id) = parsed.user_id() else {
                    return refuse(self, "channel_data needs a user_id", 400);
                };
                if user_id.len() > super::protocol::MAX_USER_ID_LEN {
                    return refuse(self, "user_id is too long", 400);
                }
                let info = parsed.user_info.unwrap_or(Value::Null);
                if info.to_string().len() > self.config.max_user_info_size {
                    return refuse(self, "user_info is too large", 413);
                }
                member = Some((user_id, info));
            }
        }
        let presence = member.is_some();
        // Connection recovery: `position` present asks for positions, non-empty resumes.
        let mut invalid_position = false;
        let resume = request.position.as_deref().map(|position| Resume {
            from: match position {
                "" => None,
                text => text.parse::<Position>().ok().or_else(|| {
                    invalid_position = true;
                    None
                }),
            },
            previous_socket: request.previous_socket_id.as_deref(),
        });
        let mut subscribed = match self
            .hub
            .subscribe(socket, name, member, channel.cache, resume)
        {
            Ok(subscribed) => subscribed,
            Err(SubscribeError::PresenceFull) => {
                return refuse(self, "The presence channel is full", 403);
            }
            Err(SubscribeError::TooManyChannels) => {
                return refuse(self, "Too many channels on this connection", 429);
            }
            Err(SubscribeError::NotConnected) => return,
        };
        hub.bus()
            .joined(hub, name, socket, channel.cache, &mut subscribed)
            .await;
        let data = match subscribed.presence.filter(|_| presence) {
            Some(p) => {
                let count = p.ids.len();
                serde_json::json!({"presence": {"ids": p.ids, "hash": p.hash, "count": count}})
                    .to_string()
            }
            None => "{}".to_owned(),
        };
        let succeeded = frame(
            "pusher_internal:subscription_succeeded",
            Some(name),
            Some(&data),
        );
        self.reply(match subscribed.position {
            Some(position) => with_position(&succeeded, position),
            None => succeeded,
        });
        if channel.cache {
            match subscribed.cached {
                Some(event) => self.out.push(event),
                None => {
                    hub.notify(|| webhook::cache_miss(name));
                    self.reply(frame("pusher:cache_miss", Some(name), None))
                }
            }
        }
        // Then the events it missed (or why they cannot be told), before any live one.
        let replay = match subscribed.replay.take() {
            None if invalid_position => Some(Err(ResumeFailure::InvalidPosition)),
            replay => replay,
        };
        let stats = &hub.stats;
        match replay {
            Some(Ok(missed)) => {
                stats.resumed.fetch_add(1, Ordering::Relaxed);
                stats
                    .replayed
                    .fetch_add(missed.len() as u64, Ordering::Relaxed);
                self.out.extend(missed);
            }
            Some(Err(failure)) => {
                let index = ResumeFailure::ALL.iter().position(|f| *f == failure);
                stats.resume_failures[index.unwrap_or_default()].fetch_add(1, Ordering::Relaxed);
                self.reply(resume_failed_frame(name, failure.reason()));
            }
            None => {}
        }
        // Events reach the client only after its subscription_succeeded (and cache replay).
        if self.flush().await {
            hub.activate(socket, name, subscribed.skip_through);
        }
    }

    fn sign_in(&mut self, data: &str) {
        let (hub, conn) = (self.hub, self.conn);
        let app = &hub.app;
        let fail = |this: &Self| {
            this.conn.close(codes::UNAUTHORIZED);
        };
        let Ok(request) = serde_json::from_str::<SigninData>(data) else {
            return fail(self);
        };
        let socket: &str = &conn.socket_id;
        let signed = [socket, "::user::", request.user_data.as_str()];
        if !verify_auth(&app.key, &app.secret, &signed, &request.auth) {
            return fail(self);
        }
        let id = serde_json::from_str::<Value>(&request.user_data)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
            .filter(|id| !id.is_empty());
        let Some(id) = id else {
            return fail(self);
        };
        self.hub.sign_in(socket, &id);
        let reply = serde_json::json!({"event": "pusher:signin_success", "data": {"user_data": request.user_data}});
        self.reply(reply.to_string());
    }

    fn client_event(&mut self, event: &str, channel: Option<&str>, data: &str) {
        let reject =
            |this: &mut Self, message: &str| this.error(codes::CLIENT_EVENT_REJECTED, message);
        if !self.hub.app.client_events {
            return reject(self, "Client events are disabled for this app");
        }
        if event.len() > MAX_NAME_LEN {
            return reject(self, "Event name too long");
        }
        if json_depth(data) > MAX_CLIENT_EVENT_DEPTH {
            return reject(self, "Client event data is nested too deeply");
        }
        let Some(name) = channel else {
            return reject(self, "Client events need a channel");
        };
        match Channel::parse(name) {
            Ok(c) if c.allows_client_events() => {}
            _ => {
                return reject(
                    self,
                    "Client events are only allowed on private and presence channels",
                );
            }
        }
        let Some(user_id) = self.hub.subscription(self.socket_id(), name) else {
            return reject(
                self,
                "Subscribe to the channel before sending client events",
            );
        };
        if !self.client_events.take() {
            return reject(self, "Client event rate limit exceeded");
        }
        let text = client_event_frame(event, name, data, user_id.as_deref());
        let socket = self.socket_id();
        self.hub
            .notify(|| webhook::client_event(name, event, data, socket, user_id.as_deref()));
        let hub = self.hub;
        hub.bus().publish(Published {
            app: &hub.app.id,
            channel: name,
            text: &text,
            except: Some(self.socket_id()),
            cache: false,
            recoverable: false,
        });
        // A client event is not kept for recovery: it is not the app's, and its sender, once
        // reconnected under another id, would be sent its own event back.
        self.hub
            .deliver(name, &Utf8Bytes::from(text), Some(self.socket_id()));
    }
}

/// A token bucket: `rate` a second, in bursts of `burst`.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Self::with_burst(rate, rate)
    }

    /// `rate` a second, in bursts of up to `burst`.
    fn with_burst(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            refilled: Instant::now(),
        }
    }

    /// Takes a token when there is one.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.refilled).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.refilled = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// The close code for a failed read: 1009 for a frame or message over the size limit, 1007
/// for a text frame that is not UTF-8, 1002 for a frame that breaks the protocol; `None` for
/// I/O errors (the peer is gone: nothing to tell it).
fn read_error_code(err: axum::Error) -> Option<u16> {
    match err.into_inner().downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Capacity(_) => Some(codes::MESSAGE_TOO_BIG),
        tungstenite::Error::Utf8(_) => Some(codes::INVALID_PAYLOAD),
        tungstenite::Error::Protocol(_) => Some(codes::PROTOCOL_ERROR),
        _ => None,
    }
}

/// How deeply client-event `data` may nest objects and arrays: it is relayed to every other
/// subscriber, whose JSON parsers (browsers, SDKs) pay for the depth.
const MAX_CLIENT_EVENT_DEPTH: usize = 32;

/// The deepest nesting of objects and arrays in a JSON text (brackets inside strings ignored).
fn json_depth(json: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in json.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        assert_eq!(super::json_depth(r#"{}"#), 1);
        assert_eq!(super::json_depth(r#"{"a":[1,{"b":[]}]}"#), 4);
        assert_eq!(super::json_depth(r#"{"a":"[[[{{{\"]]]"}"#), 1);
        assert_eq!(super::json_depth("42"), 0);
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert_eq!(super::json_depth(&deep), 40);
    }
}

//! [`Broadcaster`]: the Rust API — publish, channel info, presence members, terminating a user.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;

use super::authorizer::Authorizer;
use super::bus::{Bus, LocalBus, Published};
use super::config::BroadcastConfig;
use super::history::{Position, ResumeFailure};
use super::hub::{AppHub, ChannelInfo, Presence};
use super::protocol::{Channel, ChannelKind, MAX_NAME_LEN, codes, frame};
use crate::error::ConfigError;

/// The most channels one publish may name (the Pusher HTTP API's limit).
pub const MAX_CHANNELS_PER_EVENT: usize = 100;

/// How long [`Broadcaster::shutdown`] waits for the closed connections to leave their channels
/// before it removes this server's presence anyway.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A refused publish or query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BroadcastError {
    /// A channel name is invalid.
    #[error("invalid channel {channel:?}: {reason}")]
    InvalidChannel {
        /// The channel.
        channel: String,
        /// Why.
        reason: &'static str,
    },
    /// No channel, or more than 100.
    #[error("an event goes to 1 to 100 channels, not {0}")]
    ChannelCount(usize),
    /// An encrypted channel was named with others (each has its own key).
    #[error("an event to an encrypted channel must name only that channel")]
    EncryptedWithOthers,
    /// The event name is empty or longer than 200 characters.
    #[error("invalid event name {0:?} (1 to 200 characters)")]
    InvalidEventName(String),
    /// `data` is larger than [`BroadcastConfig::max_event_size`].
    #[error("event data of {size} bytes is over the {max}-byte limit")]
    EventTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The Redis backend did not answer.
    #[error("the broadcasting backend is unavailable: {0}")]
    Unavailable(String),
    /// No app with this id.
    #[error("no broadcasting app with id {0:?}")]
    UnknownApp(String),
    /// Presence members were asked of a channel that is not a presence channel.
    #[error("{0:?} is not a presence channel")]
    NotPresence(String),
    /// History was asked of a channel that keeps none (see
    /// [`BroadcastConfig::recovery`]).
    #[error("{0:?} keeps no history (RUSTFORGE_BROADCAST_RECOVERY)")]
    NoHistory(String),
    /// A history cursor that is not a position of the channel's current stream.
    #[error("{0:?} is not a position of this channel's stream")]
    InvalidPosition(String),
}

/// One page of a channel's kept events ([`Broadcaster::history`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryPage {
    /// Newest first.
    pub events: Vec<HistoryEvent>,
    /// Pass it as `before` for the next, older page; `None` on the last.
    pub next: Option<Position>,
}

/// A kept event.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct HistoryEvent {
    /// The event name.
    pub event: String,
    /// The channel.
    pub channel: String,
    /// The event data, as published.
    pub data: String,
    /// Its position in the channel's stream.
    #[serde(serialize_with = "as_string")]
    pub position: Position,
}

fn as_string<S: serde::Serializer>(position: &Position, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(position)
}

/// The most events one [`Broadcaster::history`] page holds.
pub const MAX_HISTORY_PAGE: usize = 100;

/// One event of [`Broadcaster::publish_batch`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Event {
    /// The channels.
    pub channels: Vec<String>,
    /// The event name.
    pub name: String,
    /// The payload, a JSON string forwarded byte for byte.
    pub data: String,
    /// A `socket_id` that does not receive it (the sender's own connection).
    pub except: Option<String>,
}

impl Event {
    /// An event of `data` (any JSON text) to `channels`.
    pub fn new<I, C>(channels: I, name: impl Into<String>, data: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = C>,
        C: Into<String>,
    {
        Self {
            channels: channels.into_iter().map(Into::into).collect(),
            name: name.into(),
            data: data.into(),
            except: None,
        }
    }

    /// Leaves out the connection `socket_id` (Laravel's `->toOthers()`).
    pub fn except(mut self, socket_id: impl Into<String>) -> Self {
        self.except = Some(socket_id.into());
        self
    }
}

/// The broadcasting handle: publishes to channels and reads their state. Cheap to clone; get it
/// from [`ProductionLayer::broadcaster`](crate::ProductionLayer::broadcaster) or build one with
/// [`Broadcaster::new`]. Methods act on the first configured app; [`app`](Self::app) selects
/// another.
#[derive(Clone)]
pub struct Broadcaster {
    pub(crate) inner: Arc<Inner>,
    app: usize,
}

/// Finds the client's address from the peer and the request headers (trusted proxies).
pub(crate) type ClientIpFn = dyn Fn(IpAddr, &http::HeaderMap) -> IpAddr + Send + Sync;

pub(crate) struct Inner {
    pub config: Arc<BroadcastConfig>,
    pub apps: Vec<Arc<AppHub>>,
    pub authorizer: Option<Arc<dyn Authorizer>>,
    /// Resolves the client IP for the per-IP limit; `None`: the peer address.
    pub client_ip: Option<Box<ClientIpFn>>,
}

impl fmt::Debug for Broadcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcaster")
            .field("app", &self.hub().app.id)
            .field("apps", &self.inner.apps.len())
            .finish_non_exhaustive()
    }
}

impl Broadcaster {
    /// Builds the in-process hub of every app of `config` (at least one). `authorizer` decides
    /// private and presence channels at the auth endpoints; without one they refuse (403).
    pub fn new(
        config: BroadcastConfig,
        authorizer: Option<Arc<dyn Authorizer>>,
    ) -> Result<Self, ConfigError> {
        Self::build(
            config,
            authorizer,
            #[cfg(feature = "redis")]
            None,
        )
    }

    /// Like [`new`](Self::new), with the channels, presence and fan-out shared through Redis
    /// by every server using the same Redis and key prefix (single-node Redis).
    #[cfg(feature = "redis")]
    pub fn with_redis(
        config: BroadcastConfig,
        authorizer: Option<Arc<dyn Authorizer>>,
        redis: crate::redis::RedisHandle,
    ) -> Result<Self, ConfigError> {
        Self::build(config, authorizer, Some(redis))
    }

    fn build(
        config: BroadcastConfig,
        authorizer: Option<Arc<dyn Authorizer>>,
        #[cfg(feature = "redis")] redis: Option<crate::redis::RedisHandle>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        if config.apps.is_empty() {
            return Err(ConfigError::new(
                "broadcast.apps",
                "",
                "configure at least one app (PUSHER_APP_ID, PUSHER_APP_KEY, PUSHER_APP_SECRET)",
            ));
        }
        #[cfg(feature = "redis")]
        let cluster = redis.map(|redis| {
            let hold = super::outbox::HoldLimits {
                events: config.hold_events,
                bytes: config.hold_bytes,
                age: config.hold_age,
            };
            let history = (config.recovery != super::history::Recoverable::Off).then_some(
                super::history::Limits {
                    events: config.history_events,
                    age: config.history_age,
                    bytes: config.history_bytes,
                },
            );
            super::cluster::RedisBackend::start(redis, config.node_timeout, hold, history)
        });
        #[cfg(feature = "redis")]
        let bus: Arc<dyn Bus> = match &cluster {
            Some(cluster) => cluster.clone(),
            None => Arc::new(LocalBus),
        };
        #[cfg(not(feature = "redis"))]
        let bus: Arc<dyn Bus> = Arc::new(LocalBus);
        let apps: Vec<Arc<AppHub>> = config
            .apps
            .iter()
            .map(|app| Arc::new(AppHub::new(app.clone(), &config, bus.clone())))
            .collect();
        #[cfg(feature = "redis")]
        if let Some(cluster) = &cluster {
            cluster.attach(&apps);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config: Arc::new(config),
                apps,
                authorizer,
                client_ip: None,
            }),
            app: 0,
        })
    }

    /// Counts per-IP connections by the address `resolve` finds from the peer address and the
    /// request headers, instead of the peer — behind a load balancer every peer is the balancer.
    /// `ProductionLayer` passes the rate limiter's trusted-proxy resolution. Call it before the
    /// handle is cloned; on a shared handle it changes nothing.
    pub fn with_client_ip(
        mut self,
        resolve: impl Fn(IpAddr, &http::HeaderMap) -> IpAddr + Send + Sync + 'static,
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.client_ip = Some(Box::new(resolve));
        }
        self
    }

    /// The same handle acting on the app `id`.
    pub fn app(&self, id: &str) -> Result<Self, BroadcastError> {
        let app = self
            .inner
            .apps
            .iter()
            .position(|hub| hub.app.id == id)
            .ok_or_else(|| BroadcastError::UnknownApp(id.to_owned()))?;
        Ok(Self {
            inner: self.inner.clone(),
            app,
        })
    }

    pub(crate) fn hub(&self) -> &Arc<AppHub> {
        &self.inner.apps[self.app]
    }

    /// Publishes `data` (serialized to JSON) as `event` to `channels`; returns the number of
    /// connections it was queued for.
    ///
    /// ```
    /// use rustforge_prod::broadcast::{AppConfig, BroadcastConfig, Broadcaster};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let broadcaster = Broadcaster::new(
    ///     BroadcastConfig::default().app(AppConfig::new("1", "app-key", "app-secret")),
    ///     None,
    /// )?;
    /// let delivered = broadcaster
    ///     .publish(["orders"], "order.shipped", &serde_json::json!({ "id": 42 }))
    ///     .await?;
    /// assert_eq!(delivered, 0); // nobody is subscribed yet
    /// # Ok(()) }
    /// ```
    pub async fn publish<I, C>(
        &self,
        channels: I,
        event: &str,
        data: &serde_json::Value,
    ) -> Result<usize, BroadcastError>
    where
        I: IntoIterator<Item = C>,
        C: Into<String>,
    {
        self.publish_event(Event::new(channels, event, data.to_string()))
            .await
    }

    /// Publishes one [`Event`] whose `data` is forwarded verbatim.
    pub async fn publish_event(&self, event: Event) -> Result<usize, BroadcastError> {
        let (channels, cache) = self.validate(&event)?;
        // One frame per channel: the `channel` field differs.
        let mut delivered = 0;
        for (channel, cache) in channels.into_iter().zip(cache) {
            let text = frame(&event.name, Some(channel), Some(&event.data));
            let hub = self.hub();
            hub.bus().publish(Published {
                app: &hub.app.id,
                channel,
                text: &text,
                except: event.except.as_deref(),
                cache,
                recoverable: hub.recoverable(channel),
            });
            delivered += self.hub().publish(
                channel,
                &Utf8Bytes::from(text),
                event.except.as_deref(),
                cache,
            );
        }
        Ok(delivered)
    }

    /// Publishes several events (validated first: none is sent when one is invalid).
    pub async fn publish_batch(&self, events: Vec<Event>) -> Result<usize, BroadcastError> {
        for event in &events {
            self.validate(event)?;
        }
        let mut delivered = 0;
        for event in events {
            delivered += self.publish_event(event).await?;
        }
        Ok(delivered)
    }

    fn validate<'e>(
        &self,
        event: &'e Event,
    ) -> Result<(Vec<&'e String>, Vec<bool>), BroadcastError> {
        if event.name.is_empty() || event.name.len() > MAX_NAME_LEN {
            return Err(BroadcastError::InvalidEventName(event.name.clone()));
        }
        let max = self.inner.config.max_event_size;
        if event.data.len() > max {
            return Err(BroadcastError::EventTooLarge {
                size: event.data.len(),
                max,
            });
        }
        let n = event.channels.len();
        if n == 0 || n > MAX_CHANNELS_PER_EVENT {
            return Err(BroadcastError::ChannelCount(n));
        }
        let mut cache = Vec::with_capacity(n);
        for name in &event.channels {
            let channel =
                Channel::parse(name).map_err(|reason| BroadcastError::InvalidChannel {
                    channel: name.clone(),
                    reason,
                })?;
            if channel.kind == ChannelKind::Encrypted && n > 1 {
                return Err(BroadcastError::EncryptedWithOthers);
            }
            cache.push(channel.cache);
        }
        Ok((event.channels.iter().collect(), cache))
    }

    /// Whether the channel is occupied, its subscription count and (presence) user count.
    pub async fn channel_info(&self, channel: &str) -> Result<ChannelInfo, BroadcastError> {
        let presence = parse(channel)?.kind == ChannelKind::Presence;
        let hub = self.hub();
        hub.bus().channel_info(hub, channel, presence).await
    }

    /// Occupied channels whose name starts with `prefix` (`""`: all), sorted, with their info.
    pub async fn channels(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, ChannelInfo)>, BroadcastError> {
        let hub = self.hub();
        hub.bus().channels(hub, prefix).await
    }

    /// The members of a presence channel (unique users and their `user_info`).
    pub async fn presence(&self, channel: &str) -> Result<Presence, BroadcastError> {
        if parse(channel)?.kind != ChannelKind::Presence {
            return Err(BroadcastError::NotPresence(channel.to_owned()));
        }
        let hub = self.hub();
        hub.bus().presence(hub, channel).await
    }

    /// The events `channel` keeps for connection recovery, newest first: at most `limit`
    /// (1–[`MAX_HISTORY_PAGE`]) older than `before` (the `next` of an earlier page): this
    /// server's on the memory bus, the fleet's on Redis ([`BroadcastError::Unavailable`] when
    /// Redis does not answer).
    ///
    /// ```
    /// use rustforge_prod::broadcast::{AppConfig, BroadcastConfig, Broadcaster};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let broadcaster = Broadcaster::new(
    ///     BroadcastConfig::default().app(AppConfig::new("1", "app-key", "app-secret")),
    ///     None,
    /// )?;
    /// for id in 1..=3 {
    ///     broadcaster.publish(["private-orders"], "order.shipped", &serde_json::json!({ "id": id })).await?;
    /// }
    /// let page = broadcaster.history("private-orders", 2, None).await?;
    /// assert_eq!(page.events[0].data, r#"{"id":3}"#);
    /// let older = broadcaster.history("private-orders", 2, page.next).await?;
    /// assert_eq!((older.events.len(), older.next), (1, None));
    /// # Ok(()) }
    /// ```
    pub async fn history(
        &self,
        channel: &str,
        limit: usize,
        before: Option<Position>,
    ) -> Result<HistoryPage, BroadcastError> {
        parse(channel)?;
        let limit = limit.clamp(1, MAX_HISTORY_PAGE);
        let hub = self.hub();
        if !hub.recoverable(channel) {
            return Err(BroadcastError::NoHistory(channel.to_owned()));
        }
        let (frames, next) = hub
            .bus()
            .history(hub, channel, before, limit)
            .await
            .map_err(|failure| match failure {
                ResumeFailure::NotRecoverable => BroadcastError::NoHistory(channel.to_owned()),
                ResumeFailure::Unavailable => {
                    BroadcastError::Unavailable("the channel history could not be read".into())
                }
                _ => BroadcastError::InvalidPosition(
                    before.map(|b| b.to_string()).unwrap_or_default(),
                ),
            })?;
        let events = frames
            .iter()
            .filter_map(|frame| {
                #[derive(serde::Deserialize)]
                struct Kept {
                    event: String,
                    channel: String,
                    data: String,
                    position: String,
                }
                let kept: Kept = serde_json::from_str(frame.as_str()).ok()?;
                Some(HistoryEvent {
                    event: kept.event,
                    channel: kept.channel,
                    data: kept.data,
                    position: kept.position.parse().ok()?,
                })
            })
            .collect();
        Ok(HistoryPage { events, next })
    }

    /// Closes every connection of the signed-in user `user_id` (code 4009: pusher-js does not
    /// reconnect); returns how many were closed.
    pub async fn terminate_user_connections(&self, user_id: &str) -> usize {
        let hub = self.hub();
        hub.bus().terminate_user(&hub.app.id, user_id);
        hub.terminate_user(user_id)
    }

    /// Closes every connection of every app with 4200 (pusher-js reconnects at once, to another
    /// server behind the load balancer). Called on graceful shutdown.
    pub fn close_all(&self) {
        for hub in &self.inner.apps {
            hub.close_all(codes::RECONNECT);
        }
    }

    /// Graceful shutdown, in an order that leaves no ghost member behind during a rolling
    /// deploy: new WebSocket connections are refused (503 with `Retry-After`, so clients land on
    /// another server), the open ones are closed with 4200, and once the last of them has left
    /// its channels (or after [`SHUTDOWN_GRACE`]) this server's presence is removed from Redis at
    /// once — the others send `member_removed` — instead of being left to the node timeout.
    /// Nothing of this server is written to Redis after that.
    pub async fn shutdown(&self) {
        for hub in &self.inner.apps {
            hub.drain();
        }
        self.close_all();
        let gone = futures_util::future::join_all(self.inner.apps.iter().map(|h| h.all_gone()));
        if tokio::time::timeout(SHUTDOWN_GRACE, gone).await.is_err() {
            tracing::warn!(
                "broadcast: connections still leaving at shutdown; removing this server's presence anyway"
            );
        }
        self.hub().bus().shutdown().await;
    }

    /// The WebSocket endpoint `/app/{key}`, the auth endpoints and the HTTP API
    /// (`/apps/{id}/…`), for `Router::merge`. Already part of
    /// [`ProductionLayer::routes`](crate::ProductionLayer::routes) when broadcasting is on.
    pub fn routes<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        super::routes::routes(self.clone())
    }

    pub(crate) fn hub_by_key(&self, key: &str) -> Option<&Arc<AppHub>> {
        self.inner.apps.iter().find(|hub| hub.app.key == key)
    }

    pub(crate) fn config(&self) -> &Arc<BroadcastConfig> {
        &self.inner.config
    }

    pub(crate) fn authorizer(&self) -> Option<&Arc<dyn Authorizer>> {
        self.inner.authorizer.as_ref()
    }

    /// The app's hubs, for the metrics module.
    #[cfg(feature = "metrics")]
    pub(crate) fn hubs(&self) -> &[Arc<AppHub>] {
        &self.inner.apps
    }
}

fn parse(channel: &str) -> Result<Channel<'_>, BroadcastError> {
    Channel::parse(channel).map_err(|reason| BroadcastError::InvalidChannel {
        channel: channel.to_owned(),
        reason,
    })
}

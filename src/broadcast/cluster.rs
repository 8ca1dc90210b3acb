//! The Redis backend: many app servers behind a load balancer act as one broadcaster.
//!
//! - **Fan-out per channel.** A server subscribes (Redis pub/sub) to the topic of each channel
//!   it has local subscribers on — never one firehose every server reads. A publish is
//!   delivered locally at once and sent to the channel's topic with the origin server and the
//!   excluded socket id, so `socket_id` exclusion works across servers.
//! - **Presence in Redis.** Per channel: members with cluster-wide connection counts, their
//!   `user_info`, and each server's share; `member_added`/`member_removed` fire on a user's
//!   first/last connection anywhere (Lua scripts, one hash slot per channel).
//! - **No ghosts.** Every server heartbeats into a sorted set on the Redis clock; a server
//!   silent for `node_timeout` is reaped by the others, which remove its members and send
//!   `member_removed`. A clean shutdown reaps itself at once.
//! - **Faults.** The pub/sub connection reconnects and resubscribes by itself; events that
//!   cannot reach Redis are held and published in order once it is back, and a server that
//!   subscribes again catches up from a short recovery log ([`outbox`](super::outbox)); past
//!   the hold bounds they are counted in `rustforge.broadcast.redis.events{outcome="lost"}`,
//!   never dropped silently. Each event carries its origin's sequence number on its channel,
//!   so a receiver drops a duplicate and counts a gap (`outcome="missed"`).
//!   A connection that went silent without closing (TCP keepalive on every connection, a PING
//!   every 3 s with a 3 s deadline on the subscriber) is replaced within 6 s.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::BroadcastError;
use super::bus::{Bus, HistoryPage, Published, announce_added, announce_removed};
use super::fleet_history::FleetHistory;
use super::history::{Limits, Position, ResumeFailure};
use super::hub::{AppHub, ChannelInfo, PendingResume, Presence, Subscribed, Transitions};
use super::outbox::{HoldLimits, Outgoing, PUBLISH_QUEUE, RecoveryWindow};
use super::webhooks::event as webhook;
use crate::redis::{RedisError, RedisHandle, Script};
use crate::util::BoxFuture;

/// Channels whose sequence numbers are tracked, sent or received, before the table starts over
/// (a receiver takes a number that goes back for a restart, never for a loss).
const MAX_SEQUENCES: usize = 100_000;
/// The subscriber connection PINGs this often, and gives up on it when a PONG takes longer than
/// [`PING_TIMEOUT`]: a connection dropped without a FIN (a NAT or load balancer idle timeout, a
/// failover) is found within `PING_INTERVAL + PING_TIMEOUT` (6 s) and replaced.
const PING_INTERVAL: Duration = Duration::from_secs(3);
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Counters of the backend, read by the metrics module.
#[derive(Debug, Default)]
pub(crate) struct ClusterStats {
    pub published: AtomicU64,
    pub lost: AtomicU64,
    /// Events of other servers that never arrived, told by a gap in their sequence numbers.
    pub missed: AtomicU64,
    pub received: AtomicU64,
    pub reconnects: AtomicU64,
    pub reaped_nodes: AtomicU64,
    /// Times this server found it had been reaped by the others and announced itself again.
    pub reaped_self: AtomicU64,
    /// Events the publisher holds while Redis cannot take them.
    pub held: AtomicU64,
}

struct Scripts {
    join: Script,
    leave: Script,
    subs: Script,
    reap: Script,
    heartbeat: Script,
    resync: Script,
}

/// Writes to Redis that failed and are retried with the next heartbeat, so an outage never
/// leaves a ghost member or a wrong subscription count behind.
enum Pending {
    Leave {
        app: String,
        channel: String,
        user: String,
    },
    Count {
        app: String,
        channel: String,
        delta: i64,
    },
}

enum Watch {
    /// Subscribe; the sender is told once Redis confirmed it.
    Add(String, Option<tokio::sync::oneshot::Sender<()>>),
    Remove(String),
}

/// The Redis backend shared by every app of a broadcaster.
pub(crate) struct RedisBackend {
    redis: RedisHandle,
    pub node: String,
    scripts: Scripts,
    hubs: OnceLock<Vec<Weak<AppHub>>>,
    publish: mpsc::Sender<Outgoing>,
    watch: mpsc::UnboundedSender<Watch>,
    watched: Mutex<HashSet<String>>,
    pending: Mutex<Vec<Pending>>,
    /// The next sequence number of each topic this server publishes to, and the table's epoch
    /// (part of the origin, so that numbers starting over after the table was cleared are not
    /// taken for duplicates). Each event carries its number, so that a receiver drops what it
    /// already had (a replay) and counts what it missed. Numbered and queued under this lock:
    /// the numbers reach Redis in order.
    sent: Mutex<(u64, std::collections::HashMap<String, u64>)>,
    /// The last sequence number received, per topic and origin (server and epoch).
    seen: Mutex<std::collections::HashMap<String, std::collections::HashMap<String, u64>>>,
    /// Open while Redis had trouble lately: events are also written to the recovery log.
    pub(super) recovery: RecoveryWindow,
    /// A resync failed: the heartbeat tries again.
    resync_needed: std::sync::atomic::AtomicBool,
    /// This server removed itself from Redis (shutdown): it writes nothing more there — no
    /// heartbeat, join, leave, count, retry or resync — so it cannot come back as a ghost.
    stopped: std::sync::atomic::AtomicBool,
    pub stats: ClusterStats,
    node_timeout: Duration,
    /// The fleet's history of the recoverable channels (`None` with recovery off).
    history: Option<FleetHistory>,
}

impl RedisBackend {
    /// Starts the publisher, the pub/sub connection and the heartbeat; `hubs` are attached
    /// right after with [`attach`](Self::attach).
    pub(crate) fn start(
        redis: RedisHandle,
        node_timeout: Duration,
        hold: HoldLimits,
        history: Option<Limits>,
    ) -> Arc<Self> {
        let node = format!("{:016x}", uuid::Uuid::new_v4().as_u128() as u64);
        let (publish, outgoing) = mpsc::channel(PUBLISH_QUEUE);
        let (watch, watches) = mpsc::unbounded_channel();
        let backend = Arc::new(Self {
            redis,
            node,
            scripts: Scripts {
                join: Script::new(include_str!("lua/join.lua")),
                leave: Script::new(include_str!("lua/leave.lua")),
                subs: Script::new(include_str!("lua/subs.lua")),
                reap: Script::new(include_str!("lua/reap.lua")),
                heartbeat: Script::new(include_str!("lua/heartbeat.lua")),
                resync: Script::new(include_str!("lua/resync.lua")),
            },
            hubs: OnceLock::new(),
            publish,
            watch,
            watched: Mutex::new(HashSet::new()),
            pending: Mutex::new(Vec::new()),
            sent: Mutex::new((0, std::collections::HashMap::new())),
            seen: Mutex::new(std::collections::HashMap::new()),
            recovery: RecoveryWindow::new(),
            resync_needed: std::sync::atomic::AtomicBool::new(false),
            stopped: std::sync::atomic::AtomicBool::new(false),
            stats: ClusterStats::default(),
            node_timeout,
            history: history.map(FleetHistory::new),
        });
        tokio::spawn(super::outbox::publisher(
            Arc::downgrade(&backend),
            outgoing,
            hold,
        ));
        if backend.redis.is_cluster() {
            tokio::spawn(sharded_subscriber(Arc::downgrade(&backend), watches));
        } else {
            tokio::spawn(subscriber(Arc::downgrade(&backend), watches));
        }
        tokio::spawn(heartbeat(Arc::downgrade(&backend)));
        backend
    }

    pub(crate) fn attach(&self, hubs: &[Arc<AppHub>]) {
        let _ = self.hubs.set(hubs.iter().map(Arc::downgrade).collect());
        for hub in hubs {
            drop(self.watch_topic(self.control_topic(&hub.app.id)));
        }
    }

    pub(super) fn redis(&self) -> &RedisHandle {
        &self.redis
    }

    pub(super) fn history(&self) -> Option<&FleetHistory> {
        self.history.as_ref()
    }

    fn hub(&self, app: &str) -> Option<Arc<AppHub>> {
        self.hubs
            .get()?
            .iter()
            .filter_map(Weak::upgrade)
            .find(|hub| hub.app.id == app)
    }

    fn topic_prefix(&self) -> String {
        format!("{}:bc:", self.redis.prefix())
    }

    fn topic(&self, app: &str, channel: &str) -> String {
        format!("{}{app}:c:{channel}", self.topic_prefix())
    }

    fn control_topic(&self, app: &str) -> String {
        format!("{}{app}:ctl", self.topic_prefix())
    }

    fn channel_keys(&self, app: &str, channel: &str) -> [String; 4] {
        let tag = format!("bc:{app}:{channel}");
        ["members", "info", "nodes", "subs"].map(|k| self.redis.key(&tag, k))
    }

    /// The last event of a cache channel (same slot as the channel's other keys).
    fn cache_key(&self, app: &str, channel: &str) -> String {
        self.redis.key(&format!("bc:{app}:{channel}"), "cache")
    }

    fn node_channels_key(&self, node: &str) -> String {
        self.redis.key("bc", &format!("node:{node}"))
    }

    /// Adds a topic; the returned receiver resolves once Redis confirmed the subscription.
    fn watch_topic(&self, topic: String) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if !watched.insert(topic.clone()) {
            return None;
        }
        let (done, confirmed) = tokio::sync::oneshot::channel();
        let _ = self.watch.send(Watch::Add(topic, Some(done)));
        Some(confirmed)
    }

    /// The channel got its first local subscriber: receive its events from other servers.
    /// Returns once Redis confirmed the subscription (at most the command timeout), so that
    /// `subscription_succeeded` means every later publish anywhere reaches the client.
    pub(crate) async fn watch_channel(&self, app: &str, channel: &str) {
        if let Some(confirmed) = self.watch_topic(self.topic(app, channel)) {
            let _ = tokio::time::timeout(Duration::from_secs(1), confirmed).await;
        }
    }

    /// The channel lost its last local subscriber.
    pub(crate) fn unwatch_channel(&self, app: &str, channel: &str) {
        let topic = self.topic(app, channel);
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if watched.remove(&topic) {
            lock(&self.seen).remove(&topic);
            let _ = self.watch.send(Watch::Remove(topic));
        }
    }

    /// Sends a frame to the other servers' subscribers of `channel` (never waits; a full queue
    /// counts the frame as lost; while Redis is away the publisher holds it). A cache channel's
    /// last event is kept in Redis; a recoverable channel's event goes to the fleet's history.
    fn publish_frame(
        &self,
        app: &str,
        channel: &str,
        text: &str,
        except: Option<&str>,
        cache: bool,
        recoverable: bool,
    ) {
        let topic = self.topic(app, channel);
        let cache = cache.then(|| (self.cache_key(app, channel), text.to_owned()));
        let mut sent = lock(&self.sent);
        let (epoch, numbers) = &mut *sent;
        let seq = match numbers.get_mut(&topic) {
            Some(seq) => {
                *seq += 1;
                *seq
            }
            None => {
                if numbers.len() >= MAX_SEQUENCES {
                    numbers.clear();
                    *epoch += 1;
                }
                numbers.insert(topic.clone(), 1);
                1
            }
        };
        let payload = format!(
            "{}.{epoch}:{seq}\n{}\n{text}",
            self.node,
            except.unwrap_or_default()
        );
        let outgoing = Outgoing {
            topic,
            payload,
            cache,
            log: true,
            history: recoverable && self.history.is_some(),
            queued: std::time::Instant::now(),
        };
        if self.publish.try_send(outgoing).is_err() {
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Completes a local subscription cluster-wide: watches the channel, counts the
    /// subscription, joins presence (sending `member_added` everywhere for a new user, never to
    /// `socket` itself) and replaces the local snapshot and cache with the cluster's. While Redis
    /// fails, the local state is kept and the failure logged: presence is then this server's.
    async fn joined(
        &self,
        hub: &AppHub,
        channel: &str,
        socket: &str,
        cache: bool,
        subscribed: &mut Subscribed,
    ) {
        if self.is_stopped() {
            return;
        }
        let app = hub.app.id.as_str();
        let t = &subscribed.transitions;
        if t.occupied {
            self.watch_channel(app, channel).await;
        }
        if t.subscribed {
            match self.count_subscription(app, channel, 1).await {
                // The first subscription anywhere: the channel is occupied cluster-wide.
                Ok(1) => hub.notify(|| webhook::channel_occupied(channel)),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, channel, "broadcast: cannot count a subscription in Redis; retrying");
                    self.retry(Pending::Count {
                        app: app.into(),
                        channel: channel.into(),
                        delta: 1,
                    });
                }
            }
        }
        if let Some((user, info)) = &t.user_joined {
            match self.join(app, channel, user, info).await {
                Ok((added, members)) => {
                    subscribed.presence = Some(members);
                    if added {
                        let text = announce_added(hub, channel, socket, user, info);
                        self.publish_frame(app, channel, &text, Some(socket), false, false);
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, channel, "broadcast: presence join not recorded in Redis")
                }
            }
        } else if subscribed.presence.is_some()
            && let Ok(members) = self.presence(app, channel).await
        {
            subscribed.presence = Some(members);
        }
        if cache && let Ok(cached) = self.cached(app, channel).await {
            subscribed.cached = cached.map(Utf8Bytes::from);
        }
        if let Some(resume) = subscribed.resume.take() {
            self.resume(app, channel, resume, subscribed).await;
        }
    }

    /// Answers a subscriber's recovery request from the fleet's history, read now that its
    /// subscription is live: the events it missed (their live copies are dropped, see
    /// `AppHub::activate`), or why they cannot be told; and its position.
    async fn resume(
        &self,
        app: &str,
        channel: &str,
        resume: PendingResume,
        subscribed: &mut Subscribed,
    ) {
        let Some(history) = &self.history else {
            subscribed.replay = resume.from.map(|_| Err(ResumeFailure::NotRecoverable));
            return;
        };
        let topic = self.topic(app, channel);
        let stream = match history
            .read(&self.redis, &topic, resume.from.is_some())
            .await
        {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(error = %err, channel, "broadcast: cannot read the channel history from Redis");
                subscribed.replay = resume.from.map(|_| Err(ResumeFailure::Unavailable));
                return;
            }
        };
        let current = stream.current();
        subscribed.position = Some(current);
        if let Some(from) = resume.from {
            let replay = stream.after(from, resume.previous_socket.as_deref());
            if replay.is_ok() {
                subscribed.position = Some(from);
                subscribed.skip_through = Some(current);
            }
            subscribed.replay = Some(replay);
        }
    }

    /// Completes a local unsubscription (or a disconnect) cluster-wide: the count, the watch,
    /// and `member_removed` everywhere when the user's last connection anywhere is gone.
    async fn left(&self, hub: &AppHub, channel: &str, t: Transitions) {
        if self.is_stopped() {
            return;
        }
        let app = hub.app.id.as_str();
        if t.vacated {
            self.unwatch_channel(app, channel);
        }
        if t.subscribed {
            match self.count_subscription(app, channel, -1).await {
                // The last subscription anywhere is gone: the channel is vacated cluster-wide.
                Ok(0) => hub.notify(|| webhook::channel_vacated(channel)),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, channel, "broadcast: cannot count an unsubscription in Redis; retrying");
                    self.retry(Pending::Count {
                        app: app.into(),
                        channel: channel.into(),
                        delta: -1,
                    });
                }
            }
        }
        if let Some(user) = t.user_left
            && let Err(err) = self.leave_and_announce(hub, channel, &user).await
        {
            tracing::warn!(error = %err, channel, "broadcast: presence leave not recorded in Redis; retrying");
            self.retry(Pending::Leave {
                app: app.into(),
                channel: channel.into(),
                user,
            });
        }
    }

    /// Leaves presence cluster-wide and sends `member_removed` everywhere when the user is gone.
    async fn leave_and_announce(
        &self,
        hub: &AppHub,
        channel: &str,
        user: &str,
    ) -> Result<(), RedisError> {
        if self.leave(&hub.app.id, channel, user).await? {
            self.announce_removed(hub, channel, user);
        }
        Ok(())
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    fn retry(&self, pending: Pending) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pending);
    }

    /// Retries the writes that failed; what fails again waits for the next heartbeat.
    async fn retry_pending(&self) {
        if self.is_stopped() {
            return;
        }
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        for item in pending {
            let result = match &item {
                Pending::Count {
                    app,
                    channel,
                    delta,
                } => self
                    .count_subscription(app, channel, *delta)
                    .await
                    .map(drop),
                Pending::Leave { app, channel, user } => match self.hub(app) {
                    Some(hub) => self.leave_and_announce(&hub, channel, user).await,
                    None => Ok(()),
                },
            };
            if result.is_err() {
                self.retry(item);
            }
        }
    }

    /// Writes waiting to be retried (a gauge: non-zero while Redis is failing).
    #[cfg(feature = "metrics")]
    pub(crate) fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Sends `member_removed` to this server's subscribers and the others'.
    fn announce_removed(&self, hub: &AppHub, channel: &str, user: &str) {
        let text = announce_removed(hub, channel, user);
        self.publish_frame(&hub.app.id, channel, &text, None, false, false);
    }

    /// Writes this server's whole local state back to Redis (idempotent), after the pub/sub
    /// connection was lost: Redis may have restarted empty, or joins and leaves may have failed
    /// meanwhile. Supersedes the writes queued for retry before it; a user whose leave could not
    /// be written and who is nowhere any more gets their `member_removed` now.
    pub(crate) async fn resync(&self) -> Result<(), RedisError> {
        if self.is_stopped() {
            return Ok(());
        }
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let hubs: Vec<Arc<AppHub>> = self
            .hubs
            .get()
            .map_or_else(Vec::new, |h| h.iter().filter_map(Weak::upgrade).collect());
        let set = self.node_channels_key(&self.node);
        let mut members = redis::cmd("SMEMBERS");
        members.arg(&set);
        let recorded: Vec<String> = self.redis.query(&members).await?;
        let mut seen = HashSet::new();
        for hub in &hubs {
            let app = hub.app.id.as_str();
            for channel in hub.local_channels() {
                seen.insert(format!("{app}\n{}", channel.name));
                self.register_channel(app, &channel.name).await?;
                self.resync_channel(hub, &channel.name, channel.subscriptions, &channel.users)
                    .await?;
            }
        }
        for entry in recorded.into_iter().filter(|e| !seen.contains(e)) {
            let Some((app, channel)) = entry.split_once('\n') else {
                continue;
            };
            if let Some(hub) = hubs.iter().find(|h| h.app.id == app) {
                self.resync_channel(hub, channel, 0, &[]).await?;
            }
            let mut srem = redis::cmd("SREM");
            srem.arg(&set).arg(&entry);
            self.redis.query::<i64>(&srem).await?;
        }
        for item in pending {
            let Pending::Leave { app, channel, user } = item else {
                continue;
            };
            let Some(hub) = hubs.iter().find(|h| h.app.id == app) else {
                continue;
            };
            let mut exists = redis::cmd("HEXISTS");
            exists.arg(&self.channel_keys(&app, &channel)[0]).arg(&user);
            if self.redis.query::<i64>(&exists).await? == 0 {
                self.announce_removed(hub, &channel, &user);
            }
        }
        Ok(())
    }

    /// [`resync`](Self::resync), or mark it for the next heartbeat when it fails.
    async fn resync_or_retry(&self) {
        if let Err(err) = self.resync().await {
            tracing::warn!(error = %err, "broadcast: could not write this server's presence back to Redis; retrying");
            self.resync_needed.store(true, Ordering::Relaxed);
        }
    }

    async fn resync_channel(
        &self,
        hub: &AppHub,
        channel: &str,
        subscriptions: usize,
        users: &[(String, u32, Value)],
    ) -> Result<(), RedisError> {
        let keys = self.channel_keys(&hub.app.id, channel);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut args = vec![
            self.node.clone(),
            subscriptions.to_string(),
            users.len().to_string(),
        ];
        for (id, connections, info) in users {
            args.extend([id.clone(), connections.to_string(), info.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let reply: Vec<String> = self.redis.eval(&self.scripts.resync, &keys, &args).await?;
        let removed = reply
            .first()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        let names = reply.get(1..).unwrap_or_default();
        let (removed, added) = names.split_at(removed.min(names.len()));
        for user in removed {
            self.announce_removed(hub, channel, user);
        }
        for user in added {
            // This server's subscribers know the user already: only the others are told.
            let info = users
                .iter()
                .find(|(id, _, _)| id == user)
                .map_or(Value::Null, |(_, _, info)| info.clone());
            hub.notify(|| webhook::member_added(channel, user));
            let data = serde_json::json!({ "user_id": user, "user_info": info }).to_string();
            let text =
                super::protocol::frame("pusher_internal:member_added", Some(channel), Some(&data));
            self.publish_frame(&hub.app.id, channel, &text, None, false, false);
        }
        Ok(())
    }

    /// Asks every other server to close the connections of a signed-in user.
    fn terminate_user_everywhere(&self, app: &str, user: &str) {
        let outgoing = Outgoing {
            topic: self.control_topic(app),
            payload: format!("{}\nterminate\n{user}", self.node),
            cache: None,
            log: false,
            history: false,
            queued: std::time::Instant::now(),
        };
        if self.publish.try_send(outgoing).is_err() {
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn register_channel(&self, app: &str, channel: &str) -> Result<(), RedisError> {
        let mut cmd = redis::cmd("SADD");
        cmd.arg(self.node_channels_key(&self.node))
            .arg(format!("{app}\n{channel}"));
        self.redis.query::<i64>(&cmd).await.map(drop)
    }

    /// Counts a local subscription (+1) or its end (-1); returns the cluster-wide total.
    pub(crate) async fn count_subscription(
        &self,
        app: &str,
        channel: &str,
        delta: i64,
    ) -> Result<i64, RedisError> {
        if delta > 0 {
            self.register_channel(app, channel).await?;
        }
        let keys = self.channel_keys(app, channel);
        let delta = delta.to_string();
        self.redis
            .eval::<i64>(&self.scripts.subs, &[&keys[3]], &[&self.node, &delta])
            .await
    }

    /// A user's first connection on this server joined a presence channel: `Some(true)` when
    /// they are new cluster-wide (send `member_added`), and the members.
    pub(crate) async fn join(
        &self,
        app: &str,
        channel: &str,
        user: &str,
        info: &Value,
    ) -> Result<(bool, Presence), RedisError> {
        self.register_channel(app, channel).await?;
        let keys = self.channel_keys(app, channel);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let info = info.to_string();
        let reply: Vec<String> = self
            .redis
            .eval(&self.scripts.join, &keys[..3], &[&self.node, user, &info])
            .await?;
        let added = reply.first().is_some_and(|flag| flag == "1");
        Ok((added, presence_from_pairs(&reply[1.min(reply.len())..])))
    }

    /// A user's last connection on this server left: `true` when they left cluster-wide.
    pub(crate) async fn leave(
        &self,
        app: &str,
        channel: &str,
        user: &str,
    ) -> Result<bool, RedisError> {
        let keys = self.channel_keys(app, channel);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let removed: i64 = self
            .redis
            .eval(&self.scripts.leave, &keys[..3], &[&self.node, user])
            .await?;
        Ok(removed == 1)
    }

    /// The members of a presence channel, cluster-wide.
    pub(crate) async fn presence(&self, app: &str, channel: &str) -> Result<Presence, RedisError> {
        let keys = self.channel_keys(app, channel);
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(&keys[1]);
        let pairs: Vec<String> = self.redis.query(&cmd).await?;
        Ok(presence_from_pairs(&pairs))
    }

    /// Occupation and counts of a channel, cluster-wide.
    pub(crate) async fn channel_info(
        &self,
        app: &str,
        channel: &str,
        presence: bool,
    ) -> Result<ChannelInfo, RedisError> {
        let keys = self.channel_keys(app, channel);
        let mut cmd = redis::cmd("HVALS");
        cmd.arg(&keys[3]);
        let counts: Vec<String> = self.redis.query(&cmd).await?;
        let subscriptions: usize = counts.iter().filter_map(|c| c.parse::<usize>().ok()).sum();
        let user_count = if presence {
            let mut cmd = redis::cmd("HLEN");
            cmd.arg(&keys[0]);
            Some(self.redis.query::<i64>(&cmd).await? as usize)
        } else {
            None
        };
        Ok(ChannelInfo {
            occupied: subscriptions > 0,
            subscription_count: subscriptions,
            user_count,
        })
    }

    /// Channels some server subscribes to (Redis `PUBSUB CHANNELS`: it forgets a dead server's
    /// subscriptions by itself), starting with `prefix`.
    pub(crate) async fn channels(
        &self,
        app: &str,
        prefix: &str,
    ) -> Result<Vec<String>, RedisError> {
        let topic_prefix = self.topic(app, "");
        let mut cmd = redis::cmd("PUBSUB");
        // On a cluster the client asks every primary and combines the lists.
        let kind = if self.redis.is_cluster() {
            "SHARDCHANNELS"
        } else {
            "CHANNELS"
        };
        cmd.arg(kind).arg(format!("{topic_prefix}{prefix}*"));
        let topics: Vec<String> = self.redis.query(&cmd).await?;
        let mut channels: Vec<String> = topics
            .into_iter()
            .filter_map(|t| t.strip_prefix(&topic_prefix).map(str::to_owned))
            .collect();
        channels.sort();
        Ok(channels)
    }

    /// The cached last event of a cache channel.
    pub(crate) async fn cached(
        &self,
        app: &str,
        channel: &str,
    ) -> Result<Option<String>, RedisError> {
        let key = self.cache_key(app, channel);
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        self.redis.query(&cmd).await
    }

    /// Removes every presence entry and subscription count `node` holds, sending
    /// `member_removed` for the users that are gone everywhere. For dead servers and for this one
    /// at shutdown.
    pub(crate) async fn reap(&self, node: &str) -> Result<(), RedisError> {
        let set = self.node_channels_key(node);
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(&set);
        let channels: Vec<String> = self.redis.query(&cmd).await?;
        for entry in channels {
            let Some((app, channel)) = entry.split_once('\n') else {
                continue;
            };
            let keys = self.channel_keys(app, channel);
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let reply: Vec<String> = self.redis.eval(&self.scripts.reap, &keys, &[node]).await?;
            let (vacated, removed) = reply
                .split_first()
                .map_or((false, &[][..]), |(v, rest)| (v == "1", rest));
            // The script runs once per channel for the whole fleet: whoever's call removed the
            // entries is the one server that announces it (and sends the webhooks).
            if let Some(hub) = self.hub(app) {
                for user in removed {
                    self.announce_removed(&hub, channel, user);
                }
                if vacated {
                    hub.notify(|| webhook::channel_vacated(channel));
                }
            }
        }
        let mut del = redis::cmd("DEL");
        del.arg(&set);
        self.redis.query::<i64>(&del).await?;
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(self.redis.key("bc", "nodes")).arg(node);
        self.redis.query::<i64>(&zrem).await.map(drop)
    }

    pub(super) fn deliver(&self, topic: &str, payload: &str) {
        let Some(rest) = topic.strip_prefix(&self.topic_prefix()) else {
            return;
        };
        let mut parts = payload.splitn(3, '\n');
        let (Some(origin), Some(second), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let (origin, seq) = match origin.split_once(':') {
            Some((node, seq)) => (node, seq.parse::<u64>().ok()),
            None => (origin, None),
        };
        // An event of the fleet's history carries its position after the excluded socket.
        let (second, position) = match second.split_once(' ') {
            Some((except, position)) => (except, position.parse::<Position>().ok()),
            None => (second, None),
        };
        // `node.epoch` (or a bare node id, from a server of an earlier version). This server
        // delivered its own events already, but to the subscribers that wait for positions.
        let own = origin.split('.').next() == Some(self.node.as_str());
        if own && position.is_none() {
            return;
        }
        if let Some(seq) = seq
            && !self.first_time(origin, topic, seq)
        {
            // Already delivered: a replay from the recovery log, or a batch sent again.
            return;
        }
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        if let Some(app) = rest.strip_suffix(":ctl") {
            if second == "terminate"
                && let Some(hub) = self.hub(app)
            {
                hub.terminate_user(body);
            }
            return;
        }
        let Some((app, channel)) = rest.split_once(":c:") else {
            return;
        };
        if let Some(hub) = self.hub(app) {
            if let Some(user) = removed_member(body)
                && hub.has_member(channel, &user)
            {
                // Another server removed a user this one still has: this server's share was
                // lost (it was reaped while frozen, or a join could not be written). Its
                // clients keep the member, and its state is written back, which announces the
                // user to the others again.
                self.resync_needed.store(true, Ordering::Relaxed);
                return;
            }
            let except = (!second.is_empty()).then_some(second);
            match position {
                Some(position) => {
                    hub.deliver_positioned(channel, body, position, except, own);
                }
                None => {
                    hub.deliver(channel, &Utf8Bytes::from(body.to_owned()), except);
                }
            }
        }
    }
}

/// The user of a `pusher_internal:member_removed` frame.
fn removed_member(frame: &str) -> Option<String> {
    if !frame.contains("pusher_internal:member_removed") {
        return None;
    }
    let frame: Value = serde_json::from_str(frame).ok()?;
    let data: Value = serde_json::from_str(frame.get("data")?.as_str()?).ok()?;
    Some(data.get("user_id")?.as_str()?.to_owned())
}

impl RedisBackend {
    /// Whether event `seq` of `origin` on `topic` is new (not delivered yet); counts the events
    /// that did not arrive before it.
    fn first_time(&self, origin: &str, topic: &str, seq: u64) -> bool {
        let mut seen = lock(&self.seen);
        // Looked up by reference: a key is allocated only for a new topic or origin.
        if let Some(last) = seen
            .get_mut(topic)
            .and_then(|by_origin| by_origin.get_mut(origin))
        {
            if seq <= *last {
                return false;
            }
            if seq > *last + 1 {
                self.stats
                    .missed
                    .fetch_add(seq - *last - 1, Ordering::Relaxed);
            }
            *last = seq;
            return true;
        }
        if seen.len() >= MAX_SEQUENCES {
            seen.clear();
        }
        seen.entry(topic.to_owned())
            .or_default()
            .insert(origin.to_owned(), seq);
        true
    }

    /// After this server's subscriber (re)connected and subscribed: the events of the watched
    /// `topics` that the others published meanwhile, from the recovery log, in order; what was
    /// already delivered is dropped by its sequence number. Live messages wait meanwhile (the
    /// caller reads them after), so each channel's order holds.
    /// An error means the log could not be read: the caller connects again, and catches up then.
    async fn catch_up(&self, topics: &[String]) -> Result<(), RedisError> {
        let logs = super::outbox::read_logs(&self.redis, topics)
            .await
            .inspect_err(|err| {
                tracing::warn!(error = %err, "broadcast: could not read the recovery log after reconnecting; reconnecting");
            })?;
        for (topic, log) in topics.iter().zip(logs) {
            for payload in log {
                self.deliver(topic, &payload);
            }
        }
        Ok(())
    }
}

/// A mutex of the backend, whatever a panicking holder left in it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn presence_from_pairs(pairs: &[String]) -> Presence {
    let mut hash = serde_json::Map::new();
    for pair in pairs.chunks_exact(2) {
        let info = serde_json::from_str(&pair[1]).unwrap_or(Value::Null);
        hash.insert(pair[0].clone(), info);
    }
    let mut ids: Vec<String> = hash.keys().cloned().collect();
    ids.sort();
    Presence { ids, hash }
}

/// The dedicated pub/sub connection: subscribes to the watched topics, reconnects and
/// resubscribes after any failure.
async fn subscriber(backend: Weak<RedisBackend>, mut watches: mpsc::UnboundedReceiver<Watch>) {
    let mut backoff = Duration::from_millis(50);
    let mut connected_once = false;
    loop {
        let Some(strong) = backend.upgrade() else {
            return;
        };
        let pubsub = match strong.redis.pubsub().await {
            Ok(pubsub) => pubsub,
            Err(err) => {
                tracing::debug!(error = %err, "broadcast: Redis pub/sub connect failed");
                drop(strong);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let topics: Vec<String> = {
            let watched = strong.watched.lock().unwrap_or_else(|e| e.into_inner());
            watched.iter().cloned().collect()
        };
        // Commands queued meanwhile are applied below: subscribing twice is harmless, and a
        // topic added after the snapshot above must not be lost.
        if !topics.is_empty() && sink.subscribe(&topics).await.is_err() {
            continue;
        }
        if connected_once {
            strong.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!(topics = topics.len(), "broadcast: resubscribed to Redis");
            // What the others published while this subscriber was away, before anything live.
            strong.recovery.open();
            if strong.catch_up(&topics).await.is_err() {
                drop(strong);
                tokio::time::sleep(backoff).await;
                continue;
            }
            // Redis may have restarted empty: write this server's presence back.
            let resync = strong.clone();
            tokio::spawn(async move { resync.resync_or_retry().await });
        }
        connected_once = true;
        backoff = Duration::from_millis(50);
        // The pool's connections failed since this one opened: Redis may have failed over
        // while this connection survived (a frozen primary resumed as a replica hears nothing
        // published on the new primary before it resynced). Reconnect, then catch up.
        let generation = strong.redis.generation();
        let redis = strong.redis.clone();
        drop(strong);
        let mut ping = pinger();
        ping.tick().await;
        let mut stale = tokio::time::interval(STALE_CHECK);
        loop {
            tokio::select! {
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        tracing::warn!("broadcast: no PONG from Redis on the pub/sub connection");
                        break;
                    }
                }
                _ = stale.tick() => {
                    if redis.generation() != generation {
                        tracing::warn!("broadcast: Redis connections failed; renewing the pub/sub connection");
                        break;
                    }
                }
                command = watches.recv() => {
                    let result = match command {
                        Some(Watch::Add(topic, done)) => {
                            let result = sink.subscribe(topic).await;
                            if let (Ok(()), Some(done)) = (&result, done) {
                                let _ = done.send(());
                            }
                            result
                        }
                        Some(Watch::Remove(topic)) => sink.unsubscribe(topic).await,
                        None => return,
                    };
                    if result.is_err() {
                        break;
                    }
                }
                message = stream.next() => {
                    let Some(message) = message else { break };
                    let Some(strong) = backend.upgrade() else { return };
                    let payload = String::from_utf8_lossy(message.get_payload_bytes());
                    strong.deliver(message.get_channel_name(), &payload);
                }
            }
        }
        tracing::warn!("broadcast: Redis pub/sub connection lost; reconnecting");
        if let Some(strong) = backend.upgrade() {
            strong.recovery.open();
        }
    }
}

/// The sharded pub/sub connection of a Redis Cluster (RESP3 `SSUBSCRIBE`): the client renews
/// the subscriptions itself after reconnections and slot moves; a disconnection notice makes
/// the next heartbeat write this server's state back, in case a node restarted empty.
async fn sharded_subscriber(
    backend: Weak<RedisBackend>,
    mut watches: mpsc::UnboundedReceiver<Watch>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut connected_once = false;
    loop {
        let Some(strong) = backend.upgrade() else {
            return;
        };
        let (mut conn, mut pushes) = match strong.redis.sharded_pubsub().await {
            Ok(connected) => connected,
            Err(err) => {
                tracing::debug!(error = %err, "broadcast: Redis Cluster pub/sub connect failed");
                drop(strong);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let topics: Vec<String> = {
            let watched = strong.watched.lock().unwrap_or_else(|e| e.into_inner());
            watched.iter().cloned().collect()
        };
        // One topic per command: sharded subscriptions must not span slots.
        let mut ok = true;
        for topic in &topics {
            ok &= conn.ssubscribe(topic).await.is_ok();
        }
        if !ok {
            continue;
        }
        if connected_once {
            // As on a single node: what the others published meanwhile, before anything live.
            strong.recovery.open();
            if strong.catch_up(&topics).await.is_err() {
                drop(strong);
                tokio::time::sleep(backoff).await;
                continue;
            }
        }
        connected_once = true;
        drop(strong);
        let mut ping = pinger();
        ping.tick().await;
        loop {
            tokio::select! {
                _ = ping.tick() => {
                    // PING goes to every primary: a silent one is found as on a single node.
                    let pong = tokio::time::timeout(
                        PING_TIMEOUT,
                        redis::cmd("PING").query_async::<redis::Value>(&mut conn),
                    )
                    .await;
                    if !matches!(pong, Ok(Ok(_))) {
                        tracing::warn!("broadcast: no PONG from the Redis Cluster on the pub/sub connection");
                        if let Some(strong) = backend.upgrade() {
                            strong.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                            strong.resync_needed.store(true, Ordering::Relaxed);
                            strong.recovery.open();
                        }
                        break;
                    }
                }
                command = watches.recv() => {
                    match command {
                        Some(Watch::Add(topic, done)) => {
                            if conn.ssubscribe(&topic).await.is_ok()
                                && let Some(done) = done
                            {
                                let _ = done.send(());
                            }
                        }
                        Some(Watch::Remove(topic)) => {
                            let _ = conn.sunsubscribe(&topic).await;
                        }
                        None => return,
                    }
                }
                push = pushes.recv() => {
                    let Some(push) = push else { break };
                    let Some(strong) = backend.upgrade() else { return };
                    match push.kind {
                        redis::PushKind::SMessage | redis::PushKind::Message => {
                            let mut data = push.data.into_iter();
                            let channel = data.next().and_then(|v| redis::from_redis_value::<String>(v).ok());
                            let payload = data.next().and_then(|v| redis::from_redis_value::<Vec<u8>>(v).ok());
                            if let (Some(channel), Some(payload)) = (channel, payload) {
                                strong.deliver(&channel, &String::from_utf8_lossy(&payload));
                            }
                        }
                        redis::PushKind::Disconnection => {
                            // A node dropped the connection. The client would resubscribe on
                            // its own, at a moment this loop cannot see; a new connection is
                            // subscribed here, then catches up, in that order.
                            strong.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                            strong.resync_needed.store(true, Ordering::Relaxed);
                            strong.recovery.open();
                            break;
                        }
                        _ => {}
                    }
                }
            }
        }
        tracing::warn!("broadcast: Redis Cluster pub/sub connection lost; reconnecting");
    }
}

/// How often the subscriber looks whether the shared handle's connections failed meanwhile.
const STALE_CHECK: Duration = Duration::from_millis(250);

/// The subscriber connections' PING timer (a late tick is not made up for).
fn pinger() -> tokio::time::Interval {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping
}

/// Heartbeats every `node_timeout / 6` and reaps the servers that stopped; when this server
/// finds it was itself reaped, it writes its state back.
async fn heartbeat(backend: Weak<RedisBackend>) {
    let mut beats = 0u64;
    loop {
        let Some(strong) = backend.upgrade() else {
            return;
        };
        if strong.is_stopped() {
            return;
        }
        let every = strong.node_timeout / 6;
        let key = strong.redis.key("bc", "nodes");
        let timeout_ms = strong.node_timeout.as_millis().to_string();
        let node = strong.node.clone();
        match strong
            .redis
            .eval::<Vec<String>>(&strong.scripts.heartbeat, &[&key], &[&node, &timeout_ms])
            .await
        {
            Ok(reply) => {
                let (known, dead) = reply
                    .split_first()
                    .map_or((true, Vec::new()), |(k, rest)| (k == "1", rest.to_vec()));
                if !known && beats > 0 {
                    // The others took this server for dead (it was frozen, or cut off from Redis
                    // longer than the node timeout) and removed its presence: announce it again.
                    strong.stats.reaped_self.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "broadcast: this server was reaped by the others; writing its presence back"
                    );
                    strong.resync_needed.store(true, Ordering::Relaxed);
                }
                beats += 1;
                if strong.resync_needed.swap(false, Ordering::Relaxed) {
                    strong.resync_or_retry().await;
                }
                strong.retry_pending().await;
                for dead in dead.into_iter().filter(|d| *d != node) {
                    match strong.reap(&dead).await {
                        Ok(()) => {
                            strong.stats.reaped_nodes.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(node = %dead, "broadcast: removed the presence of a server that stopped heartbeating");
                        }
                        Err(err) => tracing::debug!(error = %err, "broadcast: reaping failed"),
                    }
                }
            }
            Err(err) => tracing::debug!(error = %err, "broadcast: heartbeat failed"),
        }
        drop(strong);
        tokio::time::sleep(every).await;
    }
}

impl Bus for RedisBackend {
    fn publish(&self, e: Published<'_>) {
        self.publish_frame(e.app, e.channel, e.text, e.except, e.cache, e.recoverable);
    }

    fn history<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
        before: Option<Position>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, ResumeFailure>> {
        Box::pin(async move {
            let history = self.history.as_ref().ok_or(ResumeFailure::NotRecoverable)?;
            let topic = self.topic(&hub.app.id, channel);
            let stream = history
                .read(&self.redis, &topic, true)
                .await
                .map_err(|err| {
                    tracing::warn!(error = %err, channel, "broadcast: cannot read the channel history from Redis");
                    ResumeFailure::Unavailable
                })?;
            stream.page(before, limit)
        })
    }

    fn joined<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
        socket: &'a str,
        cache: bool,
        subscribed: &'a mut Subscribed,
    ) -> BoxFuture<'a, ()> {
        Box::pin(RedisBackend::joined(
            self, hub, channel, socket, cache, subscribed,
        ))
    }

    fn left<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
        transitions: Transitions,
    ) -> BoxFuture<'a, ()> {
        Box::pin(RedisBackend::left(self, hub, channel, transitions))
    }

    fn channel_info<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
        presence: bool,
    ) -> BoxFuture<'a, Result<ChannelInfo, BroadcastError>> {
        Box::pin(async move {
            RedisBackend::channel_info(self, &hub.app.id, channel, presence)
                .await
                .map_err(unavailable)
        })
    }

    fn channels<'a>(
        &'a self,
        hub: &'a AppHub,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, ChannelInfo)>, BroadcastError>> {
        Box::pin(async move {
            let names = RedisBackend::channels(self, &hub.app.id, prefix)
                .await
                .map_err(unavailable)?;
            let mut list = Vec::with_capacity(names.len());
            for name in names {
                let presence = name.starts_with("presence-");
                let info = RedisBackend::channel_info(self, &hub.app.id, &name, presence)
                    .await
                    .map_err(unavailable)?;
                if info.occupied {
                    list.push((name, info));
                }
            }
            Ok(list)
        })
    }

    fn presence<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Presence, BroadcastError>> {
        Box::pin(async move {
            RedisBackend::presence(self, &hub.app.id, channel)
                .await
                .map_err(unavailable)
        })
    }

    fn terminate_user(&self, app: &str, user: &str) {
        self.terminate_user_everywhere(app, user);
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stopped.store(true, Ordering::SeqCst);
            if let Err(err) = self.reap(&self.node).await {
                tracing::warn!(error = %err, "broadcast: could not remove this server's presence from Redis");
            }
        })
    }

    #[cfg(feature = "metrics")]
    fn stats(&self) -> Option<super::bus::BusStats> {
        let s = &self.stats;
        Some(super::bus::BusStats {
            published: s.published.load(Ordering::Relaxed),
            received: s.received.load(Ordering::Relaxed),
            lost: s.lost.load(Ordering::Relaxed),
            missed: s.missed.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            pending: self.pending() as u64,
            reaped_nodes: s.reaped_nodes.load(Ordering::Relaxed),
            reaped_self: s.reaped_self.load(Ordering::Relaxed),
            held: s.held.load(Ordering::Relaxed),
        })
    }
}

/// Redis did not answer a read of the fleet's state.
fn unavailable(err: RedisError) -> BroadcastError {
    BroadcastError::Unavailable(err.to_string())
}

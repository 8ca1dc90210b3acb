//! The in-process hub of one app: connections, channel subscriber sets, presence members with
//! per-user connection counts, signed-in users and cache-channel events.
//!
//! One mutex per app guards the maps; nothing awaits while holding it. Delivery is a `try_send`
//! into each connection's bounded queue, so a publish never waits for a slow client: a full
//! queue closes that client with 4100 instead.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use serde_json::Value;
use tokio::sync::{Notify, mpsc};

use super::bus::Bus;
use super::config::{AppConfig, BroadcastConfig};
use super::history::{History, Limits, Position, Recoverable, ResumeFailure};
use super::protocol::codes;

/// How long a cache channel keeps its last event.
const CACHE_TTL: Duration = Duration::from_secs(30 * 60);

/// A connection as the hub sees it: its id, its send queue and its close switch.
#[derive(Clone)]
pub(crate) struct Conn {
    pub socket_id: Arc<str>,
    tx: mpsc::Sender<Utf8Bytes>,
    closer: Arc<Closer>,
}

/// Closes a connection once, with a code the client understands.
pub(crate) struct Closer {
    code: AtomicU16,
    notify: Notify,
}

impl Closer {
    /// The close code, once closed.
    pub(crate) fn code(&self) -> Option<u16> {
        match self.code.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }

    /// Resolves once [`Conn::close`] was called.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.notify.notified();
            if self.code().is_some() {
                return;
            }
            notified.await;
        }
    }
}

impl Conn {
    pub(crate) fn new(socket_id: Arc<str>, queue: usize) -> (Self, mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = mpsc::channel(queue);
        let closer = Arc::new(Closer {
            code: AtomicU16::new(0),
            notify: Notify::new(),
        });
        (
            Self {
                socket_id,
                tx,
                closer,
            },
            rx,
        )
    }

    pub(crate) fn closer(&self) -> &Arc<Closer> {
        &self.closer
    }

    /// Queues a frame. A full queue means the client stopped reading: it is closed with 4100
    /// (pusher-js backs off and reconnects) and the frame is dropped.
    pub(crate) fn send(&self, frame: Utf8Bytes, stats: &Stats) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => {
                stats.messages_out.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close_slow(stats);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a reply to the client's own request, waiting for room; `false` once closing.
    pub(crate) async fn send_waiting(&self, frame: Utf8Bytes, stats: &Stats) -> bool {
        tokio::select! {
            sent = self.tx.send(frame) => {
                stats.messages_out.fetch_add(1, Ordering::Relaxed);
                sent.is_ok()
            }
            () = self.closer.closed() => false,
        }
    }

    /// Closes a client that fell too far behind (4100), counted once as a slow consumer.
    fn close_slow(&self, stats: &Stats) {
        if self.close(codes::OVER_CAPACITY) {
            stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks the connection to close with `code`; `false` when it was already closing.
    pub(crate) fn close(&self, code: u16) -> bool {
        let first = self
            .closer
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.closer.notify.notify_waiters();
        first
    }
}

/// A running connection task of a hub (see [`AppHub::live`]).
pub(crate) struct Live(Arc<AppHub>);

impl Drop for Live {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.all_gone.notify_waiters();
        }
    }
}

/// Counters of one app, read by the metrics module.
#[derive(Default, Debug)]
pub(crate) struct Stats {
    pub connections: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub refused_connections: AtomicU64,
    /// Subscriptions resumed with every missed event.
    pub resumed: AtomicU64,
    /// Resumes that failed, by [`ResumeFailure::ALL`] order.
    pub resume_failures: [AtomicU64; ResumeFailure::ALL.len()],
    /// Events sent again to resuming clients.
    pub replayed: AtomicU64,
}

struct Subscriber {
    conn: Conn,
    user_id: Option<String>,
    /// The events published to the channel while its `subscription_succeeded` is being prepared
    /// (`None` once it is on its way). No event reaches a client before its
    /// `subscription_succeeded`, and none published after the subscriber was added is lost: the
    /// presence snapshot in `subscription_succeeded` may be read from Redis after a
    /// `member_added` was published, so the client needs every event since, in order (pusher-js
    /// applies member events idempotently: the last one for a user wins).
    held: Option<Vec<(Utf8Bytes, Option<Position>)>>,
    /// The client asked for each event's position (connection recovery): it is sent the
    /// positioned frames of a recoverable channel.
    positions: bool,
    /// The last position its resume replayed, set at [`AppHub::activate`]: a live copy of an
    /// event up to it is not sent again. On the Redis bus the live copies come in on the
    /// subscriber connection, the history read's reply on another: a copy Redis published before
    /// that reply can be handled after the activation, not only while held.
    replayed_through: Option<Position>,
}

impl Subscriber {
    /// Whether the event at `position` was in this subscriber's replay.
    fn replayed(&self, position: Option<Position>) -> bool {
        match (position, self.replayed_through) {
            (Some(at), Some(through)) => at.epoch == through.epoch && at.serial <= through.serial,
            _ => false,
        }
    }

    /// Sends `frame` (at `position`, for a subscriber that asked for positions), or holds it
    /// until [`AppHub::activate`]. Holding more than a send queue's worth closes the connection
    /// like a slow consumer.
    fn send(
        &mut self,
        frame: &Utf8Bytes,
        position: Option<Position>,
        stats: &Stats,
        limit: usize,
    ) -> bool {
        if self.held.is_none() && self.replayed(position) {
            return false;
        }
        match &mut self.held {
            None => self.conn.send(frame.clone(), stats),
            Some(held) if held.len() < limit => {
                held.push((frame.clone(), position));
                true
            }
            Some(_) => {
                self.conn.close_slow(stats);
                false
            }
        }
    }
}

struct Member {
    connections: u32,
    info: Value,
}

#[derive(Default)]
struct ChannelState {
    subscribers: HashMap<Arc<str>, Subscriber>,
    members: HashMap<String, Member>,
}

struct ConnState {
    conn: Conn,
    ip: IpAddr,
    channels: HashSet<String>,
    user: Option<String>,
}

#[derive(Default)]
struct State {
    conns: HashMap<Arc<str>, ConnState>,
    channels: HashMap<String, ChannelState>,
    users: HashMap<String, HashSet<Arc<str>>>,
    per_ip: HashMap<IpAddr, usize>,
    cache: HashMap<String, (Utf8Bytes, Instant)>,
    /// The recoverable channels' history, when this hub keeps it (one server, the memory bus).
    history: Option<History>,
}

/// What a presence channel holds: unique users and their info.
#[derive(Clone, Debug, PartialEq)]
pub struct Presence {
    /// User ids, sorted.
    pub ids: Vec<String>,
    /// user id → `user_info`.
    pub hash: serde_json::Map<String, Value>,
}

/// `occupied`, `subscription_count` and (presence) `user_count` of a channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelInfo {
    /// Whether anyone is subscribed.
    pub occupied: bool,
    /// Subscribed connections.
    pub subscription_count: usize,
    /// Unique users (presence channels only).
    pub user_count: Option<usize>,
}

/// One channel as this server holds it (see [`AppHub::local_channels`]).
#[cfg(feature = "redis")]
pub(crate) struct LocalChannel {
    pub name: String,
    pub subscriptions: usize,
    /// (user id, local connections, user_info)
    pub users: Vec<(String, u32, Value)>,
}

/// What [`AppHub::subscribe`] found and changed.
pub(crate) struct Subscribed {
    pub presence: Option<Presence>,
    pub cached: Option<Utf8Bytes>,
    pub transitions: Transitions,
    /// A resumed subscription: the events the client missed, in order, or why they cannot be
    /// told; `None` when no resume was asked for (or the subscription is a repeated one).
    pub replay: Option<Result<Vec<Utf8Bytes>, ResumeFailure>>,
    /// For a client that asked for positions on a recoverable channel: where it is once
    /// subscribed — the position it resumed from, or the channel's current one (it missed
    /// nothing it can be sent, or starts now). Sent in `subscription_succeeded`.
    pub position: Option<Position>,
    /// A recovery request for the bus to answer, when the bus keeps the history (Redis): it
    /// fills `replay`, `position` and `skip_through`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub resume: Option<PendingResume>,
    /// The live events held for the subscriber up to this position were in its replay: they
    /// are dropped at [`AppHub::activate`].
    pub skip_through: Option<Position>,
}

/// A resume for the bus to answer (see [`Subscribed::resume`]).
#[derive(Debug)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct PendingResume {
    /// The position of the last event the client had; `None`: positions from now on only.
    pub from: Option<Position>,
    /// The client's socket id before it reconnected.
    pub previous_socket: Option<String>,
}

/// A subscribe's connection-recovery request (`position` in `pusher:subscribe`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Resume<'a> {
    /// The position of the last event the client had; `None`: positions from now on only.
    pub from: Option<Position>,
    /// The client's socket id before it reconnected.
    pub previous_socket: Option<&'a str>,
}

/// Why a subscription was refused by the hub's limits.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubscribeError {
    PresenceFull,
    TooManyChannels,
    NotConnected,
}

/// The hub of one app.
pub(crate) struct AppHub {
    pub app: AppConfig,
    pub stats: Stats,
    max_connections: usize,
    max_per_ip: usize,
    max_members: usize,
    max_channels: usize,
    /// Frames held for a subscriber until its `subscription_succeeded` is queued.
    max_held: usize,
    /// Which channels' events get positions.
    recovery: Recoverable,
    state: Mutex<State>,
    /// Shutting down: no new connection is admitted.
    draining: AtomicBool,
    /// Connection tasks still running, their leaves included (see [`Live`]).
    live: AtomicUsize,
    /// Woken when `live` drops to zero.
    all_gone: Notify,
    /// The other servers: [`LocalBus`](super::bus::LocalBus) when there are none.
    bus: Arc<dyn Bus>,
    /// The webhook sender, when the app has a webhook URL.
    #[cfg(feature = "webhooks")]
    pub(crate) webhooks: Option<super::webhooks::Webhooks>,
}

impl AppHub {
    pub(crate) fn new(app: AppConfig, config: &BroadcastConfig, bus: Arc<dyn Bus>) -> Self {
        Self {
            stats: Stats::default(),
            max_connections: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            max_members: config.max_presence_members,
            max_channels: config.max_channels_per_connection,
            max_held: config.send_queue,
            recovery: config.recovery,
            #[cfg(feature = "webhooks")]
            webhooks: app.webhook_url.clone().map(|url| {
                super::webhooks::Webhooks::start(url, app.key.clone(), app.secret.clone())
            }),
            app,
            state: Mutex::new(State {
                // One server keeps its channels' history itself; a distributed bus, the fleet's.
                history: (config.recovery != Recoverable::Off && bus.local_history()).then(|| {
                    History::new(Limits {
                        events: config.history_events,
                        age: config.history_age,
                        bytes: config.history_bytes,
                    })
                }),
                ..State::default()
            }),
            draining: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            all_gone: Notify::new(),
            bus,
        }
    }

    /// Queues a webhook event, when the app has webhooks (the event is built only then).
    #[cfg_attr(not(feature = "webhooks"), allow(unused_variables))]
    pub(crate) fn notify(&self, event: impl FnOnce() -> Value) {
        #[cfg(feature = "webhooks")]
        if let Some(webhooks) = &self.webhooks {
            webhooks.emit(event());
        }
    }

    /// The other servers, which complete every subscription change.
    pub(crate) fn bus(&self) -> &dyn Bus {
        &*self.bus
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing every connection; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection, unless the app or the IP is at its limit or the server is
    /// shutting down.
    pub(crate) fn connect(&self, conn: Conn, ip: IpAddr) -> bool {
        let mut state = self.state();
        if self.is_draining() {
            self.stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let per_ip = state.per_ip.get(&ip).copied().unwrap_or(0);
        if (self.max_connections > 0 && state.conns.len() >= self.max_connections)
            || (self.max_per_ip > 0 && per_ip >= self.max_per_ip)
        {
            self.stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        *state.per_ip.entry(ip).or_default() += 1;
        let state_entry = ConnState {
            conn: conn.clone(),
            ip,
            channels: HashSet::new(),
            user: None,
        };
        state.conns.insert(conn.socket_id.clone(), state_entry);
        self.stats
            .connections
            .store(state.conns.len() as u64, Ordering::Relaxed);
        true
    }

    /// Removes a connection: it leaves every channel (presence members are removed for others
    /// on the user's last connection). Returns what changed per channel, for the backend.
    ///
    /// Each channel is left under its own short hold of the lock: a publisher of another
    /// channel waits for one leave at most, never for all of this connection's channels.
    pub(crate) fn disconnect(&self, socket_id: &str) -> Vec<(String, Transitions)> {
        let conn = {
            let mut state = self.state();
            let Some(conn) = state.conns.remove(socket_id) else {
                return Vec::new();
            };
            if let Some(count) = state.per_ip.get_mut(&conn.ip) {
                *count -= 1;
                if *count == 0 {
                    state.per_ip.remove(&conn.ip);
                }
            }
            if let Some(user) = &conn.user
                && let Some(sockets) = state.users.get_mut(user)
            {
                sockets.remove(socket_id);
                if sockets.is_empty() {
                    state.users.remove(user);
                }
            }
            self.stats
                .connections
                .store(state.conns.len() as u64, Ordering::Relaxed);
            conn
        };
        conn.channels
            .into_iter()
            .map(|channel| {
                let transitions = self.leave(&mut self.state(), &channel, socket_id);
                (channel, transitions)
            })
            .collect()
    }

    /// Subscribes; for presence, `member` is the verified `(user_id, user_info)`. Returns the
    /// presence snapshot (presence channels), the cached event (cache channels) and the local
    /// transitions, which the caller hands to the [`Bus`]; a distributed bus replaces the snapshot
    /// and the cache with the fleet's. `member_added` is the bus's to send.
    pub(crate) fn subscribe(
        &self,
        socket_id: &str,
        channel: &str,
        member: Option<(String, Value)>,
        cache: bool,
        resume: Option<Resume<'_>>,
    ) -> Result<Subscribed, SubscribeError> {
        let mut state = self.state();
        let Some(conn_state) = state.conns.get(socket_id) else {
            return Err(SubscribeError::NotConnected);
        };
        // A new channel past the cap is refused; a repeated subscribe is not a new channel.
        if conn_state.channels.len() >= self.max_channels && !conn_state.channels.contains(channel)
        {
            return Err(SubscribeError::TooManyChannels);
        }
        let conn = conn_state.conn.clone();
        let mut transitions = Transitions {
            occupied: !state.channels.contains_key(channel),
            ..Transitions::default()
        };
        let entry = state.channels.entry(channel.to_owned()).or_default();
        let already = entry.subscribers.get(socket_id).map(|s| s.user_id.clone());
        transitions.subscribed = already.is_none();
        let mut added: Option<(String, Value)> = None;
        if let Some((user_id, info)) = &member {
            match already {
                // A repeated subscribe is idempotent: never count the socket twice.
                Some(Some(_)) => {}
                _ => {
                    let known = entry.members.contains_key(user_id);
                    if !known && entry.members.len() >= self.max_members {
                        return Err(SubscribeError::PresenceFull);
                    }
                    let m = entry.members.entry(user_id.clone()).or_insert(Member {
                        connections: 0,
                        info: info.clone(),
                    });
                    m.connections += 1;
                    if m.connections == 1 {
                        added = Some((user_id.clone(), m.info.clone()));
                    }
                }
            }
        }
        let recoverable = self.recovery.covers(channel);
        let (held, positions, replayed_through) = match entry.subscribers.remove(socket_id) {
            Some(repeated) => (repeated.held, repeated.positions, repeated.replayed_through),
            None => (Some(Vec::new()), false, None),
        };
        entry.subscribers.insert(
            conn.socket_id.clone(),
            Subscriber {
                conn: conn.clone(),
                // A repeated subscribe keeps the member it was counted as: switching ids here
                // would leave the first one behind as a ghost.
                user_id: already
                    .flatten()
                    .or_else(|| member.as_ref().map(|(id, _)| id.clone())),
                held,
                positions: positions || (resume.is_some() && recoverable),
                replayed_through,
            },
        );
        let presence = member.is_some().then(|| presence_of(entry));
        transitions.user_joined = added;
        if let Some(c) = state.conns.get_mut(socket_id) {
            c.channels.insert(channel.to_owned());
        }
        let cached = if cache {
            state.cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            state.cache.get(channel).map(|(frame, _)| frame.clone())
        } else {
            None
        };
        // Read under the lock that publishes: every later event is held for the subscriber,
        // every earlier one is in the replay — none twice, none missed.
        let mut pending = None;
        let (replay, position) = match (resume, &mut state.history) {
            (Some(resume), Some(history)) if recoverable => {
                let replay = match resume.from {
                    Some(from) if transitions.subscribed => {
                        Some(history.after(channel, from, resume.previous_socket))
                    }
                    _ => None,
                };
                let position = match (&replay, resume.from) {
                    (Some(Ok(_)), Some(from)) => from,
                    _ => history.current(channel),
                };
                (replay, Some(position))
            }
            // The bus keeps the fleet's history: it reads it once the subscription is live.
            (Some(resume), None) if recoverable => {
                pending = Some(PendingResume {
                    from: resume.from.filter(|_| transitions.subscribed),
                    previous_socket: resume.previous_socket.map(str::to_owned),
                });
                (None, None)
            }
            (Some(Resume { from: Some(_), .. }), _) if transitions.subscribed => {
                (Some(Err(ResumeFailure::NotRecoverable)), None)
            }
            _ => (None, None),
        };
        Ok(Subscribed {
            presence,
            cached,
            transitions,
            replay,
            position,
            resume: pending,
            skip_through: None,
        })
    }

    /// Lets events reach a new subscriber: called once its `subscription_succeeded` is queued.
    /// The events held since it subscribed go first, in order, but those up to `skip_through`
    /// (its replay had them): neither now nor when their live copy comes in later.
    pub(crate) fn activate(&self, socket_id: &str, channel: &str, skip_through: Option<Position>) {
        let mut state = self.state();
        if let Some(s) = state
            .channels
            .get_mut(channel)
            .and_then(|entry| entry.subscribers.get_mut(socket_id))
        {
            s.replayed_through = skip_through.or(s.replayed_through);
            let held = s.held.take().into_iter().flatten();
            for (frame, position) in held {
                if !s.replayed(position) && !s.conn.send(frame, &self.stats) {
                    break;
                }
            }
        }
    }

    /// Unsubscribes (no reply is sent, as the protocol says).
    pub(crate) fn unsubscribe(&self, socket_id: &str, channel: &str) -> Transitions {
        let mut state = self.state();
        if let Some(c) = state.conns.get_mut(socket_id) {
            c.channels.remove(channel);
        }
        self.leave(&mut state, channel, socket_id)
    }

    fn leave(&self, state: &mut State, channel: &str, socket_id: &str) -> Transitions {
        let mut transitions = Transitions::default();
        let Some(entry) = state.channels.get_mut(channel) else {
            return transitions;
        };
        let Some(subscriber) = entry.subscribers.remove(socket_id) else {
            return transitions;
        };
        transitions.subscribed = true;
        if let Some(user_id) = subscriber.user_id
            && let Some(member) = entry.members.get_mut(&user_id)
        {
            member.connections -= 1;
            if member.connections == 0 {
                entry.members.remove(&user_id);
                transitions.user_left = Some(user_id);
            }
        }
        if entry.subscribers.is_empty() {
            state.channels.remove(channel);
            transitions.vacated = true;
        }
        transitions
    }

    /// Whether `user_id` is a presence member of `channel` through a connection of this server.
    #[cfg(feature = "redis")]
    pub(crate) fn has_member(&self, channel: &str, user_id: &str) -> bool {
        let state = self.state();
        state
            .channels
            .get(channel)
            .is_some_and(|entry| entry.members.contains_key(user_id))
    }

    /// Whether the connection is subscribed to `channel`, and its presence user id there.
    pub(crate) fn subscription(&self, socket_id: &str, channel: &str) -> Option<Option<String>> {
        let state = self.state();
        let entry = state.channels.get(channel)?;
        entry.subscribers.get(socket_id).map(|s| s.user_id.clone())
    }

    /// Sends an app event to every subscriber of `channel` except `except`; returns how many
    /// connections it was queued for. A cache channel keeps it for later subscribers; a
    /// recoverable one (when this hub keeps the history) gives it a position and keeps it, and
    /// the subscribers that asked for positions get the frame with its position.
    pub(crate) fn publish(
        &self,
        channel: &str,
        frame: &Utf8Bytes,
        except: Option<&str>,
        cache: bool,
    ) -> usize {
        let mut state = self.state();
        let recoverable = self.recovery.covers(channel);
        let positioned = match &mut state.history {
            Some(history) if recoverable => Some(history.append(channel, frame.as_str(), except)),
            _ => None,
        };
        let sends = match &positioned {
            Some((framed, position)) => Sends {
                plain: Some(frame),
                positioned: Some((framed, Some(*position))),
            },
            // The bus gives the position: this server's subscribers that asked for positions
            // get the event from the bus, with it.
            None if recoverable => Sends {
                plain: Some(frame),
                positioned: None,
            },
            None => Sends::all(frame),
        };
        self.fan_out(&mut state, channel, sends, except, cache)
    }

    /// Whether `channel`'s events get positions and are kept.
    pub(crate) fn recoverable(&self, channel: &str) -> bool {
        self.recovery.covers(channel)
    }

    /// A page of `channel`'s kept events, newest first ([`History::page`]).
    pub(crate) fn history_page(
        &self,
        channel: &str,
        before: Option<Position>,
        limit: usize,
    ) -> Result<(Vec<Utf8Bytes>, Option<Position>), ResumeFailure> {
        if !self.recovery.covers(channel) {
            return Err(ResumeFailure::NotRecoverable);
        }
        match &mut self.state().history {
            Some(history) => history.page(channel, before, limit),
            None => Err(ResumeFailure::Unavailable),
        }
    }

    /// Kept events and their bytes in this hub's history (0, 0 without one).
    #[cfg(feature = "metrics")]
    pub(crate) fn history_size(&self) -> (usize, usize) {
        self.state().history.as_ref().map_or((0, 0), History::size)
    }

    fn fan_out(
        &self,
        state: &mut State,
        channel: &str,
        sends: Sends<'_>,
        except: Option<&str>,
        cache: bool,
    ) -> usize {
        if let (true, Some(frame)) = (cache, sends.plain) {
            if state.cache.len() >= 1024 {
                state.cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            }
            state
                .cache
                .insert(channel.to_owned(), (frame.clone(), Instant::now()));
        }
        let Some(entry) = state.channels.get_mut(channel) else {
            return 0;
        };
        entry
            .subscribers
            .iter_mut()
            .filter(|(id, _)| except != Some(&***id))
            .filter_map(|(_, s)| {
                let (frame, position) = match s.positions {
                    true => sends.positioned?,
                    false => (sends.plain?, None),
                };
                Some(s.send(frame, position, &self.stats, self.max_held))
            })
            .filter(|sent| *sent)
            .count()
    }

    /// This server's state of every channel: subscriptions and presence users with their
    /// connection counts and info — what the Redis backend writes back after an outage.
    #[cfg(feature = "redis")]
    pub(crate) fn local_channels(&self) -> Vec<LocalChannel> {
        let state = self.state();
        state
            .channels
            .iter()
            .map(|(name, entry)| LocalChannel {
                name: name.clone(),
                subscriptions: entry.subscribers.len(),
                users: entry
                    .members
                    .iter()
                    .map(|(id, m)| (id.clone(), m.connections, m.info.clone()))
                    .collect(),
            })
            .collect()
    }

    /// Delivers a frame that is not an app event of this server (another server's event, a
    /// presence announcement, a client event) to this server's subscribers: it is not kept.
    pub(crate) fn deliver(&self, channel: &str, frame: &Utf8Bytes, except: Option<&str>) -> usize {
        let mut state = self.state();
        self.fan_out(&mut state, channel, Sends::all(frame), except, false)
    }

    /// Delivers an app event that the bus gave `position` in the fleet's history: with its
    /// position to the subscribers that asked for positions, without to the others — unless
    /// `origin` (this server published it: the others already have it).
    #[cfg(feature = "redis")]
    pub(crate) fn deliver_positioned(
        &self,
        channel: &str,
        frame: &str,
        position: Position,
        except: Option<&str>,
        origin: bool,
    ) -> usize {
        let framed = Utf8Bytes::from(super::protocol::with_position(frame, position));
        let plain = (!origin).then(|| Utf8Bytes::from(frame.to_owned()));
        let mut state = self.state();
        let sends = Sends {
            plain: plain.as_ref(),
            positioned: Some((&framed, Some(position))),
        };
        self.fan_out(&mut state, channel, sends, except, false)
    }

    /// Marks the connection as signed in as `user_id`.
    pub(crate) fn sign_in(&self, socket_id: &str, user_id: &str) {
        let mut state = self.state();
        let previous = match state.conns.get_mut(socket_id) {
            Some(c) => c.user.replace(user_id.to_owned()),
            None => return,
        };
        if let Some(previous) = previous
            && let Some(sockets) = state.users.get_mut(&previous)
        {
            sockets.remove(socket_id);
        }
        let socket: Arc<str> = socket_id.into();
        state
            .users
            .entry(user_id.to_owned())
            .or_default()
            .insert(socket);
    }

    /// The signed-in user of a connection.
    pub(crate) fn user_of(&self, socket_id: &str) -> Option<String> {
        self.state()
            .conns
            .get(socket_id)
            .and_then(|c| c.user.clone())
    }

    /// Closes every connection of a signed-in user with 4009 (pusher-js does not reconnect).
    pub(crate) fn terminate_user(&self, user_id: &str) -> usize {
        let state = self.state();
        let Some(sockets) = state.users.get(user_id) else {
            return 0;
        };
        sockets
            .iter()
            .filter_map(|id| state.conns.get(id))
            .filter(|c| c.conn.close(codes::UNAUTHORIZED))
            .count()
    }

    /// Closes every connection with `code` (4200 at shutdown: clients reconnect elsewhere).
    /// Stops admitting connections (shutdown); the WebSocket endpoint answers 503.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the server is shutting down.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Counts a connection task as running until the returned guard drops — after its leaves
    /// reached the bus, so that the server's own presence is removed only when nothing of it
    /// can be written any more.
    pub(crate) fn live(self: &Arc<Self>) -> Live {
        self.live.fetch_add(1, Ordering::SeqCst);
        Live(Arc::clone(self))
    }

    /// Resolves once no connection task is running.
    pub(crate) async fn all_gone(&self) {
        loop {
            let gone = self.all_gone.notified();
            if self.live.load(Ordering::SeqCst) == 0 {
                return;
            }
            gone.await;
        }
    }

    pub(crate) fn close_all(&self, code: u16) {
        for c in self.state().conns.values() {
            c.conn.close(code);
        }
    }

    /// Occupation and counts of one channel.
    pub(crate) fn channel_info(&self, channel: &str, presence: bool) -> ChannelInfo {
        let state = self.state();
        match state.channels.get(channel) {
            Some(entry) => ChannelInfo {
                occupied: true,
                subscription_count: entry.subscribers.len(),
                user_count: presence.then_some(entry.members.len()),
            },
            None => ChannelInfo {
                user_count: presence.then_some(0),
                ..ChannelInfo::default()
            },
        }
    }

    /// Occupied channels whose name starts with `prefix`, with their info.
    pub(crate) fn channels(&self, prefix: &str) -> Vec<(String, ChannelInfo)> {
        let state = self.state();
        let mut list: Vec<_> = state
            .channels
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, entry)| {
                let presence = name.starts_with("presence-");
                let info = ChannelInfo {
                    occupied: true,
                    subscription_count: entry.subscribers.len(),
                    user_count: presence.then_some(entry.members.len()),
                };
                (name.clone(), info)
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// The members of a presence channel.
    pub(crate) fn presence(&self, channel: &str) -> Presence {
        let state = self.state();
        match state.channels.get(channel) {
            Some(entry) => presence_of(entry),
            None => Presence {
                ids: Vec::new(),
                hash: serde_json::Map::new(),
            },
        }
    }
}

/// What the subscribers of a channel are sent: `None` for those not to be sent anything.
#[derive(Clone, Copy)]
struct Sends<'a> {
    /// To the subscribers that did not ask for positions.
    plain: Option<&'a Utf8Bytes>,
    /// To those that did, with the frame's position when it has one.
    positioned: Option<(&'a Utf8Bytes, Option<Position>)>,
}

impl<'a> Sends<'a> {
    /// The same frame to everyone (not an event of a recoverable channel).
    fn all(frame: &'a Utf8Bytes) -> Self {
        Self {
            plain: Some(frame),
            positioned: Some((frame, None)),
        }
    }
}

fn presence_of(entry: &ChannelState) -> Presence {
    let mut ids: Vec<String> = entry.members.keys().cloned().collect();
    ids.sort();
    let hash = ids
        .iter()
        .map(|id| (id.clone(), entry.members[id].info.clone()))
        .collect();
    Presence { ids, hash }
}

/// Which local transitions a subscription change caused, for the bus to complete.
#[derive(Debug, Default)]
pub(crate) struct Transitions {
    /// A subscription was added or removed (false for a repeated subscribe).
    pub subscribed: bool,
    /// The channel got its first local subscriber.
    pub occupied: bool,
    /// The channel lost its last local subscriber.
    pub vacated: bool,
    /// A presence user's first local connection on the channel, with their info.
    pub user_joined: Option<(String, Value)>,
    /// A presence user's last local connection on the channel.
    pub user_left: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::bus::LocalBus;

    /// A hub on the local bus with the defaults, and one connection (`1.1`) with its queue.
    fn hub_with_client() -> (AppHub, mpsc::Receiver<Utf8Bytes>) {
        let hub = AppHub::new(
            AppConfig::new("1", "key", "secret"),
            &BroadcastConfig::default(),
            Arc::new(LocalBus),
        );
        let (conn, rx) = Conn::new(Arc::from("1.1"), 8);
        assert!(hub.connect(conn, IpAddr::from([127, 0, 0, 1])));
        (hub, rx)
    }

    /// An event published between a subscribe and its `subscription_succeeded` (while a
    /// distributed bus reads the presence snapshot) reaches the client after it, not never.
    #[test]
    fn events_published_before_activation_are_held_then_sent_in_order() {
        let (hub, mut rx) = hub_with_client();
        let member = Some(("u1".to_owned(), Value::Null));
        hub.subscribe("1.1", "presence-room", member, false, None)
            .unwrap();

        for n in ["a", "b"] {
            let frame = Utf8Bytes::from(n);
            assert_eq!(hub.publish("presence-room", &frame, None, false), 1);
        }
        assert!(rx.try_recv().is_err(), "nothing before activation");

        hub.activate("1.1", "presence-room", None);
        let c = Utf8Bytes::from("c");
        hub.publish("presence-room", &c, None, false);
        let got: Vec<Utf8Bytes> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(got, ["a", "b", "c"].map(Utf8Bytes::from));
    }

    /// A live copy of a replayed event that comes in after the activation (on the Redis bus it
    /// travels on another connection than the history read) is not sent again; later events
    /// are (found by tests/broadcast_recovery_redis.rs on a Cluster: one event twice).
    #[cfg(feature = "redis")]
    #[test]
    fn a_replayed_event_arriving_after_activation_is_not_sent_twice() {
        let (hub, mut rx) = hub_with_client();
        let resume = Resume {
            from: None,
            previous_socket: None,
        };
        hub.subscribe("1.1", "private-feed", None, false, Some(resume))
            .unwrap();
        let at = |serial| Position { epoch: 7, serial };
        hub.activate("1.1", "private-feed", Some(at(5)));
        for serial in [4, 5, 6] {
            hub.deliver_positioned("private-feed", &serial.to_string(), at(serial), None, false);
        }
        let got: Vec<Utf8Bytes> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let six = crate::broadcast::protocol::with_position("6", at(6));
        assert_eq!(got, [Utf8Bytes::from(six)]);
    }

    /// A subscriber that would be held more than a send queue's worth is closed as a slow
    /// consumer instead of growing without bound.
    #[test]
    fn holding_past_the_send_queue_closes_the_connection() {
        let config = BroadcastConfig {
            send_queue: 2,
            ..BroadcastConfig::default()
        };
        let hub = AppHub::new(
            AppConfig::new("1", "key", "secret"),
            &config,
            Arc::new(LocalBus),
        );
        let (conn, _rx) = Conn::new(Arc::from("1.1"), 2);
        let closer = conn.closer.clone();
        assert!(hub.connect(conn, IpAddr::from([127, 0, 0, 1])));
        hub.subscribe("1.1", "news", None, false, None).unwrap();
        let frame = Utf8Bytes::from("x");
        let sent: Vec<usize> = (0..3)
            .map(|_| hub.publish("news", &frame, None, false))
            .collect();
        assert_eq!(sent, [1, 1, 0]);
        assert_eq!(closer.code.load(Ordering::Acquire), codes::OVER_CAPACITY);
        assert_eq!(hub.stats.slow_consumers.load(Ordering::Relaxed), 1);
    }
}

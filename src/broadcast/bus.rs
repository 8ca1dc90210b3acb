//! [`Bus`]: what a hub needs from the other servers — the one seam between the in-process hub
//! and a distributed backend, like the rate limiter's `Store`.
//!
//! The hub keeps this server's connections and their subscriptions; the bus decides what the
//! changes mean for everyone: who joined or left a presence channel, whether a channel is
//! occupied, what a channel's counts are, which event a cache channel keeps. [`LocalBus`] is the
//! answer for one server; the Redis backend (`cluster.rs`) for many. No call site asks which
//! one it has.

use std::future::ready;

use axum::extract::ws::Utf8Bytes;

use super::BroadcastError;
use super::history::{Position, ResumeFailure};
use super::hub::{AppHub, ChannelInfo, Presence, Subscribed, Transitions};
use super::protocol::frame;
use super::webhooks::event as webhook;
use crate::util::BoxFuture;

/// The other servers, as one hub sees them.
pub(crate) trait Bus: Send + Sync + 'static {
    /// Sends a frame the hub already delivered locally to the other servers' subscribers of
    /// `channel` (except `except`); never waits. A cache channel keeps it; a `recoverable`
    /// channel's event is kept in the fleet's history and delivered with its position (also to
    /// this server's subscribers that asked for positions, which the hub left to the bus).
    fn publish(&self, event: Published<'_>);

    /// Completes a local subscription: announces what its transitions mean (`member_added`,
    /// `channel_occupied`), and replaces the presence snapshot and the cached event with the
    /// fleet's, so `subscription_succeeded` is the same on every server.
    fn joined<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
        socket: &'a str,
        cache: bool,
        subscribed: &'a mut Subscribed,
    ) -> BoxFuture<'a, ()>;

    /// Completes a local unsubscription or disconnect (`member_removed`, `channel_vacated`).
    fn left<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
        transitions: Transitions,
    ) -> BoxFuture<'a, ()>;

    /// Occupation and counts of a channel, fleet-wide.
    fn channel_info<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
        presence: bool,
    ) -> BoxFuture<'a, Result<ChannelInfo, BroadcastError>>;

    /// Occupied channels starting with `prefix`, sorted, with their info, fleet-wide.
    fn channels<'a>(
        &'a self,
        hub: &'a AppHub,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, ChannelInfo)>, BroadcastError>>;

    /// The members of a presence channel, fleet-wide.
    fn presence<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Presence, BroadcastError>>;

    /// Asks the other servers to close a signed-in user's connections.
    fn terminate_user(&self, app: &str, user: &str);

    /// This server leaves the fleet: its presence members are removed everywhere at once.
    fn shutdown(&self) -> BoxFuture<'_, ()>;

    /// Whether the hub keeps its channels' history itself for connection recovery (one server);
    /// a distributed bus keeps the fleet's.
    fn local_history(&self) -> bool {
        false
    }

    /// A page of a recoverable channel's kept events, newest first, older than `before`, and
    /// the position of the next page.
    fn history<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
        before: Option<Position>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, ResumeFailure>>;

    /// The counters of a distributed bus, for its instruments; `None` for [`LocalBus`].
    #[cfg(feature = "metrics")]
    fn stats(&self) -> Option<BusStats> {
        None
    }
}

/// A page of kept events (frames with their positions) and the position of the next.
pub(crate) type HistoryPage = (Vec<Utf8Bytes>, Option<Position>);

/// An app event or announcement for the other servers (see [`Bus::publish`]).
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))] // read by the Redis bus only
pub(crate) struct Published<'a> {
    pub app: &'a str,
    pub channel: &'a str,
    /// The frame.
    pub text: &'a str,
    /// The connection it is not for.
    pub except: Option<&'a str>,
    /// A cache channel's event.
    pub cache: bool,
    /// An app event of a recoverable channel.
    pub recoverable: bool,
}

/// A snapshot of a distributed bus's counters.
#[cfg(feature = "metrics")]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BusStats {
    pub published: u64,
    pub received: u64,
    pub lost: u64,
    pub missed: u64,
    pub reconnects: u64,
    pub pending: u64,
    pub reaped_nodes: u64,
    pub reaped_self: u64,
    pub held: u64,
}

/// One server: the hub is the whole truth, and the transitions are announced to its own
/// subscribers.
#[derive(Debug, Default)]
pub(crate) struct LocalBus;

impl Bus for LocalBus {
    fn local_history(&self) -> bool {
        true
    }

    fn publish(&self, _event: Published<'_>) {}

    fn history<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
        before: Option<Position>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, ResumeFailure>> {
        Box::pin(ready(hub.history_page(channel, before, limit)))
    }

    fn joined<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
        socket: &'a str,
        _cache: bool,
        subscribed: &'a mut Subscribed,
    ) -> BoxFuture<'a, ()> {
        let t = &subscribed.transitions;
        if t.occupied {
            hub.notify(|| webhook::channel_occupied(channel));
        }
        if let Some((user, info)) = &t.user_joined {
            announce_added(hub, channel, socket, user, info);
        }
        Box::pin(ready(()))
    }

    fn left<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
        transitions: Transitions,
    ) -> BoxFuture<'a, ()> {
        if let Some(user) = &transitions.user_left {
            announce_removed(hub, channel, user);
        }
        if transitions.vacated {
            hub.notify(|| webhook::channel_vacated(channel));
        }
        Box::pin(ready(()))
    }

    fn channel_info<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
        presence: bool,
    ) -> BoxFuture<'a, Result<ChannelInfo, BroadcastError>> {
        Box::pin(ready(Ok(hub.channel_info(channel, presence))))
    }

    fn channels<'a>(
        &'a self,
        hub: &'a AppHub,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, ChannelInfo)>, BroadcastError>> {
        Box::pin(ready(Ok(hub.channels(prefix))))
    }

    fn presence<'a>(
        &'a self,
        hub: &'a AppHub,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Presence, BroadcastError>> {
        Box::pin(ready(Ok(hub.presence(channel))))
    }

    fn terminate_user(&self, _app: &str, _user: &str) {}

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(ready(()))
    }
}

/// `member_added` for `user` to this server's subscribers of `channel` but `socket` (the
/// joining connection gets the member in its snapshot), and the webhook.
pub(crate) fn announce_added(
    hub: &AppHub,
    channel: &str,
    socket: &str,
    user: &str,
    info: &serde_json::Value,
) -> String {
    hub.notify(|| webhook::member_added(channel, user));
    let data = serde_json::json!({ "user_id": user, "user_info": info }).to_string();
    let text = frame("pusher_internal:member_added", Some(channel), Some(&data));
    hub.deliver(channel, &Utf8Bytes::from(text.clone()), Some(socket));
    text
}

/// `member_removed` for `user` to this server's subscribers of `channel`, and the webhook.
pub(crate) fn announce_removed(hub: &AppHub, channel: &str, user: &str) -> String {
    hub.notify(|| webhook::member_removed(channel, user));
    let data = serde_json::json!({ "user_id": user }).to_string();
    let text = frame("pusher_internal:member_removed", Some(channel), Some(&data));
    hub.deliver(channel, &Utf8Bytes::from(text.clone()), None);
    text
}

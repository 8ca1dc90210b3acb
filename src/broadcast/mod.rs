//! Broadcasting: a Pusher-protocol (v7) WebSocket server inside the app, so pusher-js, Laravel
//! Echo and every Pusher server SDK work against it unchanged.
//!
//! - `GET /app/{key}` — the WebSocket endpoint (public, `private-`, `presence-`,
//!   `private-encrypted-`, `cache-` channels; client events; `pusher:signin`);
//! - `POST /broadcasting/auth`, `POST /broadcasting/user-auth` — the auth endpoints the client
//!   calls, answered by your [`Authorizer`];
//! - `/apps/{id}/events`, `/batch_events`, `/channels`, `/channels/{name}`,
//!   `/channels/{name}/users`, `/channels/{name}/events` (kept events, for connection
//!   recovery), `/users/{id}/terminate_connections` — the signed HTTP API;
//! - [`Broadcaster`] — the same from Rust.
//!
//! ```
//! use rustforge_prod::broadcast::{Access, AppConfig, BroadcastConfig, Broadcaster, User, authorizer_fn};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Who may join what (Laravel's routes/channels.php).
//! let authorizer = authorizer_fn(|request| async move {
//!     match request.headers.get("x-user-id").and_then(|v| v.to_str().ok()) {
//!         Some(id) => Access::Member(User::new(id, serde_json::json!({ "name": id }))),
//!         None => Access::Deny,
//!     }
//! });
//! let broadcaster = Broadcaster::new(
//!     BroadcastConfig::default().app(AppConfig::new("1", "app-key", "app-secret")),
//!     Some(Arc::new(authorizer)),
//! )?;
//! let app: axum::Router = axum::Router::new().merge(broadcaster.routes());
//!
//! broadcaster.publish(["orders"], "order.shipped", &serde_json::json!({ "id": 42 })).await?;
//! assert!(!broadcaster.channel_info("orders").await?.occupied);
//! # let _ = app; Ok(()) }
//! ```
//!
//! Backends: the in-process hub (one server), and with `REDIS_URL` (feature `redis`) Redis for
//! many servers behind a load balancer: per-channel subscriptions, `socket_id` exclusion across
//! servers, presence counted cluster-wide, dead servers' members removed by the others
//! ([`BroadcastConfig::node_timeout`]); on Redis Cluster through sharded pub/sub. The guide is
//! `docs/broadcasting.md`.

mod authorizer;
mod broadcaster;
mod bus;
#[cfg(feature = "redis")]
mod cluster;
mod config;
mod connection;
#[cfg(feature = "redis")]
mod fleet_history;
mod history;
mod hub;
#[cfg(feature = "metrics")]
mod instruments;
#[cfg(feature = "redis")]
mod outbox;
pub mod protocol;
mod routes;
pub mod signature;
mod webhooks;

pub use authorizer::{Access, AuthRequest, Authorizer, BoxFuture, User, authorizer_fn};
pub use broadcaster::{
    BroadcastError, Broadcaster, Event, HistoryEvent, HistoryPage, MAX_CHANNELS_PER_EVENT,
    MAX_HISTORY_PAGE, SHUTDOWN_GRACE,
};
pub(crate) use config::check_store;
#[cfg(feature = "redis")]
pub(crate) use config::uses_redis;
pub use config::{AppConfig, BroadcastConfig, BroadcastStore};
pub use history::{Position, Recoverable, ResumeFailure};
#[cfg(feature = "metrics")]
pub(crate) use hub::Stats;
pub use hub::{ChannelInfo, Presence};
#[cfg(feature = "metrics")]
pub(crate) use instruments::observe as instruments;

//! Sessions (feature `session`): [tower-sessions](https://docs.rs/tower-sessions)' `Session`
//! behind the crate's [`SessionLayer`], with a bounded in-process store ([`MemoryStore`]) and a
//! Redis store on the shared handle ([`RedisStore`], feature `redis`), so that any server can
//! serve any user.
//!
//! ```
//! use axum::response::Response;
//! use axum::{Router, routing::get};
//! use rustforge_prod::ProductionLayer;
//! use rustforge_prod::session::{self, Session};
//!
//! // A store error (Redis down) is a 503 with `Retry-After`, never an empty session.
//! async fn visits(session: Session) -> Result<String, Response> {
//!     let visits: u64 = session
//!         .get("visits")
//!         .await
//!         .map_err(session::unavailable)?
//!         .unwrap_or(0)
//!         + 1;
//!     session
//!         .insert("visits", visits)
//!         .await
//!         .map_err(session::unavailable)?;
//!     Ok(format!("visit {visits}"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rustforge_prod::Error> {
//! let prod = ProductionLayer::builder().build().await?;
//! let app: Router = Router::new()
//!     .route("/", get(visits))
//!     .layer(prod.session_layer())
//!     .merge(prod.routes())
//!     .layer(prod.layer());
//! # let _ = app; Ok(()) }
//! ```
//!
//! The cookie is HttpOnly, `SameSite=Lax`, Secure and named `__Host-session` by default; with
//! `RUSTFORGE_SESSION_SECRET` it is encrypted and authenticated (a tampered cookie is a new,
//! empty session). A session ends after `RUSTFORGE_SESSION_TTL` without a request (2 h) and
//! `RUSTFORGE_SESSION_ABSOLUTE_TTL` after it started (24 h). Call
//! [`Session::cycle_id`] when the user logs in (or their rights change): the old id stops
//! working, so an id planted before the login (session fixation) is worthless after it.
//!
//! **When Redis is down** a handler that touches its session gets an error from the
//! [`Session`] call, within the Redis command timeout; [`unavailable`] turns the error into a
//! 503 with `Retry-After`. A changed session the layer cannot save after the handler answered
//! gets the same 503 (the handler's answer is not sent: the client must not believe the change
//! was kept). Nothing degrades to an empty session: an empty session would log the user out
//! and, saved once Redis is back, overwrite their real one.
//!
//! Guide: `docs/sessions.md`.

mod config;
mod cookie;
pub mod csrf;
pub mod flash;
#[cfg(feature = "metrics")]
mod instruments;
mod layer;
mod memory;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod store;
mod users;

pub use config::{SameSite, SessionConfig, StoreKind};
pub use csrf::CsrfLayer;
pub use layer::{SessionLayer, SessionService};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub use store::AnyStore;
pub use tower_sessions::session::Error as SessionError;
pub use tower_sessions::{Expiry, Session, SessionStore};
pub use users::{Sessions, UserIndex, set_user_id, user_id, user_of};

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::Value;

use crate::backend::RedisRef;
use crate::error::ConfigError;
use record::Limits;

/// The store of `ProductionLayer`'s layer, as configured.
pub(crate) fn build(config: &SessionConfig, redis: RedisRef<'_>) -> Result<AnyStore, ConfigError> {
    let limits = Limits::from(config);
    let kind = config.store.unwrap_or(match redis {
        Some(_) => StoreKind::Redis,
        None => StoreKind::Memory,
    });
    let store = match (kind, redis) {
        #[cfg(feature = "redis")]
        (StoreKind::Redis, Some(redis)) => {
            AnyStore::indexed("redis", RedisStore::with_limits(redis.clone(), limits))
        }
        (StoreKind::Redis, _) => {
            return Err(crate::backend::redis_store_without_redis("session.store"));
        }
        (StoreKind::Memory, _) => AnyStore::indexed(
            "memory",
            MemoryStore::with_limits(config.max_sessions, config.max_bytes, limits),
        ),
    };
    Ok(store)
}

/// The store with its instruments.
#[cfg(feature = "metrics")]
pub(crate) fn instruments(meter: &opentelemetry::metrics::Meter, store: AnyStore) -> AnyStore {
    store.with_observer(instruments::observer(meter))
}

/// A 503 problem response with `Retry-After: 1` for a session the store could not load or
/// save: `session.get(..).await.map_err(session::unavailable)?`.
pub fn unavailable(err: SessionError) -> Response {
    unavailable_response(&err.to_string())
}

/// The 503 of [`unavailable`], logged with `error`.
fn unavailable_response(error: &str) -> Response {
    tracing::warn!(error, "session store unavailable");
    let detail = "the session store is unavailable; retry shortly";
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let mut response = crate::problem::response(status, None, Some(detail), Value::Null);
    let retry = http::HeaderValue::from_static("1");
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, retry);
    response.into_response()
}

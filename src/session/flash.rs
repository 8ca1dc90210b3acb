//! Flash data: a value kept for exactly the next request that uses the session — Laravel's
//! `session()->flash()`, for "saved" messages across a redirect.
//!
//! ```
//! use axum::response::{Redirect, Response};
//! use rustforge_prod::session::{self, Session, flash};
//!
//! async fn save(session: Session) -> Result<Redirect, Response> {
//!     // ... save the profile ...
//!     flash::put(&session, "status", "Profile saved").await.map_err(session::unavailable)?;
//!     Ok(Redirect::to("/profile"))
//! }
//!
//! async fn profile(session: Session) -> Result<String, Response> {
//!     let status: Option<String> = flash::get(&session, "status").await.map_err(session::unavailable)?;
//!     Ok(status.unwrap_or_default())
//! }
//! ```
//!
//! A value [`put`] in one request can be read in that request and the next one that loads the
//! session (on any server, with the Redis store); after that it is gone, unless [`reflash`] or
//! [`keep`] keeps it one request more. Requests that do not use the session (assets, probes)
//! do not count. The layer ages the data after each request that used the session; a session
//! without flash data costs nothing.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower_sessions::Session;

use super::SessionError;

/// Where the flash data lives in the session.
pub(super) const FLASH_KEY: &str = "_rustforge.flash";

/// `new`: put in this request; `old`: put in the previous one, readable now, gone after it.
#[derive(Default, serde::Deserialize, Serialize)]
struct Flash {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    new: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    old: BTreeMap<String, Value>,
}

async fn load(session: &Session) -> Result<Flash, SessionError> {
    Ok(session.get(FLASH_KEY).await?.unwrap_or_default())
}

async fn store(session: &Session, flash: &Flash) -> Result<(), SessionError> {
    if flash.new.is_empty() && flash.old.is_empty() {
        session.remove_value(FLASH_KEY).await?;
    } else {
        session.insert(FLASH_KEY, flash).await?;
    }
    Ok(())
}

/// Keeps `value` under `key` for this request and the next one that uses the session.
pub async fn put(session: &Session, key: &str, value: impl Serialize) -> Result<(), SessionError> {
    let value = serde_json::to_value(value).map_err(tower_sessions::session::Error::SerdeJson)?;
    let mut flash = load(session).await?;
    flash.old.remove(key);
    flash.new.insert(key.to_owned(), value);
    store(session, &flash).await
}

/// The value flashed under `key` by this request or the previous one.
pub async fn get<T: DeserializeOwned>(
    session: &Session,
    key: &str,
) -> Result<Option<T>, SessionError> {
    let flash = load(session).await?;
    match flash.new.get(key).or_else(|| flash.old.get(key)) {
        Some(value) => Ok(Some(
            T::deserialize(value).map_err(tower_sessions::session::Error::SerdeJson)?,
        )),
        None => Ok(None),
    }
}

/// Keeps every value flashed by the previous request one request more.
pub async fn reflash(session: &Session) -> Result<(), SessionError> {
    let mut flash = load(session).await?;
    let old = std::mem::take(&mut flash.old);
    for (key, value) in old {
        flash.new.entry(key).or_insert(value);
    }
    store(session, &flash).await
}

/// Keeps the values flashed by the previous request under `keys` one request more.
pub async fn keep(session: &Session, keys: &[&str]) -> Result<(), SessionError> {
    let mut flash = load(session).await?;
    for key in keys {
        if let Some(value) = flash.old.remove(*key) {
            flash.new.entry((*key).to_owned()).or_insert(value);
        }
    }
    store(session, &flash).await
}

/// After a request that used the session: what was put in it becomes readable by the next one,
/// what the previous one put is dropped. A session without flash data is not changed.
pub(super) async fn age(session: &Session) -> Result<(), SessionError> {
    let Some(mut flash) = session.get::<Flash>(FLASH_KEY).await? else {
        return Ok(());
    };
    flash.old = std::mem::take(&mut flash.new);
    store(session, &flash).await
}

//! Whose a session is, and ending every session of a user on every server ("log out other
//! devices" after a password change).

use std::sync::Arc;

use async_trait::async_trait;
use tower_sessions::Session;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::Error;

use super::SessionError;

/// Where the session keeps its user's id.
const USER_KEY: &str = "_rustforge.user";

/// Marks the session as `user`'s, so that [`Sessions::end_sessions_of`] finds it. Call it at
/// login, after [`Session::cycle_id`].
pub async fn set_user_id(session: &Session, user: &str) -> Result<(), SessionError> {
    session.insert(USER_KEY, user).await
}

/// The user the session was marked as by [`set_user_id`].
pub async fn user_id(session: &Session) -> Result<Option<String>, SessionError> {
    session.get(USER_KEY).await
}

/// The user a stored record was marked as by [`set_user_id`]: what a [`UserIndex`] of your own
/// indexes sessions by.
pub fn user_of(record: &Record) -> Option<&str> {
    record.data.get(USER_KEY)?.as_str()
}

/// What a store keeps to end a user's sessions ([`Sessions`]): the Redis store a sorted set per
/// user (each session id scored by its expiry, dropped once past it; the key expires with the
/// user's last session), the memory store the user beside each entry.
///
/// A store of your own implements it to make [`Sessions`] work on it — keep, on each save, the
/// id of every session whose record has a user ([`user_of`]) — and is wrapped with
/// [`AnyStore::with_index`](super::AnyStore::with_index). It is tested like the crate's stores:
/// three sessions of a user, two ended, the current one and another user's kept.
#[async_trait]
pub trait UserIndex: Send + Sync + std::fmt::Debug + 'static {
    /// Deletes every live session of `user` but `except`; how many there were.
    async fn end_sessions_of(&self, user: &str, except: Option<Id>) -> Result<usize, Error>;
}

/// Ends users' sessions, on every server that shares the store
/// ([`ProductionLayer::sessions`](crate::ProductionLayer::sessions)).
///
/// ```
/// use axum::extract::State;
/// use axum::response::Response;
/// use rustforge_prod::session::{self, Session, Sessions};
///
/// // After a password change: every other device is logged out.
/// async fn password_changed(
///     State(sessions): State<Sessions>,
///     session: Session,
/// ) -> Result<String, Response> {
///     let ended = sessions.end_other_sessions(&session).await.map_err(session::unavailable)?;
///     Ok(format!("{ended} other sessions ended"))
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Sessions {
    index: Option<Arc<dyn UserIndex>>,
}

impl Sessions {
    pub(super) fn new(index: Option<Arc<dyn UserIndex>>) -> Self {
        Self { index }
    }

    fn index(&self) -> Result<&dyn UserIndex, SessionError> {
        self.index.as_deref().ok_or_else(|| {
            Error::Backend("this session store keeps no index of users' sessions".into()).into()
        })
    }

    /// Ends every session marked as `user`'s ([`set_user_id`]); how many there were.
    pub async fn end_sessions_of(&self, user: &str) -> Result<usize, SessionError> {
        Ok(self.index()?.end_sessions_of(user, None).await?)
    }

    /// Ends every session of this session's user but this one; 0 when it has no user.
    pub async fn end_other_sessions(&self, session: &Session) -> Result<usize, SessionError> {
        let Some(user) = user_id(session).await? else {
            return Ok(0);
        };
        Ok(self.index()?.end_sessions_of(&user, session.id()).await?)
    }
}

//! [`AnyStore`]: one session-store type for the layer, whichever store is configured; and what
//! the stores tell the layer about the request they serve.

use std::cell::Cell;
use std::sync::Arc;

use async_trait::async_trait;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};

use super::users::UserIndex;

/// What happened to the request's session in the store, for
/// [`SessionService`](super::SessionService) to act on after the handler answered.
#[derive(Default)]
pub(super) struct Outcome {
    /// A save failed because the store is unavailable (not because the session is too large
    /// to encode): the answer is a 503, not tower-sessions' 500.
    pub(super) unavailable: Cell<bool>,
    /// A read extended the session's expiry: the cookie's `Max-Age` is renewed with it.
    pub(super) extended: Cell<bool>,
    /// The session was read from the store: the request used it (its flash data ages).
    pub(super) loaded: Cell<bool>,
}

tokio::task_local! {
    /// The [`Outcome`] of the request this task serves.
    pub(super) static OUTCOME: Outcome;
}

/// Notes that a read extended the session (outside a [`SessionService`](super::SessionService),
/// as with tower-sessions' own layer, there is nothing to note it in).
pub(super) fn note_extended() {
    let _ = OUTCOME.try_with(|outcome| outcome.extended.set(true));
}

/// `result`, noting a store failure (`Error::Backend`) in [`OUTCOME`].
fn note<T>(result: Result<T>) -> Result<T> {
    if let Err(Error::Backend(_)) = &result {
        let _ = OUTCOME.try_with(|outcome| outcome.unavailable.set(true));
    }
    result
}

/// Any [`SessionStore`], shared: what [`SessionLayer`](super::SessionLayer) runs on.
#[derive(Clone, Debug)]
pub struct AnyStore {
    store: Arc<dyn SessionStore>,
    /// The crate's stores also end a user's sessions ([`Sessions`](super::Sessions)).
    pub(super) index: Option<Arc<dyn UserIndex>>,
}

impl AnyStore {
    /// Wraps `store` (a store of your own: [`Sessions`](super::Sessions) cannot end its
    /// users' sessions).
    pub fn new(store: impl SessionStore) -> Self {
        Self {
            store: Arc::new(store),
            index: None,
        }
    }

    /// Wraps one of the crate's stores, which keep an index of users' sessions.
    pub(super) fn indexed(store: impl SessionStore + UserIndex + Clone) -> Self {
        Self {
            store: Arc::new(store.clone()),
            index: Some(Arc::new(store)),
        }
    }
}

#[async_trait]
impl SessionStore for AnyStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        note(self.store.create(record).await)
    }

    async fn save(&self, record: &Record) -> Result<()> {
        note(self.store.save(record).await)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let _ = OUTCOME.try_with(|outcome| outcome.loaded.set(true));
        self.store.load(id).await
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.store.delete(id).await
    }
}

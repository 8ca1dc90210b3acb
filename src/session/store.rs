//! [`AnyStore`]: one session-store type for the layer, whichever store is configured; and what
//! the stores tell the layer about the request they serve.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// to encode): the answer is a 503, not a 500.
    pub(super) unavailable: Cell<bool>,
    /// A read extended the session's expiry: the cookie's `Max-Age` is renewed with it.
    pub(super) extended: Cell<bool>,
    /// The session was read from the store.
    pub(super) loaded: Cell<bool>,
    /// What was read holds flash data: the request used it, so the data ages.
    pub(super) flashed: Cell<bool>,
}

tokio::task_local! {
    /// The [`Outcome`] of the request this task serves.
    pub(super) static OUTCOME: Outcome;
}

/// Notes that a read extended the session (outside a [`SessionService`](super::SessionService),
/// as with tower-sessions' own layer on one of the crate's stores, there is nothing to note it
/// in).
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

/// Hears what the store did, for metrics (`session::instruments`).
pub(crate) trait SessionObserver: Send + Sync + 'static {
    /// A store call (`load`, `create`, `save`, `delete`) ended, successfully or not.
    fn operation(&self, store: &'static str, operation: &'static str, took: Duration, ok: bool);
    /// A read extended an unchanged session.
    fn extended(&self, store: &'static str);
}

/// Any [`SessionStore`], shared: what [`SessionLayer`](super::SessionLayer) runs on.
#[derive(Clone)]
pub struct AnyStore {
    store: Arc<dyn SessionStore>,
    /// `memory`, `redis`, or `custom`: for metrics.
    name: &'static str,
    /// The crate's stores also end a user's sessions ([`Sessions`](super::Sessions)).
    pub(super) index: Option<Arc<dyn UserIndex>>,
    observer: Option<Arc<dyn SessionObserver>>,
}

impl std::fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyStore")
            .field("store", &self.store)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl AnyStore {
    /// Wraps `store`, a store of your own ([`Sessions`](super::Sessions) answers that it cannot
    /// end users' sessions: see [`with_index`](Self::with_index)).
    pub fn new(store: impl SessionStore) -> Self {
        Self {
            store: Arc::new(store),
            name: "custom",
            index: None,
            observer: None,
        }
    }

    /// Wraps a store of your own that also keeps an index of users' sessions
    /// ([`UserIndex`]), so [`Sessions`](super::Sessions) ends them on it.
    pub fn with_index(store: impl SessionStore + UserIndex + Clone) -> Self {
        Self::indexed("custom", store)
    }

    /// Wraps one of the crate's stores, which keep an index of users' sessions.
    pub(super) fn indexed(
        name: &'static str,
        store: impl SessionStore + UserIndex + Clone,
    ) -> Self {
        Self {
            store: Arc::new(store.clone()),
            name,
            index: Some(Arc::new(store)),
            observer: None,
        }
    }

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn with_observer(mut self, observer: Arc<dyn SessionObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Runs a store call, timed for the observer.
    async fn observed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(observer) = &self.observer else {
            return call.await;
        };
        let started = Instant::now();
        let result = call.await;
        observer.operation(self.name, operation, started.elapsed(), result.is_ok());
        result
    }
}

#[async_trait]
impl SessionStore for AnyStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        note(self.observed("create", self.store.create(record)).await)
    }

    async fn save(&self, record: &Record) -> Result<()> {
        note(self.observed("save", self.store.save(record)).await)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let extended = || {
            OUTCOME
                .try_with(|outcome| outcome.extended.get())
                .unwrap_or(false)
        };
        let before = extended();
        let _ = OUTCOME.try_with(|outcome| outcome.loaded.set(true));
        let loaded = self.observed("load", self.store.load(id)).await;
        if let Ok(Some(record)) = &loaded
            && record.data.contains_key(super::flash::FLASH_KEY)
        {
            let _ = OUTCOME.try_with(|outcome| outcome.flashed.set(true));
        }
        if let Some(observer) = &self.observer
            && !before
            && extended()
        {
            observer.extended(self.name);
        }
        loaded
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.observed("delete", self.store.delete(id)).await
    }
}

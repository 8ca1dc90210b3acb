//! [`AnyStore`]: one session-store type for the layer, whichever store is configured.

use std::cell::Cell;
use std::sync::Arc;

use async_trait::async_trait;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};

tokio::task_local! {
    /// Set when a save failed because the store is unavailable (not for a session too large
    /// to encode): [`SessionService`](super::SessionService) then answers 503, not 500.
    pub(super) static UNAVAILABLE_ON_SAVE: Cell<bool>;
}

/// `result`, noting a store failure (`Error::Backend`) in [`UNAVAILABLE_ON_SAVE`].
fn note<T>(result: Result<T>) -> Result<T> {
    if let Err(Error::Backend(_)) = &result {
        let _ = UNAVAILABLE_ON_SAVE.try_with(|failed| failed.set(true));
    }
    result
}

/// Any [`SessionStore`], shared: what [`SessionLayer`](super::SessionLayer) runs on.
#[derive(Clone, Debug)]
pub struct AnyStore(Arc<dyn SessionStore>);

impl AnyStore {
    /// Wraps `store`.
    pub fn new(store: impl SessionStore) -> Self {
        Self(Arc::new(store))
    }
}

#[async_trait]
impl SessionStore for AnyStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        note(self.0.create(record).await)
    }

    async fn save(&self, record: &Record) -> Result<()> {
        note(self.0.save(record).await)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        self.0.load(id).await
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.0.delete(id).await
    }
}

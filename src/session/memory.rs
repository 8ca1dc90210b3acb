//! The in-process session store: moka, bounded, each session expiring on its own date.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use moka::Expiry;
use moka::future::Cache as Moka;
use moka::ops::compute::{CompResult, Op};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result, SessionStore};

use super::record::{Limits, time_left};
use super::store::note_extended;
use super::users::{UserIndex, user_of};
use crate::util::ByteBound;

/// Sessions in this process's memory, at most `max_sessions` (the least used go first when it
/// is full), each removed when it expires. A read extends an unchanged session's expiry when
/// less than the inactivity timeout is left (the entry's expiry only: the bytes stay as saved).
/// A user whose requests reach another server has no session there: behind a load balancer,
/// use [`RedisStore`](super::RedisStore).
#[derive(Clone)]
pub struct MemoryStore {
    sessions: Moka<Id, Stored>,
    limits: Limits,
}

#[derive(Clone)]
struct Stored {
    bytes: Bytes,
    /// The user the session is marked as ([`set_user_id`](super::set_user_id)).
    user: Option<Arc<str>>,
    /// How long the entry lives from when it is (re)inserted.
    ttl: Duration,
    /// When it expires: tells whether a read is due to extend it, and whether the entry is
    /// still the version that read saw.
    expires: Instant,
}

impl Stored {
    fn new(bytes: Bytes, user: Option<Arc<str>>, ttl: Duration) -> Self {
        Self {
            bytes,
            user,
            ttl,
            expires: Instant::now() + ttl,
        }
    }
}

struct UntilExpiry;

impl Expiry<Id, Stored> for UntilExpiry {
    fn expire_after_create(&self, _: &Id, stored: &Stored, _: Instant) -> Option<Duration> {
        Some(stored.ttl)
    }

    fn expire_after_update(
        &self,
        _: &Id,
        stored: &Stored,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(stored.ttl)
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.sessions.entry_count())
            .finish()
    }
}

impl MemoryStore {
    /// A store of at most `max_sessions` sessions of at most `max_size` bytes each, that end
    /// after `ttl` without a request (the layer's `session.ttl`).
    pub fn new(max_sessions: u64, max_size: usize, ttl: Duration) -> Self {
        let max_bytes = max_sessions.saturating_mul(max_size as u64);
        Self::bounded(max_sessions, max_bytes, max_size, ttl)
    }

    /// [`new`](Self::new), holding about `max_bytes` bytes of sessions at most (plus 96 per
    /// session): what `ProductionLayer` builds (`RUSTFORGE_SESSION_MAX_SESSIONS`,
    /// `RUSTFORGE_SESSION_MAX_BYTES`).
    pub fn bounded(max_sessions: u64, max_bytes: u64, max_size: usize, ttl: Duration) -> Self {
        let limits = Limits {
            max_size,
            idle: ttl,
            absolute: None,
        };
        Self::with_limits(max_sessions, max_bytes, limits)
    }

    /// At most `max_sessions` sessions and about `max_bytes` bytes of them (plus 96 per
    /// session): the least used go first when either is reached.
    pub(crate) fn with_limits(max_sessions: u64, max_bytes: u64, limits: Limits) -> Self {
        let bound = ByteBound::new(max_sessions, max_bytes);
        Self {
            sessions: Moka::builder()
                .max_capacity(max_bytes)
                .weigher(move |_: &Id, stored: &Stored| bound.weigh(stored.bytes.len()))
                .expire_after(UntilExpiry)
                .build(),
            limits,
        }
    }

    /// The sessions' bytes (with the per-session overhead; at least `max_bytes /
    /// max_sessions` each), approximately.
    pub fn weighted_size(&self) -> u64 {
        self.sessions.weighted_size()
    }

    /// Applies pending evictions now (moka applies them in batches as it is used).
    pub async fn run_pending_tasks(&self) {
        self.sessions.run_pending_tasks().await;
    }

    fn stored(&self, record: &Record) -> Result<Stored> {
        let bytes = Bytes::from(self.limits.encode(record)?);
        let user = user_of(record).map(Arc::from);
        Ok(Stored::new(bytes, user, time_left(record)))
    }

    /// Extends `stored`, the entry of `id` a read found, unless a save replaced it meanwhile.
    async fn extend(&self, id: Id, stored: Stored) {
        let seen = stored.expires;
        let extended = Stored::new(stored.bytes, stored.user, self.limits.extended());
        self.sessions
            .entry(id)
            .and_compute_with(|current| async move {
                match current {
                    Some(entry) if entry.value().expires == seen => Op::Put(extended),
                    _ => Op::Nop,
                }
            })
            .await;
        note_extended();
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    /// Stores a new session under an id no other session has (a new id on a collision).
    async fn create(&self, record: &mut Record) -> Result<()> {
        let stored = self.stored(record)?;
        for _ in 0..8 {
            let fresh = stored.clone();
            let result = self
                .sessions
                .entry(record.id)
                .and_compute_with(|current| async move {
                    match current {
                        Some(_) => Op::Nop,
                        None => Op::Put(fresh),
                    }
                })
                .await;
            if matches!(result, CompResult::Inserted(_)) {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(Error::Backend("no free session id after 8 tries".into()))
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let stored = self.stored(record)?;
        self.sessions.insert(record.id, stored).await;
        Ok(())
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let Some(stored) = self.sessions.get(id).await else {
            return Ok(None);
        };
        let record = self
            .limits
            .decode(*id, &stored.bytes)
            .map(|(record, _)| record);
        let left = stored.expires.saturating_duration_since(Instant::now());
        if record.is_some() && self.limits.extend_when(left) {
            self.extend(*id, stored).await;
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.sessions.invalidate(id).await;
        Ok(())
    }
}

/// The memory store finds a user's sessions by walking its entries: ending them is rare, and
/// the walk reads the user kept beside each entry, never decoding a session.
#[async_trait]
impl UserIndex for MemoryStore {
    async fn end_sessions_of(&self, user: &str, except: Option<Id>) -> Result<usize> {
        let ids: Vec<Id> = self
            .sessions
            .iter()
            .filter(|(id, stored)| stored.user.as_deref() == Some(user) && Some(**id) != except)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.sessions.invalidate(id).await;
        }
        Ok(ids.len())
    }
}

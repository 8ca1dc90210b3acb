//! The in-process session store: moka, bounded, each session expiring on its own date.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use moka::Expiry;
use moka::future::Cache as Moka;
use moka::ops::compute::{CompResult, Op};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result, SessionStore};

use super::record::{Limits, time_left};

/// Sessions in this process's memory, at most `max_sessions` (the least used go first when it
/// is full), each removed when it expires. A user whose requests reach another server has no
/// session there: behind a load balancer, use [`RedisStore`](super::RedisStore).
#[derive(Clone)]
pub struct MemoryStore {
    sessions: Moka<Id, Stored>,
    limits: Limits,
}

#[derive(Clone)]
struct Stored {
    bytes: Bytes,
    ttl: Duration,
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
    /// A store of at most `max_sessions` sessions of at most `max_size` bytes each.
    pub fn new(max_sessions: u64, max_size: usize) -> Self {
        Self::with_limits(
            max_sessions,
            Limits {
                max_size,
                absolute: None,
            },
        )
    }

    pub(crate) fn with_limits(max_sessions: u64, limits: Limits) -> Self {
        Self {
            sessions: Moka::builder()
                .max_capacity(max_sessions)
                .expire_after(UntilExpiry)
                .build(),
            limits,
        }
    }

    fn stored(&self, record: &Record) -> Result<Stored> {
        Ok(Stored {
            bytes: Bytes::from(self.limits.encode(record)?),
            ttl: time_left(record),
        })
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
        let stored = self.sessions.get(id).await;
        Ok(stored.and_then(|s| self.limits.decode(&s.bytes)))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.sessions.invalidate(id).await;
        Ok(())
    }
}

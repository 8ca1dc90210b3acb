//! The shared session store: Redis through the crate's [`RedisHandle`].

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result, SessionStore};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::record::{Limits, expiry_in, time_left};
use super::store::note_extended;
use super::users::{UserIndex, user_of};
use crate::redis::{RedisHandle, Script};

/// Sessions in Redis, so that any server can serve any user. Keys are
/// `<redis prefix>:session:<id>` with the session's own expiry (`PX`), so Redis removes
/// expired sessions itself. `create` is `SET NX` (a colliding id gets a new one), `save` is
/// `SET XX` (a session deleted or expired meanwhile is not brought back). `load` is one `GET`:
/// the value is the session's expiry (unix ms, 8 bytes) followed by its data as JSON, and when
/// less than the inactivity timeout is left a script extends the key's expiry and the one in
/// the value together — never rewriting the data, so a read cannot undo another request's
/// save. Every command is
/// bounded by the handle's command timeout: while Redis is down a request that uses its
/// session fails in that time, never hangs.
#[derive(Clone, Debug)]
pub struct RedisStore {
    redis: RedisHandle,
    limits: Limits,
    index: Script,
    extend: Script,
}

impl RedisStore {
    /// A store on the shared handle, for sessions of at most `max_size` bytes that end after
    /// `ttl` without a request (the layer's `session.ttl`).
    pub fn new(redis: RedisHandle, max_size: usize, ttl: std::time::Duration) -> Self {
        Self::with_limits(
            redis,
            Limits {
                max_size,
                idle: ttl,
                absolute: None,
            },
        )
    }

    pub(crate) fn with_limits(redis: RedisHandle, limits: Limits) -> Self {
        Self {
            redis,
            limits,
            index: Script::new(include_str!("index.lua")),
            extend: Script::new(include_str!("extend.lua")),
        }
    }

    fn key(&self, id: &impl std::fmt::Display) -> String {
        format!("{}:session:{id}", self.redis.prefix())
    }

    /// Extends the session under `key` to the TTL plus the slack (`extend.lua`), and its
    /// user's index with it.
    async fn extend(&self, key: &str, record: &Record) -> Result<()> {
        let extended = self.limits.extended();
        let mut invocation = self.extend.invocation();
        invocation
            .key(key)
            .arg(extended.as_millis() as u64)
            .arg(&expiry_in(extended)[..]);
        let _: i64 = self
            .redis
            .invoke(&invocation, Duration::MAX)
            .await
            .map_err(backend)?;
        note_extended();
        if let Some(user) = user_of(record) {
            self.index(user, record, extended).await?;
        }
        Ok(())
    }

    fn index_key(&self, user: &str) -> String {
        format!("{}:session-user:{user}", self.redis.prefix())
    }

    /// Records that `record`'s session, of `user`, lives `ttl` from now.
    async fn index(&self, user: &str, record: &Record, ttl: Duration) -> Result<()> {
        let now = unix_ms();
        let mut invocation = self.index.invocation();
        invocation
            .key(self.index_key(user))
            .arg(record.id.to_string())
            .arg(now + ttl.as_millis() as u64)
            .arg(now);
        let _: i64 = self
            .redis
            .invoke(&invocation, Duration::MAX)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// `SET key value EX ttl NX|XX`; whether it was written.
    async fn set(&self, record: &Record, condition: &str) -> Result<bool> {
        let bytes = self.limits.encode(record)?;
        let ttl = time_left(record);
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(&record.id))
            .arg(bytes)
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .arg(condition);
        let written: Option<String> = self.redis.query(&cmd).await.map_err(backend)?;
        if let (Some(_), Some(user)) = (&written, user_of(record)) {
            self.index(user, record, ttl).await?;
        }
        Ok(written.is_some())
    }
}

fn backend(err: crate::redis::RedisError) -> Error {
    Error::Backend(err.to_string())
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        for _ in 0..8 {
            if self.set(record, "NX").await? {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(Error::Backend("no free session id after 8 tries".into()))
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.set(record, "XX").await.map(drop)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let key = self.key(id);
        let bytes: Option<Vec<u8>> = self
            .redis
            .query(redis::cmd("GET").arg(&key))
            .await
            .map_err(backend)?;
        let Some((record, left)) = bytes.and_then(|bytes| self.limits.decode(*id, &bytes)) else {
            return Ok(None);
        };
        // The expiry the value carries is the key's (both are written together); a server whose
        // clock runs ahead extends a little early, never too late. The extension's future is
        // boxed: inline, it would make every read's future (boxed and moved whole) larger.
        if self.limits.extend_when(left) {
            Box::pin(self.extend(&key, &record)).await?;
        }
        Ok(Some(record))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        let _: i64 = self
            .redis
            .query(redis::cmd("DEL").arg(self.key(id)))
            .await
            .map_err(backend)?;
        Ok(())
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[async_trait]
impl UserIndex for RedisStore {
    async fn end_sessions_of(&self, user: &str, except: Option<Id>) -> Result<usize> {
        let index = self.index_key(user);
        let live: Vec<String> = self
            .redis
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&index)
                    .arg(unix_ms())
                    .arg("+inf"),
            )
            .await
            .map_err(backend)?;
        let except = except.map(|id| id.to_string());
        let mut ended = 0;
        for id in live.iter().filter(|id| Some(*id) != except.as_ref()) {
            // Each session key hashes to its own slot: one DEL each, then out of the index.
            let deleted: i64 = self
                .redis
                .query(redis::cmd("DEL").arg(self.key(id)))
                .await
                .map_err(backend)?;
            let _: i64 = self
                .redis
                .query(redis::cmd("ZREM").arg(&index).arg(id))
                .await
                .map_err(backend)?;
            ended += usize::from(deleted > 0);
        }
        Ok(ended)
    }
}

//! The shared store: Redis through the crate's [`RedisHandle`], single node or Cluster.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{join_all, try_join_all};

use super::codec::is_integer;
use super::store::{BoxFuture, CacheError, CacheStore};
use crate::redis::{RedisHandle, Script};

/// Deletes the key only while it holds the caller's value: a lock released by its owner only.
const FORGET_IF: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The Redis [`CacheStore`]: every server sees the same entries. Keys are
/// `<redis prefix>:<cache prefix>:<key>`; they carry no hash tag, so on a Cluster entries
/// spread over every node, and `many`/`put_many` send one command per key, concurrently.
///
/// ```no_run
/// use rustforge_prod::cache::{Cache, RedisStore};
/// use rustforge_prod::redis::{RedisConfig, RedisHandle};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisHandle::connect(&RedisConfig::new("redis://127.0.0.1:6379"))?;
/// let cache = Cache::new(RedisStore::new(redis));
/// cache.put("greeting", &"hello", None).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RedisStore {
    redis: RedisHandle,
    forget_if: Script,
}

impl RedisStore {
    /// A store on the shared handle.
    pub fn new(redis: RedisHandle) -> Self {
        Self {
            redis,
            forget_if: Script::new(FORGET_IF),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.redis.prefix())
    }
}

fn set(key: String, value: &[u8], ttl: Option<Duration>) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(ttl) = ttl {
        // PX 0 is an error in Redis; the facade never sends a zero TTL, this keeps it so.
        cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
    }
    cmd
}

fn bytes(value: Option<Vec<u8>>) -> Option<Bytes> {
    value.map(Bytes::from)
}

impl CacheStore for RedisStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, CacheError>> {
        Box::pin(async move {
            let value: Option<Vec<u8>> = self
                .redis
                .query(redis::cmd("GET").arg(self.key(key)))
                .await?;
            Ok(bytes(value))
        })
    }

    fn get_many<'a>(
        &'a self,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<Bytes>>, CacheError>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            if self.redis.is_cluster() {
                let gets = keys.iter().map(|key| self.get(key));
                return try_join_all(gets).await;
            }
            let mut mget = redis::cmd("MGET");
            for key in keys {
                mget.arg(self.key(key));
            }
            let values: Vec<Option<Vec<u8>>> = self.redis.query(&mget).await?;
            Ok(values.into_iter().map(bytes).collect())
        })
    }

    fn put_many<'a>(
        &'a self,
        entries: &'a [(String, Bytes)],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            if let [(key, value)] = entries {
                let cmd = set(self.key(key), value, ttl);
                return Ok(self.redis.query::<()>(&cmd).await?);
            }
            if self.redis.is_cluster() {
                let sets = entries.iter().map(|(key, value)| async move {
                    let cmd = set(self.key(key), value, ttl);
                    self.redis.query::<()>(&cmd).await
                });
                // Every write is attempted; the first failure is reported.
                return join_all(sets)
                    .await
                    .into_iter()
                    .collect::<Result<(), _>>()
                    .map_err(Into::into);
            }
            let mut pipeline = redis::pipe();
            for (key, value) in entries {
                pipeline
                    .add_command(set(self.key(key), value, ttl))
                    .ignore();
            }
            Ok(self.redis.query_pipeline::<()>(&pipeline).await?)
        })
    }

    fn add<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool, CacheError>> {
        Box::pin(async move {
            let mut cmd = set(self.key(key), &value, ttl);
            cmd.arg("NX");
            let stored: Option<String> = self.redis.query(&cmd).await?;
            Ok(stored.is_some())
        })
    }

    fn touch<'a>(
        &'a self,
        key: &'a str,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool, CacheError>> {
        Box::pin(async move {
            let full = self.key(key);
            let touched: i64 = match ttl {
                Some(ttl) => {
                    let ms = ttl.as_millis().max(1) as u64;
                    self.redis
                        .query(redis::cmd("PEXPIRE").arg(full).arg(ms))
                        .await?
                }
                // PERSIST answers 0 for a key without a TTL too: EXISTS tells them apart.
                None => {
                    let mut pipeline = redis::pipe();
                    pipeline.cmd("PERSIST").arg(&full).ignore();
                    pipeline.cmd("EXISTS").arg(&full);
                    let exists: Vec<i64> = self.redis.query_pipeline(&pipeline).await?;
                    exists.first().copied().unwrap_or(0)
                }
            };
            Ok(touched > 0)
        })
    }

    fn forget<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, CacheError>> {
        Box::pin(async move {
            let removed: i64 = self
                .redis
                .query(redis::cmd("DEL").arg(self.key(key)))
                .await?;
            Ok(removed > 0)
        })
    }

    fn forget_if<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, CacheError>> {
        Box::pin(async move {
            let mut invocation = self.forget_if.invocation();
            invocation.key(self.key(key)).arg(value);
            let timeout = self.redis.command_timeout();
            let removed: i64 = self.redis.invoke(&invocation, timeout).await?;
            Ok(removed > 0)
        })
    }

    fn increment<'a>(&'a self, key: &'a str, by: i64) -> BoxFuture<'a, Result<i64, CacheError>> {
        Box::pin(async move {
            let full = self.key(key);
            match self
                .redis
                .query::<i64>(redis::cmd("INCRBY").arg(&full).arg(by))
                .await
            {
                Ok(value) => Ok(value),
                Err(err) => {
                    // Redis answers "value is not an integer or out of range": tell which.
                    let current: Option<Vec<u8>> =
                        self.redis.query(redis::cmd("GET").arg(&full)).await?;
                    match current {
                        Some(value) if !is_integer(&value) => Err(CacheError::NotAnInteger {
                            key: key.to_owned(),
                        }),
                        _ => Err(err.into()),
                    }
                }
            }
        })
    }

    fn flush<'a>(
        &'a self,
        prefix: &'a str,
        keep: &'a (dyn Fn(&str) -> bool + Sync),
    ) -> BoxFuture<'a, Result<u64, CacheError>> {
        Box::pin(async move {
            let redis_prefix = self.key("");
            let keep = |key: &[u8]| {
                let key = key.strip_prefix(redis_prefix.as_bytes()).unwrap_or(key);
                std::str::from_utf8(key).is_ok_and(keep)
            };
            Ok(self.redis.unlink_prefixed(&self.key(prefix), &keep).await?)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), CacheError>> {
        Box::pin(async move {
            self.redis.ping().await?;
            Ok(())
        })
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

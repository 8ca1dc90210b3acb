//! [`Database`]: the tuned `PgPool`, observed.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;

use super::config::DatabaseConfig;
use super::observed::{ObservedPool, PoolObserver};
use crate::error::ConfigError;

/// The application's PostgreSQL pool: sqlx's [`PgPool`](sqlx::postgres::PgPool) built from a
/// [`DatabaseConfig`]. Cheap to clone.
///
/// Run queries on [`pool`](Self::pool) as with any `PgPool`: every checkout counts in the pool
/// metrics (`db_client_connection_wait_time_seconds`, `_pending_requests`, `_timeouts_total`)
/// and every query in `db_client_operation_duration_seconds`, through the pool,
/// [`acquire`](Self::acquire) and [`begin`](Self::begin) alike.
///
/// The pool connects lazily: a PostgreSQL that is down at start is not an error at start, but
/// each query fails after at most `acquire_timeout`, and the pool reconnects by itself when
/// PostgreSQL is back.
///
/// ```no_run
/// use rustforge_prod::database::{Database, DatabaseConfig};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let db = Database::connect(&DatabaseConfig::new("postgres://app@localhost/app"))?;
/// let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(db.pool()).await?;
/// let mut conn = db.acquire().await?; // the wait counted, like the query's above
/// sqlx::query("SELECT 1").execute(&mut *conn).await?;
/// # let _ = users; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Database {
    pool: ObservedPool,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("size", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// The pool `config` describes. Nothing connects yet (see the type's docs).
    pub fn connect(config: &DatabaseConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let options = config.connect_options()?;
        let mut pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(config.idle_timeout)
            .max_lifetime(config.max_lifetime);
        if let Some(lifetime) = config.max_lifetime
            && config.lifetime_jitter > 0
        {
            let retire = Retirement::new(lifetime, config.lifetime_jitter);
            pool = pool.before_acquire(move |_, meta| {
                let keep = !retire.due(meta.age);
                Box::pin(async move { Ok(keep) })
            });
        }
        Ok(Self {
            pool: ObservedPool::new(pool.connect_lazy_with(options)),
        })
    }

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn with_observer(mut self, observer: Arc<dyn PoolObserver>) -> Self {
        self.pool.observe(observer);
        self
    }

    /// The pool, for queries (`.fetch_one(db.pool())`): sqlx's `PgPool` with its checkouts and
    /// queries measured ([`ObservedPool`]).
    pub fn pool(&self) -> &ObservedPool {
        &self.pool
    }

    /// A connection, waiting up to the acquire timeout; the wait is measured.
    pub async fn acquire(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        self.pool.acquire().await
    }

    /// A transaction, waiting up to the acquire timeout for its connection; the wait is
    /// measured.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Closes the pool: new acquisitions fail, and it returns once every connection is back and
    /// closed. `rustforge_prod::serve` calls it after the server has stopped.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }
}

/// When a connection retires: never before `lifetime × (1 − jitter)`; from there the chance at
/// each acquire grows linearly to certainty at `lifetime` (where sqlx's own reaper closes it in
/// any case). Connections opened together thus retire spread over the window.
#[derive(Clone, Copy)]
struct Retirement {
    from: Duration,
    window: Duration,
}

impl Retirement {
    fn new(lifetime: Duration, jitter_percent: u8) -> Self {
        let window = lifetime * u32::from(jitter_percent) / 100;
        Self {
            from: lifetime - window,
            window,
        }
    }

    fn due(&self, age: Duration) -> bool {
        if age < self.from {
            return false;
        }
        let into = (age - self.from).as_secs_f64() / self.window.as_secs_f64().max(f64::EPSILON);
        // A uniform draw: uuid's generator is already a dependency and fast enough per acquire.
        let draw = (uuid::Uuid::new_v4().as_u64_pair().0 >> 11) as f64 / (1u64 << 53) as f64;
        draw < into
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retirement_is_spread_over_the_window() {
        let retire = Retirement::new(Duration::from_secs(1000), 10);
        assert!(!retire.due(Duration::from_secs(899)));
        assert!(retire.due(Duration::from_secs(1000)));
        let halfway = (0..10_000)
            .filter(|_| retire.due(Duration::from_secs(950)))
            .count();
        assert!(
            (4_000..6_000).contains(&halfway),
            "{halfway} of 10,000 halfway through"
        );
    }
}

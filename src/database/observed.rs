//! [`ObservedPool`]: the `PgPool` with every checkout and every query measured — what
//! [`Database::pool`](super::Database::pool) hands out, so that queries written the usual way
//! (`.fetch_one(db.pool())`) are observed too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Acquire, Describe, Either, Execute, Executor, Postgres, Transaction};
use tracing::Instrument;

/// Hears how acquisitions and queries go, for metrics (`database::instruments`).
pub(crate) trait PoolObserver: Send + Sync {
    /// A caller started waiting for a connection.
    fn waiting(&self);
    /// It got one (or gave up: `timed_out`) after `waited`.
    fn acquired(&self, waited: Duration, timed_out: bool);
    /// A query ran for `took`: its operation (`SELECT`, …, `OTHER`) and, when it failed, the
    /// kind of error.
    fn query(&self, operation: &'static str, took: Duration, error: Option<&'static str>);
}

/// sqlx's [`PgPool`], with every checkout (its wait, and a timeout) and every query (its
/// duration, and a `db.query` span when tracing is on) measured. Use it as the pool:
/// `sqlx::query(..).fetch_one(db.pool())`, `db.pool().begin()`, `sqlx::migrate!().run(db.pool())`
/// all work. Cheap to clone. [`inner`](Self::inner) is the bare pool, unobserved.
#[derive(Clone)]
pub struct ObservedPool {
    pool: PgPool,
    observer: Option<Arc<dyn PoolObserver>>,
}

impl std::fmt::Debug for ObservedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.pool.fmt(f)
    }
}

impl std::ops::Deref for ObservedPool {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

impl ObservedPool {
    pub(super) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            observer: None,
        }
    }

    pub(super) fn observe(&mut self, observer: Arc<dyn PoolObserver>) {
        self.observer = Some(observer);
    }

    /// The bare sqlx pool: what it does is not measured.
    pub fn inner(&self) -> &PgPool {
        &self.pool
    }

    /// A connection, waiting up to the acquire timeout; the wait is measured.
    pub async fn acquire(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        self.measured(self.pool.acquire()).await
    }

    /// A transaction, waiting up to the acquire timeout for its connection; the wait is
    /// measured.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.measured(self.pool.begin()).await
    }

    async fn measured<T>(
        &self,
        acquire: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let Some(observer) = &self.observer else {
            return acquire.await;
        };
        observer.waiting();
        let started = Instant::now();
        let result = acquire.await;
        let timed_out = matches!(result, Err(sqlx::Error::PoolTimedOut));
        observer.acquired(started.elapsed(), timed_out);
        result
    }

    /// Reports a query that ran from `started` with `result`.
    fn report<T>(
        &self,
        operation: &'static str,
        started: Instant,
        result: &Result<T, sqlx::Error>,
    ) {
        if let Some(observer) = &self.observer {
            let error = result.as_ref().err().map(error_kind);
            observer.query(operation, started.elapsed(), error);
        }
    }
}

/// The operation of a statement, from its first keyword: a bounded set, so that it can label a
/// metric (never the statement itself, which can hold values).
pub(crate) fn operation(sql: &str) -> &'static str {
    let sql = sql.trim_start();
    let word: String = sql
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    match word.as_str() {
        "SELECT" => "SELECT",
        "INSERT" => "INSERT",
        "UPDATE" => "UPDATE",
        "DELETE" => "DELETE",
        "WITH" => "WITH",
        "MERGE" => "MERGE",
        "COPY" => "COPY",
        "CALL" => "CALL",
        "BEGIN" => "BEGIN",
        "COMMIT" => "COMMIT",
        "ROLLBACK" => "ROLLBACK",
        "CREATE" => "CREATE",
        "ALTER" => "ALTER",
        "DROP" => "DROP",
        "TRUNCATE" => "TRUNCATE",
        "SET" => "SET",
        "SHOW" => "SHOW",
        "LOCK" => "LOCK",
        _ => "OTHER",
    }
}

/// The kind of a failed query, for `error.type`: a bounded set.
fn error_kind(err: &sqlx::Error) -> &'static str {
    match err {
        sqlx::Error::PoolTimedOut => "pool_timed_out",
        sqlx::Error::PoolClosed => "pool_closed",
        sqlx::Error::Database(_) => "database",
        sqlx::Error::Io(_) => "io",
        sqlx::Error::Tls(_) => "tls",
        sqlx::Error::Protocol(_) => "protocol",
        sqlx::Error::RowNotFound => "row_not_found",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "decode",
        _ => "other",
    }
}

/// The span of one query: the OpenTelemetry database names, the operation only (no statement).
fn span(operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db.query",
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = operation,
    )
}

impl<'p> Executor<'p> for &'_ ObservedPool {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.clone();
        let operation = operation(query.sql());
        let span = span(operation);
        // Each step runs in the query's span (a stream has no `instrument` of its own).
        let rows = async_stream::try_stream! {
            let mut conn = pool.acquire().instrument(span.clone()).await?;
            let started = Instant::now();
            let mut rows = conn.fetch_many(query);
            loop {
                match rows.try_next().instrument(span.clone()).await {
                    Ok(Some(row)) => yield row,
                    Ok(None) => {
                        pool.report(operation, started, &Ok::<(), sqlx::Error>(()));
                        break;
                    }
                    Err(err) => {
                        let result = Err(err);
                        pool.report::<()>(operation, started, &result);
                        result?;
                    }
                }
            }
        };
        rows.boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.clone();
        let operation = operation(query.sql());
        let span = span(operation);
        Box::pin(
            async move {
                let mut conn = pool.acquire().await?;
                let started = Instant::now();
                let result = conn.fetch_optional(query).await;
                pool.report(operation, started, &result);
                result
            }
            .instrument(span),
        )
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move { pool.acquire().await?.prepare_with(sql, parameters).await })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move { pool.acquire().await?.describe(sql).await })
    }
}

impl<'a> Acquire<'a> for &'_ ObservedPool {
    type Database = Postgres;
    type Connection = PoolConnection<Postgres>;

    fn acquire(self) -> BoxFuture<'static, Result<Self::Connection, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move { pool.acquire().await })
    }

    fn begin(self) -> BoxFuture<'static, Result<Transaction<'a, Postgres>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move { pool.begin().await })
    }
}

#[cfg(test)]
mod tests {
    use super::operation;

    #[test]
    fn operations_are_read_from_the_first_keyword_and_bounded() {
        assert_eq!(operation("  select 1"), "SELECT");
        assert_eq!(operation("INSERT INTO t VALUES ($1)"), "INSERT");
        assert_eq!(operation("with x as (select 1) select * from x"), "WITH");
        assert_eq!(operation("VACUUM"), "OTHER");
        assert_eq!(operation("'; DROP TABLE users"), "OTHER");
    }
}

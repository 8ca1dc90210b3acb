//! The application's PostgreSQL pool (feature `sqlx-postgres`): sqlx's `PgPool` from
//! `DATABASE_URL` with production defaults that are explained ([`DatabaseConfig`]), every one
//! overridable by a `RUSTFORGE_DB_*` variable; its readiness check, pool metrics with the
//! OpenTelemetry database names, and a graceful close at shutdown.
//!
//! ```
//! use rustforge_prod::ProductionLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rustforge_prod::Error> {
//! let prod = ProductionLayer::builder()
//!     .from_vars([("DATABASE_URL", "postgres://app:secret@127.0.0.1:1/app")])?
//!     .build()
//!     .await?; // nothing connects yet: a database that is down is not an error at start
//! let db = prod.database().expect("DATABASE_URL is set");
//! assert!(!db.is_closed());
//! # Ok(()) }
//! ```
//!
//! Queries run on [`Database::pool`] (sqlx's `PgPool`, observed: every checkout's wait and
//! every query's duration are measured, as through [`Database::acquire`] and
//! [`Database::begin`]). While PostgreSQL is down, each query fails after
//! at most the acquire timeout (3 s) — never hangs — and the pool reconnects by itself once it
//! is back. Guide: `docs/database.md`.

mod config;
#[cfg(feature = "metrics")]
mod instruments;
mod observed;
mod pool;

pub use config::DatabaseConfig;
pub use observed::ObservedPool;
pub use pool::Database;

#[cfg(feature = "metrics")]
pub(crate) use instruments::instruments;

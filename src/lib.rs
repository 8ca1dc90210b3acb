//! # rustforge-prod
//!
//! Make an axum service production-ready with one builder call: the standard HTTP middleware,
//! rate limiting, real-time broadcasting, health checks, metrics and object storage — each with an
//! in-memory/local backend that needs no server, and a distributed backend (Redis, S3) for many
//! app servers behind a load balancer.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use rustforge_prod::{ProductionLayer, init_logging};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let prod = ProductionLayer::builder().from_env()?.build().await?;
//!     let _logs = init_logging(&prod.config().log)?;
//!     let app = Router::new()
//!         .route("/", get(|| async { "Hello, production!" }))
//!         .merge(prod.routes())
//!         .layer(prod.layer());
//!     let listener = rustforge_prod::bind("0.0.0.0:3000").await?; // TCP_NODELAY on
//!     // Header-read and idle timeouts, a connection cap, graceful shutdown on SIGTERM.
//!     rustforge_prod::serve(listener, app, &prod).await;
//!     Ok(())
//! }
//! ```
//!
//! ## Features
//!
//! | module | feature | memory / local backend | distributed backend | status |
//! |---|---|---|---|---|
//! | [`middleware`] | `middleware` | — | — | ready |
//! | [`redis`] (shared handle) | `redis` | — | Redis, Redis Cluster | ready |
//! | [`ratelimit`] | `ratelimit` | sharded, bounded in-process store | Redis, Redis Cluster (`redis`) | ready |
//! | [`broadcast`] | `broadcast` | in-process hub | Redis, Redis Cluster (`redis`) | ready |
//! | [`health`] | `health` | disk, memory, closure checks | Redis, PostgreSQL checks | ready |
//! | [`metrics`] | `metrics` | Prometheus `/metrics` | OTLP push ([`otlp`](crate#features), feature `otlp`) | ready |
//! | `otlp` | `otlp` | — | OTLP/HTTP metrics and request spans | ready |
//! | [`storage`] | `storage` | local disk, memory | S3, S3-compatible (`s3`) | ready |
//! | [`cache`] | `cache` | moka, bounded | Redis, Redis Cluster (`redis`) | ready |
//! | [`session`] | `session` | moka, bounded | Redis, Redis Cluster (`redis`) | ready |
//! | `database` | `sqlx-postgres` | — | PostgreSQL (sqlx `PgPool`) | ready |
//!
//! `default` enables every module with its memory backend; `full` adds `redis`, `s3`, `webhooks`,
//! `otlp` and `sqlx-postgres`;
//! `test-util` exposes the shared conformance suites.
//!
//! ## Configuration
//!
//! Code ([`ProductionLayerBuilder`]), a file ([`Config`] is serde) or the environment
//! ([`Config::from_env`], variables listed in [`config`]). Every bad setting is a
//! [`ConfigError`] that names the setting and the value; nothing panics on user input.

#![cfg_attr(docsrs, feature(doc_cfg))]
// For the library only: tests and benches share helpers through `pub` items of their own.
#![warn(unreachable_pub, missing_debug_implementations)]

#[cfg(any(feature = "ratelimit", feature = "cache", feature = "session"))]
mod backend;
#[cfg(feature = "redis")]
mod breaker;
pub mod config;
mod env;
pub mod error;
// The guides use every feature.
#[cfg(feature = "full")]
pub mod guides;
pub mod logging;
#[cfg(any(
    feature = "middleware",
    feature = "ratelimit",
    feature = "storage",
    feature = "session"
))]
mod problem;
pub mod production;
pub mod server;
mod shutdown;
mod telemetry;
mod util;

#[cfg(feature = "broadcast")]
pub mod broadcast;
#[cfg(feature = "cache")]
pub mod cache;
#[cfg(feature = "sqlx-postgres")]
pub mod database;
#[cfg(feature = "health")]
pub mod health;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "middleware")]
pub mod middleware;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "ratelimit")]
pub mod ratelimit;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "session")]
pub mod session;
#[cfg(feature = "storage")]
pub mod storage;
#[cfg(feature = "test-util")]
pub mod testing;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use config::Config;
pub use error::{ConfigError, Error};
pub use logging::{LogConfig, LogFormat, LogGuard, init_logging};
#[cfg(feature = "middleware")]
pub use production::ProductionStack;
pub use production::serve;
pub use production::{ProductionLayer, ProductionLayerBuilder};
pub use server::{Listener, bind};
pub use shutdown::Shutdown;

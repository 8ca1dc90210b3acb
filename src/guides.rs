//! The guides of `docs/`, in rustdoc: read them here or on GitHub. Their Rust snippets are
//! doctests, so the guides cannot drift from the code.

#[doc = include_str!("../docs/architecture.md")]
pub mod architecture {}
#[doc = include_str!("../docs/broadcasting.md")]
pub mod broadcasting {}
#[doc = include_str!("../docs/cache.md")]
pub mod cache {}
#[doc = include_str!("../docs/database.md")]
pub mod database {}
#[doc = include_str!("../docs/deployment.md")]
pub mod deployment {}
#[doc = include_str!("../docs/environment.md")]
pub mod environment {}
#[doc = include_str!("../docs/health-checks.md")]
pub mod health_checks {}
#[doc = include_str!("../docs/metrics.md")]
pub mod metrics {}
#[doc = include_str!("../docs/multi-server.md")]
pub mod multi_server {}
#[doc = include_str!("../docs/performance.md")]
pub mod performance {}
#[doc = include_str!("../docs/performance-tuning.md")]
pub mod performance_tuning {}
#[doc = include_str!("../docs/rate-limiting.md")]
pub mod rate_limiting {}
#[doc = include_str!("../docs/redis.md")]
pub mod redis {}
#[doc = include_str!("../docs/reliability.md")]
pub mod reliability {}
#[doc = include_str!("../docs/security.md")]
pub mod security {}
#[doc = include_str!("../docs/sessions.md")]
pub mod sessions {}
#[doc = include_str!("../docs/storage.md")]
pub mod storage {}

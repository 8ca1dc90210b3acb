//! [`StorageCheck`]: the storage module's health check.

use std::time::Instant;

use crate::health::{BoxFuture, CheckResult, ComponentType, HealthCheck};

use super::disk::Disk;
use super::error::StorageError;

/// Checks that a disk answers: one metadata request for a probe path that need not exist
/// (`.rustforge-health`). "Not found" is healthy — the backend answered and the credentials
/// work; an error or a timeout is not. Nothing is written.
///
/// ```
/// use rustforge_prod::storage::{Storage, StorageCheck};
/// use rustforge_prod::health::HealthCheck;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = Storage::memory();
/// let check = StorageCheck::new(storage.default_disk().clone());
/// assert_eq!(check.name(), "storage-memory");
/// assert_eq!(check.check().await.status.as_str(), "pass");
/// # }
/// ```
#[derive(Debug)]
pub struct StorageCheck {
    disk: Disk,
    name: String,
}

impl StorageCheck {
    /// A check of `disk`, named `storage-<disk>`.
    pub fn new(disk: Disk) -> Self {
        let name = format!("storage-{}", disk.name());
        Self { disk, name }
    }
}

impl HealthCheck for StorageCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn measurement(&self) -> &str {
        "responseTime"
    }

    fn component_type(&self) -> ComponentType {
        ComponentType::Datastore
    }

    fn check(&self) -> BoxFuture<'_, CheckResult> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.disk.metadata(".rustforge-health").await;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            match result {
                Ok(_) | Err(StorageError::NotFound { .. }) => {
                    CheckResult::healthy().observed(ms, "ms")
                }
                Err(err) => CheckResult::unhealthy(err.to_string()).observed(ms, "ms"),
            }
        })
    }
}

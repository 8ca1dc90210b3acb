//! The storage module's health check, a [`LatencyCheck`] of one metadata request.

use crate::health::{BoxFuture, LatencyCheck};

use super::disk::Disk;
use super::error::StorageError;

/// Checks that `disk` answers, named `storage-<disk>`: one metadata request for a probe path
/// that need not exist (`.rustforge-health`). "Not found" is healthy — the backend answered and
/// the credentials work; an error or a timeout is not. Nothing is written. `ProductionLayer`
/// registers it for the default disk.
///
/// ```
/// use rustforge_prod::health::HealthCheck;
/// use rustforge_prod::storage::{Storage, health_check};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = Storage::memory();
/// let check = health_check(storage.default_disk().clone());
/// assert_eq!(check.name(), "storage-memory");
/// assert_eq!(check.check().await.status.as_str(), "pass");
/// # }
/// ```
pub fn health_check(
    disk: Disk,
) -> LatencyCheck<impl Fn() -> BoxFuture<'static, Result<(), StorageError>> + Send + Sync + 'static>
{
    LatencyCheck::new(format!("storage-{}", disk.name()), move || {
        let disk = disk.clone();
        Box::pin(async move {
            match disk.metadata(".rustforge-health").await {
                Ok(_) | Err(StorageError::NotFound { .. }) => Ok(()),
                Err(err) => Err(err),
            }
        }) as BoxFuture<'static, Result<(), StorageError>>
    })
}

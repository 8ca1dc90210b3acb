//! Storage: a Laravel-Storage-like facade over [object_store](https://docs.rs/object_store) —
//! named disks on the local filesystem, in memory or on S3, with public and expiring URLs,
//! streaming reads and bounded-memory streaming writes.
//!
//! ```
//! use std::time::Duration;
//! use rustforge_prod::storage::{Storage, StorageConfig, DiskConfig, WriteOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let storage = Storage::new(
//!     &StorageConfig::default()
//!         .disk("uploads", DiskConfig::local(dir.path()).public_url("https://cdn.example.com"))
//!         .default_disk("uploads"),
//! )?;
//!
//! storage.put("avatars/42.png", vec![0x89, b'P', b'N', b'G']).await?;
//! assert!(storage.exists("avatars/42.png").await?);
//! assert_eq!(storage.size("avatars/42.png").await?, 4);
//! assert_eq!(storage.url("avatars/42.png")?, "https://cdn.example.com/avatars/42.png");
//!
//! // One level of a listing: files and "directories".
//! let listing = storage.list("").await?;
//! assert_eq!(listing.directories, ["avatars"]);
//!
//! // An expiring link, served by the signed-URL route of `storage.routes()`.
//! let url = storage.temporary_url("avatars/42.png", Duration::from_secs(300)).await?;
//! assert!(url.starts_with("/storage/uploads/avatars/42.png?expires="));
//!
//! // Paths are validated on every disk: nothing escapes the root.
//! assert!(storage.put("../etc/passwd", "x").await.is_err());
//! storage.delete("avatars/42.png").await?;
//! # Ok(()) }
//! ```
//!
//! The guide is `docs/storage.md`: S3 and S3-compatible servers, presigned uploads from a
//! browser, streaming a large download through axum.

mod config;
mod disk;
mod error;
#[cfg(feature = "metrics")]
mod instruments;
mod observe;
mod path;
mod response;
mod routes;
#[cfg(feature = "s3")]
mod s3;
mod signer;
#[allow(clippy::module_inception)]
mod storage;

pub use config::{DiskConfig, S3Config, StorageConfig};
pub use disk::{ByteStream, Disk, Driver, Listing, Metadata, PresignedRequest, WriteOptions};
pub use error::{Operation, StorageError};
#[cfg(feature = "metrics")]
pub(crate) use instruments::observer as instruments;
pub use storage::Storage;

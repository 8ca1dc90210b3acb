//! [`Storage`]: the named disks and the signed-URL route.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use object_store::ObjectStore;

use super::config::{DiskConfig, StorageConfig};
use super::disk::{Disk, Driver, Inner, Streaming};
use super::error::StorageError;
use super::observe::Observer;
use super::routes;
use super::signer::UrlSigner;
use crate::error::ConfigError;

/// The disks of the app (Laravel's `Storage` facade). Cheap to clone (one `Arc`); it
/// dereferences to the default disk, so `storage.put(…)` writes there and
/// `storage.disk("s3")?.put(…)` elsewhere.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<StorageInner>,
}

struct StorageInner {
    disks: BTreeMap<String, Disk>,
    default: String,
    signer: Arc<UrlSigner>,
    route: String,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("default", &self.inner.default)
            .field("disks", &self.inner.disks.values().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Builds every disk of `config`. The local disks' roots are created when missing; S3
    /// clients are configured but nothing is sent yet. Errors name the setting.
    pub fn new(config: &StorageConfig) -> Result<Self, ConfigError> {
        Self::with_observer(config, None)
    }

    /// One in-memory disk named `memory`, the default — for tests (Laravel's `Storage::fake`).
    pub fn memory() -> Self {
        let config = StorageConfig::default();
        let signer = Arc::new(UrlSigner::new(random_key(), config.route.clone()));
        let store = Arc::new(object_store::memory::InMemory::new());
        let disk = disk(("memory", Driver::Memory, store), None, Some(&signer), None);
        Self {
            inner: Arc::new(StorageInner {
                disks: BTreeMap::from([("memory".to_owned(), disk)]),
                default: "memory".to_owned(),
                signer,
                route: config.route,
            }),
        }
    }

    pub(crate) fn with_observer(
        config: &StorageConfig,
        observer: Option<Observer>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let key = match &config.signing_key {
            Some(key) => key.as_bytes().to_vec(),
            None => random_key(),
        };
        let base = format!(
            "{}{}",
            config.app_url.as_deref().unwrap_or_default(),
            config.route
        );
        let signer = Arc::new(UrlSigner::new(key, base));
        let mut disks = BTreeMap::new();
        for (name, disk_config) in config.resolved_disks() {
            // Built-in disks other than the default are only built when asked for by name in
            // `disks`, so a default `Storage` creates no directory it does not use.
            let builtin = !config.disks.contains_key(&name);
            if builtin && name != config.default_disk && name != "memory" {
                continue;
            }
            // Errors about the built-in local disk name the setting users write.
            let root_setting = if builtin {
                "storage.root".to_owned()
            } else {
                format!("storage.disks.{name}.root")
            };
            let disk = build_disk(
                &name,
                &disk_config,
                &root_setting,
                &signer,
                observer.clone(),
            )?;
            disks.insert(name, disk);
        }
        Ok(Self {
            inner: Arc::new(StorageInner {
                disks,
                default: config.default_disk.clone(),
                signer,
                route: config.route.clone(),
            }),
        })
    }

    /// The disk `name`, or [`StorageError::UnknownDisk`].
    pub fn disk(&self, name: &str) -> Result<&Disk, StorageError> {
        self.inner
            .disks
            .get(name)
            .ok_or_else(|| StorageError::UnknownDisk(name.to_owned()))
    }

    /// The default disk.
    pub fn default_disk(&self) -> &Disk {
        // `validate` guarantees the default disk exists and `with_observer` always builds it.
        &self.inner.disks[&self.inner.default]
    }

    /// The names of the disks.
    pub fn disk_names(&self) -> impl Iterator<Item = &str> {
        self.inner.disks.keys().map(String::as_str)
    }

    /// The signed-URL route (`/storage/{disk}/{*path}`, `GET` and `PUT`) that serves the local
    /// and memory disks' [temporary URLs](Disk::temporary_url). Already part of
    /// [`ProductionLayer::routes`](crate::ProductionLayer::routes) when storage is configured.
    pub fn routes<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        routes::routes(&self.inner.route, self.clone())
    }

    pub(crate) fn url_signer(&self) -> &UrlSigner {
        &self.inner.signer
    }
}

impl Deref for Storage {
    type Target = Disk;

    fn deref(&self) -> &Disk {
        self.default_disk()
    }
}

fn build_disk(
    name: &str,
    config: &DiskConfig,
    setting: &str,
    signer: &Arc<UrlSigner>,
    observer: Option<Observer>,
) -> Result<Disk, ConfigError> {
    let public_url = config.public_url_ref().map(str::to_owned);
    let store: Arc<dyn ObjectStore> = match config {
        DiskConfig::Local { root, .. } => {
            let shown = root.display().to_string();
            std::fs::create_dir_all(root).map_err(|e| {
                ConfigError::new(setting, &shown, format!("cannot create the directory: {e}"))
            })?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(root)
                .map_err(|e| ConfigError::new(setting, &shown, e.to_string()))?;
            return Ok(disk(
                (name, Driver::Local, Arc::new(store)),
                public_url,
                Some(signer),
                observer,
            ));
        }
        DiskConfig::Memory { .. } => Arc::new(object_store::memory::InMemory::new()),
        #[cfg(feature = "s3")]
        DiskConfig::S3(s3) => {
            let client = super::s3::build(name, s3)?;
            let mut disk = disk(
                (name, Driver::S3, client.clone()),
                public_url,
                None,
                observer,
            );
            disk.set_presigner(client);
            return Ok(disk);
        }
        #[cfg(not(feature = "s3"))]
        DiskConfig::S3(_) => return Err(super::config::s3_needs_the_feature(name)),
    };
    Ok(disk(
        (name, Driver::Memory, store),
        public_url,
        Some(signer),
        observer,
    ))
}

fn disk(
    (name, driver, store): (&str, Driver, Arc<dyn ObjectStore>),
    public_url: Option<String>,
    signer: Option<&Arc<UrlSigner>>,
    observer: Option<Observer>,
) -> Disk {
    Disk::from_inner(Inner {
        name: name.to_owned(),
        driver,
        store,
        #[cfg(feature = "s3")]
        presigner: None,
        public_url,
        local_urls: signer.cloned(),
        observer,
        streaming: Streaming::default(),
    })
}

/// 32 random bytes from two v4 UUIDs (122 random bits each; uuid's `fast-rng`).
fn random_key() -> Vec<u8> {
    let mut key = uuid::Uuid::new_v4().as_bytes().to_vec();
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key
}

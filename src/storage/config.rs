//! [`StorageConfig`]: the disks, from code, a file or the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::env::Setting;
use crate::error::ConfigError;

/// One disk's backend and settings. In a file: `{ "driver": "local", "root": "/var/app" }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "lowercase")]
#[non_exhaustive]
pub enum DiskConfig {
    /// A directory on the local filesystem (created when missing).
    Local {
        /// The directory that holds the files; nothing is ever written outside it.
        root: PathBuf,
        /// Base URL the files are publicly served under (e.g. by a `ServeDir` route or a CDN).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_url: Option<String>,
    },
    /// In this process's memory: for tests and development; lost on restart.
    Memory {
        /// Base URL for [`Disk::url`](super::Disk::url), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_url: Option<String>,
    },
    /// S3 or an S3-compatible service (MinIO, R2 …); needs the `s3` feature.
    S3(S3Config),
}

impl DiskConfig {
    /// A local disk under `root`.
    pub fn local(root: impl Into<PathBuf>) -> Self {
        Self::Local {
            root: root.into(),
            public_url: None,
        }
    }

    /// An in-memory disk.
    pub fn memory() -> Self {
        Self::Memory { public_url: None }
    }

    /// Sets the public base URL (`https://cdn.example.com/uploads`).
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        let url = Some(url.into());
        match &mut self {
            Self::Local { public_url, .. } | Self::Memory { public_url } => *public_url = url,
            Self::S3(s3) => s3.public_url = url,
        }
        self
    }

    pub(crate) fn public_url_ref(&self) -> Option<&str> {
        match self {
            Self::Local { public_url, .. } | Self::Memory { public_url } => public_url.as_deref(),
            Self::S3(s3) => s3.public_url.as_deref(),
        }
    }
}

/// S3 settings. Every unset field falls back to object_store's own environment variables
/// (`AWS_BUCKET`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` …), and then to the
/// instance's role credentials.
///
/// ```
/// use rustforge_prod::storage::{DiskConfig, S3Config};
///
/// // An S3-compatible server (MinIO, a local test server): path-style requests over HTTP.
/// let disk = DiskConfig::S3(
///     S3Config::bucket("uploads")
///         .endpoint("http://127.0.0.1:9000")
///         .region("us-east-1")
///         .credentials("minio", "minio-secret")
///         .allow_http(true)
///         .virtual_hosted_style(false),
/// );
/// # let _ = disk;
/// ```
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct S3Config {
    /// The bucket (`AWS_BUCKET`).
    pub bucket: Option<String>,
    /// The region (`AWS_REGION`, default `us-east-1`).
    pub region: Option<String>,
    /// The endpoint of an S3-compatible service (`AWS_ENDPOINT`); unset for AWS.
    pub endpoint: Option<String>,
    /// Access key id (`AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// Secret access key (`AWS_SECRET_ACCESS_KEY`); never serialized, never printed.
    #[serde(skip_serializing)]
    pub secret_access_key: Option<String>,
    /// Allow plain HTTP endpoints (`AWS_ALLOW_HTTP`).
    pub allow_http: Option<bool>,
    /// Virtual-hosted-style (`bucket.host`) rather than path-style (`host/bucket`) requests
    /// (`AWS_VIRTUAL_HOSTED_STYLE_REQUEST`); most S3-compatible servers want `false`.
    pub virtual_hosted_style: Option<bool>,
    /// Base URL the objects are publicly served under (the bucket's website or a CDN).
    pub public_url: Option<String>,
    /// Retries of a failed request (object_store's default: 10).
    pub max_retries: Option<usize>,
    /// Time after which a failing request is no longer retried (object_store's default: 3 min).
    #[serde(with = "humantime_serde")]
    pub retry_timeout: Option<std::time::Duration>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "[redacted]"),
            )
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("public_url", &self.public_url)
            .field("max_retries", &self.max_retries)
            .field("retry_timeout", &self.retry_timeout)
            .finish()
    }
}

impl S3Config {
    /// Settings for `bucket`; the rest from the environment unless set.
    pub fn bucket(bucket: impl Into<String>) -> Self {
        Self {
            bucket: Some(bucket.into()),
            ..Self::default()
        }
    }

    /// Sets the endpoint of an S3-compatible service.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets static credentials.
    pub fn credentials(mut self, key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.access_key_id = Some(key_id.into());
        self.secret_access_key = Some(secret.into());
        self
    }

    /// Allows a plain-HTTP endpoint.
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = Some(allow);
        self
    }

    /// Bounds the retries of a failed request: at most `max_retries`, none after `timeout`.
    pub fn retries(mut self, max_retries: usize, timeout: std::time::Duration) -> Self {
        self.max_retries = Some(max_retries);
        self.retry_timeout = Some(timeout);
        self
    }

    /// Chooses virtual-hosted-style (`true`) or path-style (`false`) requests.
    pub fn virtual_hosted_style(mut self, virtual_hosted: bool) -> Self {
        self.virtual_hosted_style = Some(virtual_hosted);
        self
    }
}

/// Storage settings: the disks and which one is the default.
///
/// Built-in disks: `local` (under [`root`](Self::root)) and `memory`; with the `s3` feature,
/// `s3` (configured from the `AWS_*` variables) when it is the default disk. Entries of
/// [`disks`](Self::disks) add disks or replace the built-in ones.
///
/// ```
/// use rustforge_prod::Config;
///
/// let config = Config::from_vars([
///     ("RUSTFORGE_STORAGE_DISK", "memory"),
///     ("RUSTFORGE_STORAGE_PUBLIC_URL", "https://cdn.example.com"),
/// ])?;
/// let storage = config.storage.unwrap();
/// assert_eq!(storage.default_disk, "memory");
/// # Ok::<(), rustforge_prod::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StorageConfig {
    /// The disk [`Storage`](super::Storage) dereferences to (`RUSTFORGE_STORAGE_DISK`,
    /// default `local`).
    pub default_disk: String,
    /// Root directory of the built-in `local` disk (`RUSTFORGE_STORAGE_ROOT`, default
    /// `./storage`).
    pub root: PathBuf,
    /// Public base URL of the default disk, unless its own config sets one
    /// (`RUSTFORGE_STORAGE_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// More disks by name, or replacements for the built-in ones.
    pub disks: BTreeMap<String, DiskConfig>,
    /// Key of the local disks' signed URLs (`RUSTFORGE_STORAGE_SIGNING_KEY`, at least 32
    /// bytes). Unset: a random key per process — URLs then only work on the server that made
    /// them, so set it when several servers run behind a load balancer. Never serialized.
    #[serde(skip_serializing)]
    pub signing_key: Option<String>,
    /// Path prefix of the signed-URL route (default `/storage`).
    pub route: String,
    /// Absolute base the signed URLs start with (`RUSTFORGE_APP_URL`, e.g.
    /// `https://app.example.com`); unset: URLs are relative (`/storage/…`).
    pub app_url: Option<String>,
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig")
            .field("default_disk", &self.default_disk)
            .field("root", &self.root)
            .field("public_url", &self.public_url)
            .field("disks", &self.disks)
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "[redacted]"),
            )
            .field("route", &self.route)
            .field("app_url", &self.app_url)
            .finish()
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            default_disk: "local".into(),
            root: PathBuf::from("./storage"),
            public_url: None,
            disks: BTreeMap::new(),
            signing_key: None,
            route: "/storage".into(),
            app_url: None,
        }
    }
}

impl StorageConfig {
    /// Adds (or replaces) the disk `name`.
    pub fn disk(mut self, name: impl Into<String>, disk: DiskConfig) -> Self {
        self.disks.insert(name.into(), disk);
        self
    }

    /// Makes `name` the default disk.
    pub fn default_disk(mut self, name: impl Into<String>) -> Self {
        self.default_disk = name.into();
        self
    }

    /// Sets the signed-URL key (at least 32 bytes).
    pub fn signing_key(mut self, key: impl Into<String>) -> Self {
        self.signing_key = Some(key.into());
        self
    }

    /// Every disk that will be built, by name: the built-in ones, then [`disks`](Self::disks).
    pub fn resolved_disks(&self) -> BTreeMap<String, DiskConfig> {
        let mut disks = BTreeMap::new();
        disks.insert("local".to_owned(), DiskConfig::local(self.root.clone()));
        disks.insert("memory".to_owned(), DiskConfig::memory());
        if self.default_disk == "s3" {
            disks.insert("s3".to_owned(), DiskConfig::S3(S3Config::default()));
        }
        disks.extend(self.disks.clone());
        if let (Some(url), Some(disk)) = (&self.public_url, disks.get_mut(&self.default_disk))
            && disk.public_url_ref().is_none()
        {
            *disk = disk.clone().public_url(url.clone());
        }
        disks
    }

    /// Checks names, URLs, the key and the route.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let disks = self.resolved_disks();
        if !disks.contains_key(&self.default_disk) {
            let names: Vec<_> = disks.keys().map(String::as_str).collect();
            return Err(ConfigError::new(
                "storage.default_disk",
                &self.default_disk,
                format!("no such disk (configured: {})", names.join(", ")),
            ));
        }
        for (name, disk) in &disks {
            if name.is_empty() || name.contains(['/', '\\', '?', '#', '%']) {
                return Err(ConfigError::new(
                    "storage.disks",
                    name,
                    "a disk name must be non-empty, without '/', '\\', '?', '#' or '%'",
                ));
            }
            if let Some(url) = disk.public_url_ref() {
                check_url(
                    if name == &self.default_disk && self.public_url.is_some() {
                        "storage.public_url"
                    } else {
                        "storage.disks"
                    },
                    url,
                )?;
            }
            match disk {
                DiskConfig::Local { root, .. } if root.as_os_str().is_empty() => {
                    return Err(ConfigError::new("storage.root", "", "the root is empty"));
                }
                #[cfg(not(feature = "s3"))]
                DiskConfig::S3(_) => return Err(s3_needs_the_feature(name)),
                _ => {}
            }
        }
        if let Some(key) = &self.signing_key
            && key.len() < 32
        {
            return Err(ConfigError::new(
                "storage.signing_key",
                "[redacted]",
                "the signing key must be at least 32 bytes",
            ));
        }
        if !self.route.starts_with('/')
            || self.route.len() < 2
            || self.route.ends_with('/')
            || self.route.contains(['{', '}', '*'])
        {
            return Err(ConfigError::new(
                "storage.route",
                &self.route,
                "expected a path like /storage (no trailing '/', no '{', '}' or '*')",
            ));
        }
        if let Some(url) = &self.app_url {
            check_url("storage.app_url", url)?;
        }
        Ok(())
    }
    /// The environment variables of the storage module; setting any of the `RUSTFORGE_*` ones
    /// turns storage on.
    pub(crate) const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "RUSTFORGE_STORAGE_DISK",
            "storage.default_disk",
            "`local`",
            "default storage disk: `local`, `memory`, `s3` or a configured name",
            |c, _, v| {
                c.default_disk = v.trim().to_owned();
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_STORAGE_ROOT",
            "storage.root",
            "`./storage`",
            "directory of the `local` disk",
            |c, _, v| {
                c.root = PathBuf::from(v.trim());
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_STORAGE_PUBLIC_URL",
            "storage.public_url",
            "unset",
            "public base URL of the default disk",
            |c, var, v| {
                check_url(var, v.trim())?;
                c.public_url = Some(v.trim().to_owned());
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_STORAGE_SIGNING_KEY",
            "storage.signing_key",
            "random per process",
            "key of local/memory signed URLs (≥ 32 bytes, the same on every server)",
            |c, _, v| {
                c.signing_key = Some(v.trim().to_owned());
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_APP_URL",
            "storage.app_url",
            "unset (relative URLs)",
            "absolute base of those signed URLs",
            |c, var, v| {
                check_url(var, v.trim())?;
                c.app_url = Some(v.trim().to_owned());
                Ok(())
            },
        ),
        Setting::read_elsewhere(
            "AWS_BUCKET",
            "unset",
            "bucket of the `s3` disk (read by object_store)",
        ),
        Setting::read_elsewhere(
            "AWS_REGION",
            "unset",
            "region of the `s3` disk (read by object_store)",
        ),
        Setting::read_elsewhere(
            "AWS_ENDPOINT",
            "unset (AWS)",
            "endpoint of an S3-compatible store (read by object_store)",
        ),
        Setting::read_elsewhere(
            "AWS_ACCESS_KEY_ID",
            "unset",
            "credentials of the `s3` disk (read by object_store)",
        ),
        Setting::read_elsewhere(
            "AWS_SECRET_ACCESS_KEY",
            "unset",
            "credentials of the `s3` disk (read by object_store)",
        ),
        Setting::read_elsewhere(
            "AWS_ALLOW_HTTP",
            "`false`",
            "allow a plain-HTTP endpoint (read by object_store)",
        ),
        Setting::read_elsewhere(
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
            "`false`",
            "virtual-hosted-style URLs (read by object_store)",
        ),
    ];
}

/// An S3 disk in a build without the `s3` feature.
#[cfg(not(feature = "s3"))]
pub(crate) fn s3_needs_the_feature(disk: &str) -> ConfigError {
    ConfigError::new(
        "storage.disks",
        disk,
        "S3 disks need the `s3` feature of rustforge-prod",
    )
}

fn check_url(setting: &str, url: &str) -> Result<(), ConfigError> {
    let ok = (url.starts_with("https://") || url.starts_with("http://") || url.starts_with('/'))
        && !url.ends_with('/')
        && !url.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            setting,
            url,
            "expected an http(s) URL or an absolute path, without a trailing '/'",
        ))
    }
}

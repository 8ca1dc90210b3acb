//! [`Disk`]: one named store and every operation of the facade.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
};
use tokio::io::AsyncRead;

use super::error::{Operation, StorageError};
use super::observe::{Direction, Observer, Outcome};
use super::path::{parse, parse_prefix};
use super::signer::UrlSigner;

/// A stream of an object's bytes, as [`Disk::read_stream`] returns it.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>;

/// Which backend a disk uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Driver {
    /// A directory on the local filesystem.
    Local,
    /// In this process's memory (tests, development).
    Memory,
    /// S3 or an S3-compatible service (feature `s3`).
    S3,
}

/// Options of a write: content type, cache control, and whether it may overwrite.
///
/// ```
/// use rustforge_prod::storage::WriteOptions;
///
/// let options = WriteOptions::new()
///     .content_type("image/png")
///     .cache_control("public, max-age=31536000, immutable")
///     .create_new();
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    create_new: bool,
}

impl WriteOptions {
    /// Defaults: the content type guessed from the extension, overwrite allowed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the `Content-Type` stored with the object (S3, memory). The local disk derives it
    /// from the extension when serving.
    pub fn content_type(mut self, value: impl Into<String>) -> Self {
        self.content_type = Some(value.into());
        self
    }

    /// Sets the `Cache-Control` stored with the object (S3, memory; the local disk keeps no
    /// metadata and ignores it).
    pub fn cache_control(mut self, value: impl Into<String>) -> Self {
        self.cache_control = Some(value.into());
        self
    }

    /// Sets the `Content-Disposition` stored with the object (S3, memory).
    pub fn content_disposition(mut self, value: impl Into<String>) -> Self {
        self.content_disposition = Some(value.into());
        self
    }

    /// Fails with [`StorageError::AlreadyExists`] when an object is already at the path.
    /// Atomic for single writes; a streaming write above the multipart threshold checks before
    /// it uploads (S3 offers no conditional multipart completion through object_store).
    pub fn create_new(mut self) -> Self {
        self.create_new = true;
        self
    }
}

/// What [`Disk::metadata`] and the listings report about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metadata {
    /// The object's path on its disk.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: SystemTime,
    /// The backend's entity tag, when it has one.
    pub e_tag: Option<String>,
    /// The content type: stored with the object (S3, memory) or guessed from the extension
    /// (local). `None` in listings.
    pub content_type: Option<String>,
}

impl Metadata {
    fn from_meta(meta: ObjectMeta, content_type: Option<String>) -> Self {
        Self {
            path: meta.location.to_string(),
            size: meta.size,
            last_modified: meta.last_modified.into(),
            e_tag: meta.e_tag,
            content_type,
        }
    }
}

/// One level of a listing: the files directly under the prefix and the "directories" (common
/// prefixes, each without a trailing `/`), both sorted by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listing {
    /// Objects directly under the prefix.
    pub files: Vec<Metadata>,
    /// Prefixes one level down (`photos/2026`).
    pub directories: Vec<String>,
}

/// A presigned request: what a browser or another service sends to upload without credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresignedRequest {
    /// `PUT`.
    pub method: http::Method,
    /// The signed URL.
    pub url: String,
    /// Headers the request must carry (they are part of the signature where the backend
    /// supports it).
    pub headers: Vec<(String, String)>,
}

/// What [`Disk::open`] learned about the object besides its bytes.
pub(crate) struct Opened {
    pub meta: ObjectMeta,
    pub range: std::ops::Range<u64>,
    pub attributes: Attributes,
}

/// How streaming writes switch to multipart uploads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Streaming {
    /// Streams up to this size are sent as one put.
    pub threshold: usize,
    /// Size of each uploaded part above it.
    pub part_size: usize,
    /// Parts in flight at once.
    pub concurrency: usize,
}

impl Default for Streaming {
    fn default() -> Self {
        Self {
            threshold: 10 << 20,
            part_size: 5 << 20,
            concurrency: 4,
        }
    }
}

/// One named disk. Cheap to clone (one `Arc`); get it from
/// [`Storage::disk`](super::Storage::disk).
///
/// Every operation validates its path first (see [`StorageError::InvalidPath`]) and reports
/// failures with the disk, operation and path.
#[derive(Clone)]
pub struct Disk {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub name: String,
    pub driver: Driver,
    pub store: Arc<dyn ObjectStore>,
    #[cfg(feature = "s3")]
    pub presigner: Option<Arc<dyn object_store::signer::Signer>>,
    pub public_url: Option<String>,
    pub local_urls: Option<Arc<UrlSigner>>,
    pub observer: Option<Observer>,
    pub streaming: Streaming,
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disk")
            .field("name", &self.inner.name)
            .field("driver", &self.inner.driver)
            .field("public_url", &self.inner.public_url)
            .finish_non_exhaustive()
    }
}

impl Disk {
    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Gives an S3 disk its presigner (the same client as its store). Only while the disk is
    /// being built, before it is shared.
    #[cfg(feature = "s3")]
    pub(crate) fn set_presigner(&mut self, presigner: Arc<dyn object_store::signer::Signer>) {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.presigner = Some(presigner);
        }
    }

    /// The disk's name (`"local"`, `"s3"` …).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The backend.
    pub fn driver(&self) -> Driver {
        self.inner.driver
    }

    /// Writes `contents` to `path`, replacing what was there; the content type is guessed from
    /// the extension.
    pub async fn put(&self, path: &str, contents: impl Into<Bytes>) -> Result<(), StorageError> {
        self.put_with(path, contents, WriteOptions::default()).await
    }

    /// Writes `contents` with [`WriteOptions`].
    pub async fn put_with(
        &self,
        path: &str,
        contents: impl Into<Bytes>,
        options: WriteOptions,
    ) -> Result<(), StorageError> {
        let location = self.path(path)?;
        let contents: Bytes = contents.into();
        let len = contents.len() as u64;
        let opts = self.put_options(path, &options);
        self.run(Operation::Put, path, async {
            self.inner
                .store
                .put_opts(&location, PutPayload::from(contents), opts)
                .await
        })
        .await?;
        self.count(Direction::Written, len);
        Ok(())
    }

    /// Reads the whole object.
    pub async fn get(&self, path: &str) -> Result<Bytes, StorageError> {
        let location = self.path(path)?;
        let bytes = self
            .run(Operation::Get, path, async {
                self.inner.store.get(&location).await?.bytes().await
            })
            .await?;
        self.count(Direction::Read, bytes.len() as u64);
        Ok(bytes)
    }

    /// Reads the object and deserializes it as JSON (Laravel's `Storage::json`).
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, StorageError> {
        let bytes = self.get(path).await?;
        serde_json::from_slice(&bytes).map_err(|e| self.error(Operation::Get, path, e))
    }

    /// Reads the bytes `range` (end exclusive) of the object. A range past the end is cut at the
    /// end; an empty range or one starting past the end is an error.
    pub async fn get_range(
        &self,
        path: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, StorageError> {
        let location = self.path(path)?;
        if range.start >= range.end {
            return Err(self.error(Operation::Get, path, "the range is empty"));
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let bytes = self
            .run(Operation::Get, path, async {
                self.inner
                    .store
                    .get_opts(&location, options)
                    .await?
                    .bytes()
                    .await
            })
            .await?;
        self.count(Direction::Read, bytes.len() as u64);
        Ok(bytes)
    }

    /// Streams the object's bytes without holding the object in memory.
    pub async fn read_stream(&self, path: &str) -> Result<ByteStream, StorageError> {
        let (_, stream) = self.open(path, GetOptions::default()).await?;
        Ok(stream)
    }

    /// Opens the object for streaming: its metadata, attributes and range, and the byte stream.
    pub(crate) async fn open(
        &self,
        path: &str,
        options: GetOptions,
    ) -> Result<(Opened, ByteStream), StorageError> {
        let location = self.path(path)?;
        let result = self
            .run(Operation::Get, path, async {
                self.inner.store.get_opts(&location, options).await
            })
            .await?;
        let object_store::GetResult {
            payload,
            meta,
            range,
            attributes,
            ..
        } = result;
        let (disk, owned_path) = (self.clone(), path.to_owned());
        let chunks = match payload {
            object_store::GetResultPayload::File(file, _) => file_stream(file, range.clone()),
            object_store::GetResultPayload::Stream(stream) => stream,
        };
        let stream = chunks.map(move |chunk| match chunk {
            Ok(bytes) => {
                disk.count(Direction::Read, bytes.len() as u64);
                Ok(bytes)
            }
            Err(err) => Err(disk.store_error(Operation::Get, &owned_path, err)),
        });
        let opened = Opened {
            meta,
            range,
            attributes,
        };
        Ok((opened, Box::pin(stream)))
    }

    /// Whether an object exists at `path`.
    pub async fn exists(&self, path: &str) -> Result<bool, StorageError> {
        match self.head(path).await {
            Ok(_) => Ok(true),
            Err(StorageError::NotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Whether the backend answers: one metadata request for `.rustforge-health`, a path that
    /// need not exist ("not found" is an answer, and shows the credentials work). Nothing is
    /// written. Storage's readiness check is built on it.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.exists(".rustforge-health").await.map(drop)
    }

    /// The object's size, modification time, entity tag and content type.
    pub async fn metadata(&self, path: &str) -> Result<Metadata, StorageError> {
        let location = self.path(path)?;
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let result = self
            .run(Operation::Head, path, async {
                self.inner.store.get_opts(&location, options).await
            })
            .await?;
        let content_type = self.content_type(path, &result.attributes);
        Ok(Metadata::from_meta(result.meta, content_type))
    }

    /// The object's size in bytes.
    pub async fn size(&self, path: &str) -> Result<u64, StorageError> {
        Ok(self.head(path).await?.size)
    }

    /// When the object was last written.
    pub async fn last_modified(&self, path: &str) -> Result<SystemTime, StorageError> {
        Ok(self.head(path).await?.last_modified.into())
    }

    async fn head(&self, path: &str) -> Result<ObjectMeta, StorageError> {
        let location = self.path(path)?;
        self.run(Operation::Head, path, async {
            self.inner.store.head(&location).await
        })
        .await
    }

    /// Deletes the object. Deleting a missing object succeeds (idempotent).
    pub async fn delete(&self, path: &str) -> Result<(), StorageError> {
        let location = self.path(path)?;
        match self
            .run(Operation::Delete, path, async {
                self.inner.store.delete(&location).await
            })
            .await
        {
            Ok(()) | Err(StorageError::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Deletes every object under `prefix` (Laravel's `deleteDirectory`) and returns how many
    /// were deleted. The empty prefix is refused: deleting a whole disk takes an explicit loop.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        let Some(location) = parse_prefix(&self.inner.name, prefix)? else {
            return Err(StorageError::InvalidPath {
                disk: self.inner.name.clone(),
                path: prefix.to_owned(),
                reason: "refusing to delete the whole disk (empty prefix)",
            });
        };
        let store = &self.inner.store;
        self.run(Operation::Delete, prefix, async {
            let locations = store.list(Some(&location)).map_ok(|meta| meta.location);
            let mut deleted = 0;
            let mut results = store.delete_stream(locations.boxed());
            while let Some(result) = results.next().await {
                match result {
                    Ok(_) => deleted += 1,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(err) => return Err(err),
                }
            }
            Ok(deleted)
        })
        .await
    }

    /// Copies `from` to `to`, replacing what was at `to`.
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let (source, target) = (self.path(from)?, self.path(to)?);
        self.run(Operation::Copy, from, async {
            self.inner.store.copy(&source, &target).await
        })
        .await
    }

    /// Moves `from` to `to` (Laravel's `move`), replacing what was at `to`. Atomic on the local
    /// and memory disks; on S3 a copy followed by a delete.
    #[doc(alias = "move")]
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let (source, target) = (self.path(from)?, self.path(to)?);
        self.run(Operation::Rename, from, async {
            self.inner.store.rename(&source, &target).await
        })
        .await
    }

    /// Lists one level under `prefix` (`""` for the root): the files there and the
    /// "directories" below it.
    pub async fn list(&self, prefix: &str) -> Result<Listing, StorageError> {
        let location = parse_prefix(&self.inner.name, prefix)?;
        let result = self
            .run(Operation::List, prefix, async {
                self.inner
                    .store
                    .list_with_delimiter(location.as_ref())
                    .await
            })
            .await?;
        let mut files: Vec<_> = result
            .objects
            .into_iter()
            .map(|meta| Metadata::from_meta(meta, None))
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut directories: Vec<_> = result
            .common_prefixes
            .into_iter()
            .map(|p| p.to_string())
            .collect();
        directories.sort();
        Ok(Listing { files, directories })
    }

    /// Lists every object under `prefix` (`""` for the whole disk), recursively, sorted by path.
    pub async fn list_all(&self, prefix: &str) -> Result<Vec<Metadata>, StorageError> {
        let location = parse_prefix(&self.inner.name, prefix)?;
        let mut files: Vec<_> = self
            .run(Operation::List, prefix, async {
                self.inner
                    .store
                    .list(location.as_ref())
                    .map_ok(|meta| Metadata::from_meta(meta, None))
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Writes a stream of chunks to `path` with bounded memory: up to the multipart threshold
    /// (10 MiB) it is one put, above it a multipart upload of 5 MiB parts with at most four in
    /// flight. A failed stream or upload aborts the multipart upload (nothing half-written stays
    /// visible). Returns the number of bytes written.
    pub async fn write_stream<S, E>(
        &self,
        path: &str,
        stream: S,
        options: WriteOptions,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: fmt::Display,
    {
        let location = self.path(path)?;
        let started = Instant::now();
        let result = self
            .write_stream_inner(&location, path, stream, options)
            .await;
        self.observe(Operation::Put, started, result.as_ref().err());
        let written = result?;
        Ok(written)
    }

    /// Like [`write_stream`](Self::write_stream), from any `AsyncRead` (a file, a request body
    /// adapter, a decompressor …).
    pub async fn write_reader<R>(
        &self,
        path: &str,
        reader: R,
        options: WriteOptions,
    ) -> Result<u64, StorageError>
    where
        R: AsyncRead + Send,
    {
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 << 10);
        self.write_stream(path, stream, options).await
    }

    async fn write_stream_inner<S, E>(
        &self,
        location: &Path,
        path: &str,
        stream: S,
        options: WriteOptions,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: fmt::Display,
    {
        let streaming = self.inner.streaming;
        let mut stream = std::pin::pin!(stream);
        // Collect up to the threshold: small bodies become one put.
        let mut head = Vec::new();
        let mut buffered = 0usize;
        let mut ended = true;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.error(Operation::Put, path, e))?;
            buffered += chunk.len();
            head.push(chunk);
            if buffered > streaming.threshold {
                ended = false;
                break;
            }
        }
        if ended {
            let opts = self.put_options(path, &options);
            let payload: PutPayload = head.into_iter().collect();
            self.inner
                .store
                .put_opts(location, payload, opts)
                .await
                .map_err(|e| self.store_error(Operation::Put, path, e))?;
            self.count(Direction::Written, buffered as u64);
            return Ok(buffered as u64);
        }
        if options.create_new && self.exists(path).await? {
            return Err(StorageError::AlreadyExists {
                disk: self.inner.name.clone(),
                operation: Operation::Put,
                path: path.to_owned(),
            });
        }
        let opts = PutMultipartOptions {
            attributes: self.attributes(path, &options),
            ..PutMultipartOptions::default()
        };
        let upload = self
            .inner
            .store
            .put_multipart_opts(location, opts)
            .await
            .map_err(|e| self.store_error(Operation::Put, path, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, streaming.part_size);
        let mut written = 0u64;
        let mut pending = head.into_iter();
        let outcome: Result<(), StorageError> = async {
            loop {
                let chunk = match pending.next() {
                    Some(chunk) => chunk,
                    None => match stream.next().await {
                        Some(chunk) => chunk.map_err(|e| self.error(Operation::Put, path, e))?,
                        None => return Ok(()),
                    },
                };
                writer
                    .wait_for_capacity(streaming.concurrency)
                    .await
                    .map_err(|e| self.store_error(Operation::Put, path, e))?;
                written += chunk.len() as u64;
                self.count(Direction::Written, chunk.len() as u64);
                writer.put(chunk);
            }
        }
        .await;
        match outcome {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(|e| self.store_error(Operation::Put, path, e))?;
                Ok(written)
            }
            Err(err) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(disk = %self.inner.name, path, error = %abort,
                        "could not abort a failed multipart upload");
                }
                Err(err)
            }
        }
    }

    /// The public URL of `path`: the disk's public base URL and the percent-encoded path.
    /// [`StorageError::Unsupported`] when the disk has no public URL.
    pub fn url(&self, path: &str) -> Result<String, StorageError> {
        self.path(path)?;
        match &self.inner.public_url {
            Some(base) => Ok(format!("{base}/{}", encode_path(path))),
            None => Err(self.unsupported(
                Operation::Sign,
                path,
                "the disk has no public URL (set its public_url)",
            )),
        }
    }

    /// A URL that lets anyone `GET` the object until `expires_in` has passed: S3's presigned
    /// URL, or on the local and memory disks a URL of the signed-URL route of
    /// [`Storage::routes`](super::Storage::routes), HMAC-signed with the storage signing key.
    pub async fn temporary_url(
        &self,
        path: &str,
        expires_in: Duration,
    ) -> Result<String, StorageError> {
        self.presign(http::Method::GET, path, expires_in, None)
            .await
            .map(|request| request.url)
    }

    /// A presigned `PUT` that uploads to `path` until `expires_in` has passed, with the headers
    /// to send. On S3 the content type guessed from the extension is part of the signature.
    pub async fn temporary_upload_url(
        &self,
        path: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        let content_type = mime_guess::from_path(path).first_raw();
        self.presign(http::Method::PUT, path, expires_in, content_type)
            .await
    }

    async fn presign(
        &self,
        method: http::Method,
        path: &str,
        expires_in: Duration,
        content_type: Option<&str>,
    ) -> Result<PresignedRequest, StorageError> {
        let location = self.path(path)?;
        if expires_in < Duration::from_secs(1) || expires_in > Duration::from_secs(7 * 86_400) {
            return Err(self.error(
                Operation::Sign,
                path,
                "expires_in must be between 1 s and 7 days",
            ));
        }
        let headers: Vec<(String, String)> = content_type
            .map(|ct| vec![("content-type".to_owned(), ct.to_owned())])
            .unwrap_or_default();
        #[cfg(feature = "s3")]
        if let Some(presigner) = &self.inner.presigner {
            let mut options = object_store::signer::SignedUrlOptions::new();
            if let Some(ct) = content_type.and_then(|ct| http::HeaderValue::from_str(ct).ok()) {
                options = options.with_signed_header(http::header::CONTENT_TYPE, ct);
            }
            let url = self
                .run(Operation::Sign, path, async {
                    presigner
                        .signed_url_opts(method.clone(), &location, expires_in, &options)
                        .await
                })
                .await?;
            return Ok(PresignedRequest {
                method,
                url: url.to_string(),
                headers,
            });
        }
        let _ = location;
        match &self.inner.local_urls {
            Some(signer) => Ok(PresignedRequest {
                url: signer.url(&method, &self.inner.name, path, expires_in),
                method,
                headers,
            }),
            None => Err(self.unsupported(
                Operation::Sign,
                path,
                "temporary URLs need the storage routes (a disk built by Storage)",
            )),
        }
    }

    pub(crate) fn path(&self, raw: &str) -> Result<Path, StorageError> {
        parse(&self.inner.name, raw)
    }

    fn put_options(&self, path: &str, options: &WriteOptions) -> PutOptions {
        PutOptions {
            mode: if options.create_new {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
            attributes: self.attributes(path, options),
            ..PutOptions::default()
        }
    }

    /// The attributes stored with an object. The local filesystem stores none (object_store
    /// refuses them there), so its content type comes from the extension when read.
    fn attributes(&self, path: &str, options: &WriteOptions) -> Attributes {
        let mut attributes = Attributes::new();
        if self.inner.driver == Driver::Local {
            return attributes;
        }
        let content_type = options
            .content_type
            .clone()
            .or_else(|| mime_guess::from_path(path).first_raw().map(str::to_owned));
        for (key, value) in [
            (Attribute::ContentType, content_type),
            (Attribute::CacheControl, options.cache_control.clone()),
            (
                Attribute::ContentDisposition,
                options.content_disposition.clone(),
            ),
        ] {
            if let Some(value) = value {
                attributes.insert(key, value.into());
            }
        }
        attributes
    }

    /// The stored content type, else the one guessed from the extension.
    pub(crate) fn content_type(&self, path: &str, attributes: &Attributes) -> Option<String> {
        attributes
            .get(&Attribute::ContentType)
            .map(|v| v.as_ref().to_owned())
            .or_else(|| mime_guess::from_path(path).first_raw().map(str::to_owned))
    }

    /// Runs one backend call: maps its error and reports it to the metrics observer.
    pub(crate) async fn run<T>(
        &self,
        operation: Operation,
        path: &str,
        call: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, StorageError> {
        let started = Instant::now();
        let result = call.await.map_err(|e| self.store_error(operation, path, e));
        self.observe(operation, started, result.as_ref().err());
        result
    }

    fn observe(&self, operation: Operation, started: Instant, error: Option<&StorageError>) {
        if let Some(observer) = &self.inner.observer {
            let outcome = match error {
                None => Outcome::Ok,
                Some(StorageError::NotFound { .. }) => Outcome::NotFound,
                Some(_) => Outcome::Error,
            };
            observer.operation(&self.inner.name, operation, outcome, started.elapsed());
        }
    }

    pub(crate) fn count(&self, direction: Direction, bytes: u64) {
        if let Some(observer) = &self.inner.observer {
            observer.bytes(&self.inner.name, direction, bytes);
        }
    }

    pub(crate) fn store_error(
        &self,
        operation: Operation,
        path: &str,
        err: object_store::Error,
    ) -> StorageError {
        StorageError::from_store(&self.inner.name, operation, path, err)
    }

    fn error(&self, operation: Operation, path: &str, message: impl fmt::Display) -> StorageError {
        StorageError::Backend {
            disk: self.inner.name.clone(),
            operation,
            path: path.to_owned(),
            message: super::error::redact(&message.to_string()),
        }
    }

    fn unsupported(&self, operation: Operation, path: &str, reason: &str) -> StorageError {
        StorageError::Unsupported {
            disk: self.inner.name.clone(),
            operation,
            path: path.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// Streams `range` of a local file in 256 KiB reads. object_store reads local files in 8 KiB
/// chunks, one blocking-pool task each; larger reads cut that overhead (measured in
/// `benches/storage.rs`).
fn file_stream(
    file: std::fs::File,
    range: std::ops::Range<u64>,
) -> futures_util::stream::BoxStream<'static, object_store::Result<Bytes>> {
    use std::io::Seek;
    use tokio::io::AsyncReadExt;

    let local_error = |source: std::io::Error| object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(source),
    };
    let mut file = file;
    if let Err(err) = file.seek(std::io::SeekFrom::Start(range.start)) {
        return futures_util::stream::once(std::future::ready(Err(local_error(err)))).boxed();
    }
    let file = tokio::fs::File::from_std(file).take(range.end - range.start);
    tokio_util::io::ReaderStream::with_capacity(file, 256 << 10)
        .map(move |chunk| chunk.map_err(local_error))
        .boxed()
}

/// Percent-encodes each segment of a validated path for a URL.
pub(crate) fn encode_path(path: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    // RFC 3986 unreserved characters stay as they are.
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    path.split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

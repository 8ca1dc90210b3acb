//! The in-process S3-protocol server: s3s + s3s-fs 0.14.x on a free loopback port. It checks
//! SigV4 signatures and presigned-URL expiry, so a broken presigner fails the tests.

use std::net::SocketAddr;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use rustforge_prod::storage::{DiskConfig, S3Config, Storage, StorageConfig};
use tokio::task::JoinHandle;

pub const ACCESS_KEY: &str = "test";
pub const SECRET_KEY: &str = "testtest-secret-never-logged";

/// A running S3 server with one bucket; stopped (connections cut, directory removed) on drop.
pub struct S3Server {
    pub addr: SocketAddr,
    pub bucket: String,
    pub root: tempfile::TempDir,
    task: JoinHandle<()>,
}

impl S3Server {
    /// Starts a server with the bucket `bucket` (a directory under a fresh temp root).
    pub async fn start(bucket: &str) -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(root.path().join(bucket)).expect("bucket dir");
        let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs");
        let service = {
            let mut builder = s3s::service::S3ServiceBuilder::new(fs);
            builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            builder.build()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            // Connections live in this set: aborting the server drops it, which aborts them,
            // so a stopped server also cuts its kept-alive connections.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                connections.spawn(async move {
                    let _ = conn.await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            bucket: bucket.to_owned(),
            root,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The S3 settings of a disk on this server (path-style, plain HTTP, static keys).
    pub fn config(&self) -> S3Config {
        S3Config::bucket(&self.bucket)
            .endpoint(self.endpoint())
            .region("us-east-1")
            .credentials(ACCESS_KEY, SECRET_KEY)
            .allow_http(true)
            .virtual_hosted_style(false)
    }

    /// The disk config of [`config`](Self::config).
    pub fn disk(&self) -> DiskConfig {
        DiskConfig::S3(self.config())
    }

    /// A `Storage` whose default disk, `s3`, is this server.
    pub fn storage(&self) -> Storage {
        Storage::new(
            &StorageConfig::default()
                .disk("s3", self.disk())
                .default_disk("s3"),
        )
        .expect("an S3 disk on the test server")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

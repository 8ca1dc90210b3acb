//! Upload and download throughput of a 200 MiB object through the storage facade against
//! calling object_store directly on the same backend: the local disk and an S3-protocol server
//! (s3s-fs) in the same process.
//!
//! ```sh
//! cargo bench --bench storage --features s3        # 4 interleaved rounds
//! ```
//!
//! Direct uploads use object_store's `WriteMultipart` with the facade's part size and
//! concurrency; direct downloads consume `get(..).into_stream()`. The order of facade and direct
//! alternates per round; the medians and their ratio are printed.

mod common;
#[path = "../tests/support/s3.rs"]
#[allow(dead_code)]
mod s3;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use common::{env, median, runtime};
use futures_util::{StreamExt, stream};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use rustforge_prod::storage::{Disk, DiskConfig, Storage, StorageConfig, WriteOptions};

const CHUNK: usize = 256 << 10;

fn chunks(size: usize) -> Vec<Bytes> {
    (0..size / CHUNK)
        .map(|i| Bytes::from(vec![(i % 251) as u8; CHUNK]))
        .collect()
}

async fn facade_upload(disk: &Disk, data: &[Bytes]) {
    let source = stream::iter(data.iter().cloned().map(Ok::<_, std::io::Error>));
    disk.write_stream("bench/object.bin", source, WriteOptions::new())
        .await
        .unwrap();
}

async fn direct_upload(store: &Arc<dyn ObjectStore>, data: &[Bytes]) {
    let upload = store
        .put_multipart(&Path::from("bench/object.bin"))
        .await
        .unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 << 20);
    for chunk in data {
        writer.wait_for_capacity(4).await.unwrap();
        writer.put(chunk.clone());
    }
    writer.finish().await.unwrap();
}

async fn facade_download(disk: &Disk) -> usize {
    let mut stream = disk.read_stream("bench/object.bin").await.unwrap();
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len();
    }
    n
}

async fn direct_download(store: &Arc<dyn ObjectStore>) -> usize {
    let mut stream = store
        .get(&Path::from("bench/object.bin"))
        .await
        .unwrap()
        .into_stream();
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len();
    }
    n
}

fn mib_per_s(bytes: usize, started: Instant) -> f64 {
    bytes as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
}

async fn compare(label: &str, disk: &Disk, store: Arc<dyn ObjectStore>, rounds: u64, size: usize) {
    let data = chunks(size);
    let (mut up_f, mut up_d, mut down_f, mut down_d) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        for facade_first in [round % 2 == 0, round % 2 != 0] {
            if facade_first {
                let t = Instant::now();
                facade_upload(disk, &data).await;
                up_f.push(mib_per_s(size, t));
                let t = Instant::now();
                assert_eq!(facade_download(disk).await, size);
                down_f.push(mib_per_s(size, t));
            } else {
                let t = Instant::now();
                direct_upload(&store, &data).await;
                up_d.push(mib_per_s(size, t));
                let t = Instant::now();
                assert_eq!(direct_download(&store).await, size);
                down_d.push(mib_per_s(size, t));
            }
        }
    }
    let (uf, ud, df, dd) = (
        median(&mut up_f),
        median(&mut up_d),
        median(&mut down_f),
        median(&mut down_d),
    );
    println!(
        "{label:<6} upload   facade {uf:>7.0} MiB/s  direct {ud:>7.0} MiB/s  ratio {:.2}",
        uf / ud
    );
    println!(
        "{label:<6} download facade {df:>7.0} MiB/s  direct {dd:>7.0} MiB/s  ratio {:.2}",
        df / dd
    );
}

fn main() {
    let rounds = env("BENCH_ROUNDS", 4);
    let size = (env("BENCH_MIB", 200) as usize) << 20;
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let local = Storage::new(
            &StorageConfig::default()
                .disk("files", DiskConfig::local(dir.path()))
                .default_disk("files"),
        )
        .unwrap();
        let direct: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        compare("local", &local, direct, rounds, size).await;

        let server = s3::S3Server::start("bench").await;
        let s3 = server.storage();
        let direct: Arc<dyn ObjectStore> = Arc::new(
            object_store::aws::AmazonS3Builder::new()
                .with_endpoint(server.endpoint())
                .with_bucket_name(&server.bucket)
                .with_region("us-east-1")
                .with_access_key_id(s3::ACCESS_KEY)
                .with_secret_access_key(s3::SECRET_KEY)
                .with_allow_http(true)
                .build()
                .unwrap(),
        );
        compare("s3", &s3, direct, rounds, size).await;
    });
}

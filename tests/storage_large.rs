//! A 200 MiB object streamed up and down through the facade on the local disk and on a real
//! S3-protocol server, with the process's peak memory measured (Linux `VmHWM`, reset through
//! `/proc/self/clear_refs` before each run) and the bytes compared by SHA-256.
//!
//! Its own test binary, with one test, so no other test's allocations share the process.

mod support;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use rustforge_prod::storage::{DiskConfig, Storage, StorageConfig, WriteOptions};
use sha2::{Digest, Sha256};
use support::s3::S3Server;

const SIZE: usize = 200 << 20;
const CHUNK: usize = 256 << 10;
const BUDGET: u64 = 64 << 20;

/// Deterministic pseudo-random chunks (xorshift), so compression or deduplication cannot help.
fn source(seed: u64) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    stream::iter(0..SIZE / CHUNK).scan(seed, |state, _| {
        let mut chunk = Vec::with_capacity(CHUNK);
        for _ in 0..CHUNK / 8 {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            chunk.extend_from_slice(&state.to_le_bytes());
        }
        std::future::ready(Some(Ok(Bytes::from(chunk))))
    })
}

fn expected_hash(seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut hash = Sha256::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    for _ in 0..SIZE / CHUNK {
        chunk.clear();
        for _ in 0..CHUNK / 8 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.extend_from_slice(&state.to_le_bytes());
        }
        hash.update(&chunk);
    }
    hash.finalize().to_vec()
}

/// `VmRSS` and `VmHWM` (peak) of this process, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak to the current RSS; returns the baseline.
fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").expect(
        "writing /proc/self/clear_refs (needed to reset the peak RSS) failed: run on Linux ≥ 4.0",
    );
    let (rss, peak) = memory();
    assert!(
        peak <= rss + (4 << 20),
        "the peak was not reset: {peak} vs {rss}"
    );
    rss
}

async fn round_trip(storage: &Storage, label: &str, seed: u64) {
    let baseline = reset_peak();
    let written = storage
        .write_stream("big/object.bin", source(seed), WriteOptions::new())
        .await
        .unwrap_or_else(|e| panic!("{label}: upload failed: {e}"));
    assert_eq!(written, SIZE as u64, "{label}");
    assert_eq!(
        storage.size("big/object.bin").await.unwrap(),
        SIZE as u64,
        "{label}"
    );
    let (_, peak_up) = memory();

    reset_peak();
    let mut hash = Sha256::new();
    let mut read = 0usize;
    let mut stream = storage.read_stream("big/object.bin").await.unwrap();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("{label}: download failed: {e}"));
        read += chunk.len();
        hash.update(&chunk);
    }
    let (_, peak_down) = memory();
    assert_eq!(read, SIZE, "{label}");
    assert_eq!(
        hash.finalize().to_vec(),
        expected_hash(seed),
        "{label}: bytes differ"
    );

    let up = peak_up.saturating_sub(baseline);
    let down = peak_down.saturating_sub(baseline);
    eprintln!(
        "{label}: peak above baseline: upload {} MiB, download {} MiB",
        up >> 20,
        down >> 20
    );
    assert!(
        up < BUDGET,
        "{label}: upload peaked {} MiB above baseline",
        up >> 20
    );
    assert!(
        down < BUDGET,
        "{label}: download peaked {} MiB above baseline",
        down >> 20
    );
    storage.delete("big/object.bin").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_200_mib_stays_within_64_mib_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let local = Storage::new(
        &StorageConfig::default()
            .disk("files", DiskConfig::local(dir.path()))
            .default_disk("files"),
    )
    .unwrap();
    round_trip(&local, "local", 0x9E37_79B9_7F4A_7C15).await;

    let server = S3Server::start("large").await;
    let s3 = server.storage();
    round_trip(&s3, "s3", 0xD1B5_4A32_D192_ED03).await;
}

//! The conformance suite of [`Disk`]: the same cases on the local, memory and S3 disks.
//!
//! ```
//! use rustforge_prod::storage::Storage;
//! use rustforge_prod::testing::storage::disk_conformance;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let storage = Storage::memory();
//! disk_conformance(storage.default_disk(), "doc").await;
//! # }
//! ```

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::storage::{Disk, StorageError, WriteOptions};

/// Runs every case against `disk`, under `prefix/` so runs can share a disk. Panics with the
/// case name on the first failure.
pub async fn disk_conformance(disk: &Disk, prefix: &str) {
    // Boxed one by one: a single future nesting every case slows rustc down badly.
    Box::pin(put_get_and_metadata(disk, prefix)).await;
    Box::pin(overwrite_and_create_new(disk, prefix)).await;
    Box::pin(ranges(disk, prefix)).await;
    Box::pin(missing_objects(disk, prefix)).await;
    Box::pin(copy_and_rename(disk, prefix)).await;
    Box::pin(listing(disk, prefix)).await;
    Box::pin(delete_prefix(disk, prefix)).await;
    Box::pin(streaming(disk, prefix)).await;
    Box::pin(failed_streams_leave_nothing(disk, prefix)).await;
    Box::pin(unusual_names(disk, prefix)).await;
    Box::pin(invalid_paths(disk)).await;
}

fn ok<T>(case: &str, result: Result<T, StorageError>) -> T {
    result.unwrap_or_else(|e| panic!("{case}: {e}"))
}

/// Bytes in, the same bytes out; size, time, content type and `exists` agree.
pub async fn put_get_and_metadata(disk: &Disk, prefix: &str) {
    let case = "put_get_and_metadata";
    let path = format!("{prefix}/hello.txt");
    ok(case, disk.put(&path, "hello world").await);
    assert_eq!(ok(case, disk.get(&path).await), "hello world", "{case}");
    assert!(ok(case, disk.exists(&path).await), "{case}: exists");
    let missing = format!("{prefix}/missing.txt");
    assert!(!ok(case, disk.exists(&missing).await), "{case}: missing");
    let meta = ok(case, disk.metadata(&path).await);
    assert_eq!(meta.path, path, "{case}");
    assert_eq!(meta.size, 11, "{case}");
    assert_eq!(meta.content_type.as_deref(), Some("text/plain"), "{case}");
    let age = SystemTime::now()
        .duration_since(meta.last_modified)
        .unwrap_or_default();
    assert!(
        age < Duration::from_secs(3600),
        "{case}: last_modified {age:?} ago"
    );
    assert_eq!(ok(case, disk.size(&path).await), 11, "{case}");
    assert_eq!(
        ok(case, disk.last_modified(&path).await),
        meta.last_modified,
        "{case}"
    );
    let json = format!("{prefix}/data.json");
    ok(case, disk.put(&json, r#"{"n":42}"#).await);
    let value: serde_json::Value = ok(case, disk.get_json(&json).await);
    assert_eq!(value["n"], 42, "{case}");
    ok(case, disk.delete(&path).await);
    ok(case, disk.delete(&json).await);
    assert!(!ok(case, disk.exists(&path).await), "{case}: deleted");
}

/// A put replaces; `create_new` refuses an existing object and creates a missing one.
pub async fn overwrite_and_create_new(disk: &Disk, prefix: &str) {
    let case = "overwrite_and_create_new";
    let path = format!("{prefix}/once.bin");
    ok(case, disk.put(&path, "first").await);
    ok(case, disk.put(&path, "second").await);
    assert_eq!(ok(case, disk.get(&path).await), "second", "{case}");
    let err = disk
        .put_with(&path, "third", WriteOptions::new().create_new())
        .await
        .expect_err("create_new over an existing object");
    assert!(
        matches!(err, StorageError::AlreadyExists { .. }),
        "{case}: {err}"
    );
    assert_eq!(ok(case, disk.get(&path).await), "second", "{case}: kept");
    let fresh = format!("{prefix}/fresh.bin");
    ok(
        case,
        disk.put_with(&fresh, "new", WriteOptions::new().create_new())
            .await,
    );
    assert_eq!(ok(case, disk.get(&fresh).await), "new", "{case}");
    for p in [&path, &fresh] {
        ok(case, disk.delete(p).await);
    }
}

/// Byte ranges: inside, cut at the end, and refused when empty or past the end.
pub async fn ranges(disk: &Disk, prefix: &str) {
    let case = "ranges";
    let path = format!("{prefix}/digits");
    ok(case, disk.put(&path, "0123456789").await);
    assert_eq!(ok(case, disk.get_range(&path, 2..5).await), "234", "{case}");
    assert_eq!(
        ok(case, disk.get_range(&path, 8..100).await),
        "89",
        "{case}"
    );
    assert!(
        disk.get_range(&path, 5..5).await.is_err(),
        "{case}: empty range"
    );
    assert!(
        disk.get_range(&path, 20..30).await.is_err(),
        "{case}: past the end"
    );
    ok(case, disk.delete(&path).await);
}

/// Reads, copies and moves of a missing object are `NotFound`; deleting it succeeds.
pub async fn missing_objects(disk: &Disk, prefix: &str) {
    let case = "missing_objects";
    let path = format!("{prefix}/nothing-here");
    let other = format!("{prefix}/elsewhere");
    let errors = [
        disk.get(&path).await.map(drop),
        disk.get_range(&path, 0..1).await.map(drop),
        disk.metadata(&path).await.map(drop),
        disk.size(&path).await.map(drop),
        disk.read_stream(&path).await.map(drop),
        disk.copy(&path, &other).await,
        disk.rename(&path, &other).await,
    ];
    for (i, result) in errors.into_iter().enumerate() {
        let err = result.expect_err("an operation on a missing object succeeded");
        assert!(err.is_not_found(), "{case} #{i}: {err}");
        assert!(
            err.to_string().contains(&path),
            "{case} #{i}: {err} names the path"
        );
    }
    ok(case, disk.delete(&path).await);
}

/// Copy keeps the source; rename removes it; both replace the target.
pub async fn copy_and_rename(disk: &Disk, prefix: &str) {
    let case = "copy_and_rename";
    let (a, b, c) = (
        format!("{prefix}/cr/a.txt"),
        format!("{prefix}/cr/b.txt"),
        format!("{prefix}/cr/deeper/c.txt"),
    );
    ok(case, disk.put(&a, "payload").await);
    ok(case, disk.put(&b, "old b").await);
    ok(case, disk.copy(&a, &b).await);
    assert_eq!(ok(case, disk.get(&a).await), "payload", "{case}");
    assert_eq!(ok(case, disk.get(&b).await), "payload", "{case}");
    ok(case, disk.rename(&b, &c).await);
    assert!(!ok(case, disk.exists(&b).await), "{case}: renamed away");
    assert_eq!(ok(case, disk.get(&c).await), "payload", "{case}");
    for p in [&a, &c] {
        ok(case, disk.delete(p).await);
    }
}

/// One level: files and directories, sorted; recursive: everything under the prefix, and
/// prefixes match whole segments (`p` is not a prefix of `p_x/…`).
pub async fn listing(disk: &Disk, prefix: &str) {
    let case = "listing";
    let root = format!("{prefix}/ls");
    let files = [
        "a.txt",
        "b.txt",
        "sub/c.txt",
        "sub/deep/d.txt",
        "sub2/e.txt",
    ];
    for f in files {
        ok(case, disk.put(&format!("{root}/{f}"), f).await);
    }
    ok(case, disk.put(&format!("{root}_x/f.txt"), "sibling").await);
    for query in [root.clone(), format!("{root}/")] {
        let listing = ok(case, disk.list(&query).await);
        let names: Vec<_> = listing.files.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            names,
            [format!("{root}/a.txt"), format!("{root}/b.txt")],
            "{case}"
        );
        assert_eq!(listing.files[0].size, 5, "{case}: size in listing");
        assert_eq!(
            listing.directories,
            [format!("{root}/sub"), format!("{root}/sub2")],
            "{case}"
        );
    }
    let all = ok(case, disk.list_all(&root).await);
    let names: Vec<_> = all.iter().map(|m| m.path.clone()).collect();
    let expected: Vec<_> = files.iter().map(|f| format!("{root}/{f}")).collect();
    assert_eq!(names, expected, "{case}: recursive");
    let empty = ok(case, disk.list(&format!("{root}/nope")).await);
    assert!(
        empty.files.is_empty() && empty.directories.is_empty(),
        "{case}"
    );
    assert!(
        ok(case, disk.list_all(&format!("{root}/nope")).await).is_empty(),
        "{case}"
    );
}

/// `delete_prefix` removes everything below and nothing beside; the empty prefix is refused.
pub async fn delete_prefix(disk: &Disk, prefix: &str) {
    let case = "delete_prefix";
    let root = format!("{prefix}/ls");
    assert_eq!(ok(case, disk.delete_prefix(&root).await), 5, "{case}");
    assert!(ok(case, disk.list_all(&root).await).is_empty(), "{case}");
    let sibling = format!("{root}_x/f.txt");
    assert!(
        ok(case, disk.exists(&sibling).await),
        "{case}: sibling kept"
    );
    ok(case, disk.delete(&sibling).await);
    let err = disk
        .delete_prefix("")
        .await
        .expect_err("deleting a whole disk");
    assert!(
        matches!(err, StorageError::InvalidPath { .. }),
        "{case}: {err}"
    );
}

fn chunks(total: usize, chunk: usize) -> Vec<Bytes> {
    (0..total.div_ceil(chunk))
        .map(|i| {
            let len = chunk.min(total - i * chunk);
            Bytes::from(
                (0..len)
                    .map(|j| ((i * chunk + j) % 251) as u8)
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

/// Streams below and above the multipart threshold round-trip through `read_stream`; so does
/// an `AsyncRead`.
pub async fn streaming(disk: &Disk, prefix: &str) {
    let case = "streaming";
    for (name, total) in [("small", 300_000), ("large", (10 << 20) + 3_000_000)] {
        let path = format!("{prefix}/stream-{name}.bin");
        let parts = chunks(total, 256 << 10);
        let expected: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
        let source = stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>));
        let written = ok(
            case,
            disk.write_stream(&path, source, WriteOptions::new()).await,
        );
        assert_eq!(written, total as u64, "{case}: {name}");
        assert_eq!(
            ok(case, disk.size(&path).await),
            total as u64,
            "{case}: {name}"
        );
        let read = ok(case, disk.read_stream(&path).await);
        let got: Vec<Bytes> = ok(case, read.try_collect().await);
        assert_eq!(got.concat(), expected, "{case}: {name} bytes");
        ok(case, disk.delete(&path).await);
    }
    let path = format!("{prefix}/reader.bin");
    let data = vec![7u8; 100_000];
    let written = ok(
        case,
        disk.write_reader(
            &path,
            std::io::Cursor::new(data.clone()),
            WriteOptions::new(),
        )
        .await,
    );
    assert_eq!(written, 100_000, "{case}");
    assert_eq!(ok(case, disk.get(&path).await), data, "{case}");
    ok(case, disk.delete(&path).await);
}

/// A source stream that fails, below or above the threshold, leaves no object behind.
pub async fn failed_streams_leave_nothing(disk: &Disk, prefix: &str) {
    let case = "failed_streams_leave_nothing";
    for (name, before_error) in [("small", 2), ("large", 60)] {
        let path = format!("{prefix}/broken-{name}.bin");
        let source = stream::iter(chunks(before_error * (256 << 10), 256 << 10))
            .map(Ok)
            .chain(stream::once(async {
                Err(std::io::Error::other("client went away"))
            }));
        let err = disk
            .write_stream(&path, source, WriteOptions::new())
            .await
            .expect_err("a failing stream was stored");
        assert!(
            err.to_string().contains("client went away"),
            "{case}: {err}"
        );
        assert!(
            !ok(case, disk.exists(&path).await),
            "{case}: {name} left an object"
        );
    }
}

/// Spaces, `%`, `#`, `+` and non-ASCII letters are ordinary characters in keys.
pub async fn unusual_names(disk: &Disk, prefix: &str) {
    let case = "unusual_names";
    let dir = format!("{prefix}/odd names");
    let names = ["50% off.txt", "a+b=c.txt", "ünï cødé.txt", "tag#1.txt"];
    for name in names {
        let path = format!("{dir}/{name}");
        ok(case, disk.put(&path, name).await);
        assert_eq!(ok(case, disk.get(&path).await), name, "{case}: {name}");
    }
    let listed: Vec<_> = ok(case, disk.list(&dir).await)
        .files
        .into_iter()
        .map(|m| m.path)
        .collect();
    let mut expected: Vec<_> = names.iter().map(|n| format!("{dir}/{n}")).collect();
    expected.sort();
    assert_eq!(listed, expected, "{case}: listed as written");
    assert_eq!(ok(case, disk.delete_prefix(&dir).await), 4, "{case}");
}

/// Every operation refuses traversal and malformed paths before touching the backend.
pub async fn invalid_paths(disk: &Disk) {
    let bad = [
        "",
        "../escape.txt",
        "a/../../escape.txt",
        "/etc/passwd",
        "a//b",
        "./a",
        "dir/",
        "a\\..\\b",
        "line\nbreak",
        "nul\0byte",
    ];
    for path in bad {
        let results = [
            disk.put(path, "x").await.err(),
            disk.get(path).await.err(),
            disk.exists(path).await.err(),
            disk.metadata(path).await.err(),
            disk.delete(path).await.err(),
            disk.copy("ok.txt", path).await.err(),
            disk.rename(path, "ok.txt").await.err(),
            disk.url(path).err(),
            disk.temporary_url(path, Duration::from_secs(60))
                .await
                .err(),
            disk.write_stream(
                path,
                stream::empty::<Result<Bytes, std::io::Error>>(),
                WriteOptions::new(),
            )
            .await
            .err(),
        ];
        for (i, err) in results.into_iter().enumerate() {
            let err = err.unwrap_or_else(|| panic!("invalid_paths: {path:?} accepted by #{i}"));
            assert!(
                matches!(err, StorageError::InvalidPath { .. }),
                "invalid_paths: {path:?} #{i}: {err}"
            );
        }
    }
}

//! Storage against a real local directory, the in-memory store and a real S3-protocol server
//! (s3s-fs, which verifies SigV4 signatures and expiry), with plain HTTP clients for the URLs.

mod support;

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use rustforge_prod::storage::{DiskConfig, Storage, StorageConfig, StorageError, WriteOptions};
use rustforge_prod::testing::storage::disk_conformance;
use rustforge_prod::{Config, ProductionLayer};
use support::http::{TestServer, client};
use support::s3::{S3Server, SECRET_KEY};

const KEY: &str = "a-signing-key-of-at-least-32-bytes!!";

fn local(root: &std::path::Path) -> Storage {
    Storage::new(
        &StorageConfig::default()
            .disk("files", DiskConfig::local(root))
            .default_disk("files")
            .signing_key(KEY),
    )
    .unwrap()
}

#[tokio::test]
async fn conformance_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    disk_conformance(&local(dir.path()), "conf").await;
}

#[tokio::test]
async fn conformance_memory_disk() {
    disk_conformance(&Storage::memory(), "conf").await;
}

#[tokio::test]
async fn conformance_s3_disk() {
    let server = S3Server::start("conformance").await;
    disk_conformance(&server.storage(), "conf").await;
}

/// Flips the last hex digit of the signature parameter `name` in `url`.
fn tamper(url: &str, name: &str) -> String {
    let start = url.find(name).unwrap_or_else(|| panic!("{name} in {url}")) + name.len() + 1;
    let end = url[start..].find('&').map_or(url.len(), |i| start + i);
    let mut bytes = url.as_bytes().to_vec();
    bytes[end - 1] = if bytes[end - 1] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn s3_presigned_urls_work_with_a_plain_client_and_refuse_tampering_and_expiry() {
    let server = S3Server::start("presign").await;
    let storage = server.storage();
    storage
        .put("docs/report.txt", "quarterly numbers")
        .await
        .unwrap();
    let http = client();

    let url = storage
        .temporary_url("docs/report.txt", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "quarterly numbers");

    let res = http
        .get(tamper(&url, "X-Amz-Signature"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("SignatureDoesNotMatch"));

    let upload = storage
        .temporary_upload_url("uploads/photo.png", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(upload.method, http::Method::PUT);
    assert_eq!(
        upload.headers,
        [("content-type".to_owned(), "image/png".to_owned())]
    );
    let mut put = http.put(&upload.url).body(vec![1u8, 2, 3, 4]);
    for (name, value) in &upload.headers {
        put = put.header(name, value);
    }
    let res = put.send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(
        storage.get("uploads/photo.png").await.unwrap(),
        vec![1u8, 2, 3, 4]
    );
    let meta = storage.metadata("uploads/photo.png").await.unwrap();
    assert_eq!(meta.content_type.as_deref(), Some("image/png"));

    // A GET URL does not authorise a PUT.
    let res = http.put(&url).body("overwritten").send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        storage.get("docs/report.txt").await.unwrap(),
        "quarterly numbers"
    );

    let short = storage
        .temporary_url("docs/report.txt", Duration::from_secs(1))
        .await
        .unwrap();
    // Past the one-second expiry by a full second: deterministic, not a race.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = http.get(&short).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("expired"));
}

#[tokio::test]
async fn local_signed_urls_are_served_by_the_route_and_refused_when_tampered_or_expired() {
    let dir = tempfile::tempdir().unwrap();
    let storage = local(dir.path());
    storage.put("reports/q3.csv", "a,b\n1,2\n").await.unwrap();
    let server = TestServer::start(storage.routes()).await;
    let http = client();

    let url = storage
        .temporary_url("reports/q3.csv", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        url.starts_with("/storage/files/reports/q3.csv?expires="),
        "{url}"
    );
    let res = http.get(server.url(&url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv");
    assert_eq!(res.text().await.unwrap(), "a,b\n1,2\n");

    let res = http
        .get(server.url(&url))
        .header("range", "bytes=4-")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 4-7/8");
    assert_eq!(res.text().await.unwrap(), "1,2\n");

    for bad in [
        tamper(&url, "signature"),
        url.replace("q3.csv", "q4.csv"),
        url.split('?').next().unwrap().to_owned(),
        url.replace("expires=", "expires=9"),
    ] {
        let res = http.get(server.url(&bad)).send().await.unwrap();
        assert_eq!(res.status(), 403, "{bad}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }

    let upload = storage
        .temporary_upload_url("incoming/data.bin", Duration::from_secs(60))
        .await
        .unwrap();
    let body = vec![9u8; 200_000];
    let res = http
        .put(server.url(&upload.url))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(storage.get("incoming/data.bin").await.unwrap(), body);
    // The download URL does not allow uploads.
    let res = http.put(server.url(&url)).body("x").send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(storage.get("reports/q3.csv").await.unwrap(), "a,b\n1,2\n");

    let short = storage
        .temporary_url("reports/q3.csv", Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = http.get(server.url(&short)).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("expired"));
}

#[tokio::test]
async fn traversal_is_refused_on_every_disk_and_nothing_lands_outside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let s3_server = S3Server::start("traversal").await;
    let storages = [local(&root), Storage::memory(), s3_server.storage()];
    let attempts = [
        "../escape.txt",
        "../../escape.txt",
        "a/../../escape.txt",
        "/tmp/escape.txt",
        "..\\escape.txt",
        "a/./../escape.txt",
    ];
    for storage in &storages {
        for path in attempts {
            let err = storage.put(path, "owned").await.unwrap_err();
            assert!(
                matches!(err, StorageError::InvalidPath { .. }),
                "{}: {path}: {err}",
                storage.name()
            );
            let source = futures_util::stream::iter([Ok::<_, std::io::Error>("x".into())]);
            let err = storage
                .write_stream(path, source, WriteOptions::new())
                .await
                .unwrap_err();
            assert!(matches!(err, StorageError::InvalidPath { .. }), "{err}");
        }
    }
    assert!(!dir.path().join("escape.txt").exists());
    assert!(!std::path::Path::new("/tmp/escape.txt").exists());
    let bucket_parent = s3_server.root.path();
    assert!(!bucket_parent.join("escape.txt").exists());

    // Through the signed-URL route: an encoded traversal never gets a valid signature, and the
    // path is validated again before any read.
    let server = TestServer::start(storages[0].routes()).await;
    let res = client()
        .put(server.url("/storage/files/..%2F..%2Fescape.txt?expires=9999999999&signature=00"))
        .body("owned")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(!dir.path().join("escape.txt").exists());
}

async fn serve_file(
    State(storage): State<Storage>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, StorageError> {
    if let Some(name) = path.strip_prefix("attachment/") {
        return storage
            .download_as(name, &headers, "Report \"Q3\".pdf")
            .await;
    }
    storage.download(&path, &headers).await
}

#[tokio::test]
async fn download_streams_with_ranges_conditional_requests_and_problem_errors() {
    let storage = Storage::memory();
    let body: Vec<u8> = (0..5000u32).map(|i| (i % 256) as u8).collect();
    storage
        .put_with(
            "media/clip.bin",
            body.clone(),
            WriteOptions::new()
                .content_type("video/mp4")
                .cache_control("public, max-age=60"),
        )
        .await
        .unwrap();
    let app = Router::new()
        .route("/files/{*path}", get(serve_file))
        .with_state(storage.clone());
    let server = TestServer::start(app).await;
    let http = client();

    let res = http
        .get(server.url("/files/media/clip.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    assert_eq!(headers["content-type"], "video/mp4");
    assert_eq!(headers["content-length"], "5000");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["cache-control"], "public, max-age=60");
    assert!(headers.contains_key("last-modified"));
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"'), "{etag}");
    assert_eq!(res.bytes().await.unwrap(), body);

    let ranged = |range: &'static str| {
        http.get(server.url("/files/media/clip.bin"))
            .header("range", range)
            .send()
    };
    let res = ranged("bytes=10-19").await.unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 10-19/5000");
    assert_eq!(res.bytes().await.unwrap(), body[10..20]);
    let res = ranged("bytes=-100").await.unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.unwrap(), body[4900..]);
    let res = ranged("bytes=6000-").await.unwrap();
    assert_eq!(res.status(), 416);
    assert_eq!(res.headers()["content-range"], "bytes */5000");

    let res = http
        .get(server.url("/files/media/clip.bin"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    let res = http
        .get(server.url("/files/attachment/media/clip.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"Report _Q3_.pdf\"; filename*=UTF-8''Report%20%22Q3%22.pdf"
    );

    let res = http
        .get(server.url("/files/nothing/here.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = http
        .get(server.url("/files/a/..%2F..%2Fb"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn public_urls_are_encoded_and_missing_ones_are_a_clear_error() {
    let storage = Storage::new(
        &StorageConfig::default()
            .disk(
                "cdn",
                DiskConfig::memory().public_url("https://cdn.example.com/assets"),
            )
            .default_disk("memory"),
    )
    .unwrap();
    let cdn = storage.disk("cdn").unwrap();
    assert_eq!(
        cdn.url("img/a b/ü.png").unwrap(),
        "https://cdn.example.com/assets/img/a%20b/%C3%BC.png"
    );
    let err = storage.url("img/a.png").unwrap_err();
    assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("public URL"), "{err}");
    let err = storage.disk("nope").unwrap_err();
    assert_eq!(err.to_string(), "no storage disk named \"nope\"");
}

#[tokio::test]
async fn a_dead_s3_server_is_a_bounded_error_without_credentials() {
    let server = S3Server::start("dead").await;
    let mut config = server.config().retries(1, Duration::from_millis(500));
    let port = support::free_port();
    config.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let storage = Storage::new(
        &StorageConfig::default()
            .disk("s3", DiskConfig::S3(config.clone()))
            .default_disk("s3"),
    )
    .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), storage.get("a.txt"))
        .await
        .expect("a dead server made get hang")
        .unwrap_err();
    assert!(matches!(err, StorageError::Backend { .. }), "{err}");
    let text = format!("{err} {err:?} {config:?}");
    assert!(!text.contains(SECRET_KEY), "{text}");
    assert!(text.contains("\"s3\"") && text.contains("a.txt"), "{text}");

    // Wrong credentials: refused by the server, reported without the secret.
    let wrong = server
        .config()
        .credentials("test", "not-the-secret-key-either");
    let storage = Storage::new(
        &StorageConfig::default()
            .disk("s3", DiskConfig::S3(wrong))
            .default_disk("s3"),
    )
    .unwrap();
    let err = storage.put("a.txt", "x").await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("not-the-secret-key-either"), "{text}");
}

#[tokio::test]
async fn production_layer_serves_storage_metrics_health_and_signed_routes() {
    let s3_server = S3Server::start("layer").await;
    let prod = ProductionLayer::builder()
        .storage(
            StorageConfig::default()
                .disk(
                    "s3",
                    DiskConfig::S3(s3_server.config().retries(0, Duration::from_millis(300))),
                )
                .default_disk("s3")
                .disk("scratch", DiskConfig::memory()),
        )
        .build()
        .await
        .unwrap();
    let storage = prod.storage().expect("storage configured").clone();
    storage.put("m/a.txt", "12345").await.unwrap();
    storage.get("m/a.txt").await.unwrap();
    assert!(
        storage
            .get("m/missing.txt")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let scratch = storage.disk("scratch").unwrap();
    scratch.put("x.txt", "abc").await.unwrap();
    let url = scratch
        .temporary_url("x.txt", Duration::from_secs(60))
        .await
        .unwrap();

    let server = TestServer::start(Router::new().merge(prod.routes()).layer(prod.layer())).await;
    let http = client();
    let res = http.get(server.url(&url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "abc");

    let metrics = prod.metrics().render();
    for line in [
        r#"rustforge_storage_operations_total{disk="s3",operation="put",outcome="ok""#,
        r#"rustforge_storage_operations_total{disk="s3",operation="get",outcome="not_found""#,
        r#"rustforge_storage_io_bytes_total{direction="written",disk="s3""#,
        r#"rustforge_storage_operation_duration_seconds_bucket{disk="s3",operation="get""#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    let written = metrics
        .lines()
        .find(|l| {
            l.starts_with(r#"rustforge_storage_io_bytes_total{direction="written",disk="s3""#)
        })
        .unwrap();
    assert!(written.ends_with(" 5"), "{written}");
    let read = metrics
        .lines()
        .find(|l| l.starts_with(r#"rustforge_storage_io_bytes_total{direction="read",disk="s3""#))
        .unwrap();
    assert!(read.ends_with(" 5"), "{read}");

    let health = prod.health().refresh().await;
    let check = health
        .checks
        .iter()
        .find(|c| c.name == "storage-s3")
        .expect("storage check");
    assert_eq!(check.result.status.as_str(), "pass", "{check:?}");
    drop(s3_server);
    let health = prod.health().refresh().await;
    let check = health
        .checks
        .iter()
        .find(|c| c.name == "storage-s3")
        .unwrap();
    assert_eq!(check.result.status.as_str(), "fail", "{check:?}");
}

#[tokio::test]
async fn configuration_from_the_environment_and_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("env-root");
    let root_str = root.to_str().unwrap();
    let prod = ProductionLayer::builder()
        .from_vars([
            ("RUSTFORGE_STORAGE_ROOT", root_str),
            ("RUSTFORGE_STORAGE_PUBLIC_URL", "https://files.example.com"),
            ("RUSTFORGE_STORAGE_SIGNING_KEY", KEY),
            ("RUSTFORGE_APP_URL", "https://app.example.com"),
        ])
        .unwrap()
        .build()
        .await
        .unwrap();
    let storage = prod.storage().unwrap();
    assert_eq!(storage.name(), "local");
    storage.put("x/y.txt", "z").await.unwrap();
    assert!(root.join("x/y.txt").exists());
    assert_eq!(
        storage.url("x/y.txt").unwrap(),
        "https://files.example.com/x/y.txt"
    );
    let url = storage
        .temporary_url("x/y.txt", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        url.starts_with("https://app.example.com/storage/local/x/y.txt?"),
        "{url}"
    );

    // No RUSTFORGE_STORAGE_* variable: no storage, and no directory created.
    let plain = ProductionLayer::builder()
        .from_vars([("RUST_LOG", "info")])
        .unwrap();
    assert!(plain.build().await.unwrap().storage().is_none());

    let cases = [
        ("RUSTFORGE_STORAGE_DISK", "tape", "no such disk"),
        ("RUSTFORGE_STORAGE_PUBLIC_URL", "ftp://x", "http(s) URL"),
        (
            "RUSTFORGE_STORAGE_SIGNING_KEY",
            "short",
            "at least 32 bytes",
        ),
        ("RUSTFORGE_APP_URL", "app.example.com", "http(s) URL"),
    ];
    for (var, value, reason) in cases {
        let err = Config::from_vars([(var, value)]).unwrap_err();
        assert_eq!(err.setting(), var, "{err}");
        assert!(err.reason().contains(reason), "{err}");
        if var.ends_with("SIGNING_KEY") {
            assert!(!err.to_string().contains(value), "{err} shows the key");
        }
    }
    // A file that is not a directory cannot be the root.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = ProductionLayer::builder()
        .from_vars([("RUSTFORGE_STORAGE_ROOT", file.to_str().unwrap())])
        .unwrap()
        .build()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("RUSTFORGE_STORAGE_ROOT") || err.to_string().contains("root"),
        "{err}"
    );

    // The same settings deserialize from a file.
    let config: Config = serde_json::from_str(
        r#"{ "storage": { "default_disk": "media",
              "disks": { "media": { "driver": "memory", "public_url": "/media" } } } }"#,
    )
    .unwrap();
    let storage = Storage::new(config.storage.as_ref().unwrap()).unwrap();
    assert_eq!(storage.url("a.png").unwrap(), "/media/a.png");
    let bad: Result<Config, _> =
        serde_json::from_str(r#"{ "storage": { "disks": { "m": { "driver": "floppy" } } } }"#);
    assert!(bad.is_err());
}

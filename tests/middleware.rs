//! Every middleware of the stack, through a real HTTP server on loopback.

mod support;

use std::io::Read;
use std::time::Duration;

use std::sync::atomic::Ordering;

use rustforge_prod::middleware::{CorsConfig, HttpConfig};
use support::apps::{assert_error_json, assert_uuid_v7, big_json, header, serve};
use support::http::{client, get, raw_request};

// ---------------------------------------------------------------- request id

#[tokio::test]
async fn request_id_is_generated_when_absent() {
    let (server, _) = serve(HttpConfig::default()).await;
    let res = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_uuid_v7(header(&res, "x-request-id").unwrap());
}

#[tokio::test]
async fn sane_request_id_is_propagated() {
    let (server, _) = serve(HttpConfig::default()).await;
    let id = "req-42_abc.DEF:1";
    let res = get(server.url("/"), &[("x-request-id", id)]).await;
    assert_eq!(header(&res, "x-request-id"), Some(id));
    let longest = "a".repeat(128);
    let res = get(server.url("/"), &[("x-request-id", &longest)]).await;
    assert_eq!(header(&res, "x-request-id"), Some(longest.as_str()));
}

#[tokio::test]
async fn insane_request_ids_are_replaced() {
    let (server, _) = serve(HttpConfig::default()).await;
    let too_long = "a".repeat(129);
    let cases: Vec<http::HeaderValue> = vec![
        http::HeaderValue::from_static("has spaces in it"),
        http::HeaderValue::from_str(&too_long).unwrap(),
        http::HeaderValue::from_bytes("café".as_bytes()).unwrap(),
        http::HeaderValue::from_static("tab\there"),
        http::HeaderValue::from_static(""),
    ];
    for bad in cases {
        let res = get(server.url("/"), &[("x-request-id", bad.clone())]).await;
        let id = header(&res, "x-request-id").unwrap();
        assert_ne!(id.as_bytes(), bad.as_bytes());
        assert_uuid_v7(id);
    }
    // Two ids: ambiguous, replaced.
    let res = get(
        server.url("/"),
        &[("x-request-id", "one"), ("x-request-id", "two")],
    )
    .await;
    assert_uuid_v7(header(&res, "x-request-id").unwrap());
}

#[tokio::test]
async fn request_id_header_name_is_configurable() {
    let mut config = HttpConfig::default();
    config.request_id.header = "x-correlation-id".into();
    let (server, _) = serve(config).await;
    let res = get(server.url("/"), &[("x-correlation-id", "corr-1")]).await;
    assert_eq!(header(&res, "x-correlation-id"), Some("corr-1"));
    assert!(header(&res, "x-request-id").is_none());
}

#[tokio::test]
async fn sensitive_headers_are_marked_for_every_layer_and_handler() {
    let (server, _) = serve(HttpConfig::default()).await;
    let res = get(
        server.url("/sensitive"),
        &[("authorization", "Bearer secret")],
    )
    .await;
    assert_eq!(res.text().await.unwrap(), "true");
}

// ---------------------------------------------------------------- CORS

const ALLOWED: &str = "http://allowed.test:8080";

fn cors_config(cors: CorsConfig) -> HttpConfig {
    let mut config = HttpConfig::default();
    config.cors = cors;
    config.timeout = Some(Duration::from_millis(200));
    config.body_limit = Some(bytesize::ByteSize::kib(1));
    config
}

#[tokio::test]
async fn cors_preflight_is_answered_without_reaching_the_app() {
    let (server, hits) = serve(cors_config(CorsConfig::origins([ALLOWED]))).await;
    let res = client()
        .request(http::Method::OPTIONS, server.url("/count"))
        .header("origin", ALLOWED)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "access-control-allow-origin"), Some(ALLOWED));
    assert!(
        header(&res, "access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert!(
        header(&res, "access-control-allow-headers")
            .unwrap()
            .contains("content-type")
    );
    assert_eq!(header(&res, "access-control-max-age"), Some("3600"));
    assert!(header(&res, "x-request-id").is_some());
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the preflight must not reach the handler"
    );
}

#[tokio::test]
async fn cors_disallowed_origin_gets_no_allow_headers() {
    let (server, _) = serve(cors_config(CorsConfig::origins([ALLOWED]))).await;
    for method in [http::Method::OPTIONS, http::Method::GET] {
        let res = client()
            .request(method, server.url("/count"))
            .header("origin", "http://evil.test")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert!(header(&res, "access-control-allow-origin").is_none());
        assert!(header(&res, "vary").unwrap().contains("origin"));
    }
}

#[tokio::test]
async fn cors_simple_request_exposes_request_id_and_rate_limit_headers() {
    let (server, _) = serve(cors_config(CorsConfig::origins([ALLOWED]))).await;
    let res = get(server.url("/"), &[("origin", ALLOWED)]).await;
    assert_eq!(header(&res, "access-control-allow-origin"), Some(ALLOWED));
    let exposed = header(&res, "access-control-expose-headers").unwrap();
    for name in [
        "x-request-id",
        "retry-after",
        "ratelimit",
        "x-ratelimit-remaining",
    ] {
        assert!(exposed.contains(name), "{name} missing from {exposed}");
    }
    assert!(header(&res, "access-control-allow-credentials").is_none());
}

#[tokio::test]
async fn cors_credentials_echo_the_exact_origin() {
    let cors = CorsConfig::origins([ALLOWED]).credentials(true);
    let (server, _) = serve(cors_config(cors)).await;
    let res = get(server.url("/"), &[("origin", ALLOWED)]).await;
    assert_eq!(header(&res, "access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(
        header(&res, "access-control-allow-credentials"),
        Some("true")
    );
}

#[tokio::test]
async fn cors_origin_regex_and_predicate() {
    let cors = CorsConfig::default()
        .allow_origin_regex(r"^https://[a-z0-9-]+\.preview\.example\.com$")
        .allow_origin_fn(|origin| origin == "https://partner.example.org");
    let (server, _) = serve(cors_config(cors)).await;
    for (origin, allowed) in [
        ("https://pr-12.preview.example.com", true),
        ("https://partner.example.org", true),
        ("https://preview.example.com.evil.test", false),
        ("http://pr-12.preview.example.com", false),
    ] {
        let res = get(server.url("/"), &[("origin", origin)]).await;
        assert_eq!(
            header(&res, "access-control-allow-origin") == Some(origin),
            allowed,
            "{origin}"
        );
    }
}

#[tokio::test]
async fn cors_headers_are_on_error_responses() {
    let (server, _) = serve(cors_config(CorsConfig::origins([ALLOWED]))).await;
    let cases = [
        (client().get(server.url("/slow")), 503),
        (client().get(server.url("/panic")), 500),
        (
            client().post(server.url("/echo")).body(vec![b'x'; 4096]),
            413,
        ),
        (client().get(server.url("/missing")), 404),
    ];
    for (request, status) in cases {
        let res = request.header("origin", ALLOWED).send().await.unwrap();
        assert_eq!(res.status(), status);
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            Some(ALLOWED),
            "on {status}"
        );
        assert!(
            header(&res, "access-control-expose-headers")
                .unwrap()
                .contains("x-request-id")
        );
    }
}

// ---------------------------------------------------------------- compression

fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .unwrap(),
        "deflate" => flate2::read::ZlibDecoder::new(body)
            .read_to_end(&mut out)
            .unwrap(),
        "br" => brotli::Decompressor::new(body, 4096)
            .read_to_end(&mut out)
            .unwrap(),
        "zstd" => zstd::stream::read::Decoder::new(body)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap(),
        other => panic!("unexpected encoding {other}"),
    };
    out
}

#[tokio::test]
async fn each_encoding_round_trips() {
    let (server, _) = serve(HttpConfig::default()).await;
    let expected = big_json();
    for encoding in ["gzip", "br", "zstd", "deflate"] {
        let res = get(server.url("/big"), &[("accept-encoding", encoding)]).await;
        assert_eq!(header(&res, "content-encoding"), Some(encoding));
        assert!(header(&res, "vary").unwrap().contains("accept-encoding"));
        let body = res.bytes().await.unwrap();
        assert!(
            body.len() < expected.len() / 3,
            "{encoding}: {} bytes",
            body.len()
        );
        assert_eq!(decode(encoding, &body), expected.as_bytes(), "{encoding}");
    }
}

#[tokio::test]
async fn encoding_follows_q_values() {
    let (server, _) = serve(HttpConfig::default()).await;
    for (accept, chosen) in [
        ("gzip;q=0.5, br;q=1.0", Some("br")),
        ("br;q=0.1, zstd;q=0.9", Some("zstd")),
        ("gzip;q=0, identity", None),
    ] {
        let res = get(server.url("/big"), &[("accept-encoding", accept)]).await;
        assert_eq!(header(&res, "content-encoding"), chosen, "{accept}");
    }
}

#[tokio::test]
async fn small_images_streams_and_archives_are_not_compressed() {
    let (server, _) = serve(HttpConfig::default()).await;
    for path in ["/", "/image", "/sse", "/zip"] {
        let res = client()
            .get(server.url(path))
            .header("accept-encoding", "gzip, br, zstd")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            header(&res, "content-encoding").is_none(),
            "{path} was compressed"
        );
    }
}

#[tokio::test]
async fn request_decompression_is_bounded_by_the_body_limit() {
    let mut config = HttpConfig::default();
    config.compression.request_decompression = true;
    config.body_limit = Some(bytesize::ByteSize::kib(64));
    let (server, _) = serve(config).await;
    let gzip = |data: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let small = vec![b'a'; 1000];
    let res = client()
        .post(server.url("/echo"))
        .header("content-encoding", "gzip")
        .body(gzip(&small))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), small);
    // 10 MiB of zeros compress to ~10 KiB: under the limit on the wire, far over it decompressed.
    let bomb = gzip(&vec![0u8; 10 << 20]);
    assert!(bomb.len() < 64 << 10);
    let res = client()
        .post(server.url("/echo"))
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
}

// ---------------------------------------------------------------- limits and safety

#[tokio::test]
async fn timeout_answers_503_json_with_request_id() {
    let (server, _) = serve(cors_config(CorsConfig::default())).await;
    let res = client().get(server.url("/slow")).send().await.unwrap();
    assert_error_json(res, 503).await;
}

#[tokio::test]
async fn timeout_status_is_configurable() {
    let mut config = cors_config(CorsConfig::default());
    config.timeout_status = 408;
    let (server, _) = serve(config).await;
    assert_error_json(client().get(server.url("/slow")).send().await.unwrap(), 408).await;
}

#[tokio::test]
async fn body_limit_answers_413_json_with_request_id() {
    let (server, _) = serve(cors_config(CorsConfig::default())).await;
    let ok = client()
        .post(server.url("/echo"))
        .body(vec![b'x'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "exactly the limit is accepted");
    let res = client()
        .post(server.url("/echo"))
        .body(vec![b'x'; 1025])
        .send()
        .await
        .unwrap();
    assert_error_json(res, 413).await;
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_rejected_too() {
    let (server, _) = serve(cors_config(CorsConfig::default())).await;
    let chunk = "x".repeat(600);
    let request = format!(
        "POST /echo HTTP/1.1\r\nhost: test\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n\
         258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let response = raw_request(server.addr, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("\"request_id\""), "{response}");
}

#[tokio::test]
async fn error_bodies_can_be_turned_off() {
    let mut config = cors_config(CorsConfig::default());
    config.error_bodies = false;
    let (server, _) = serve(config).await;
    let res = client().get(server.url("/slow")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn everything_off_is_a_plain_router() {
    let (server, _) = serve(HttpConfig::none()).await;
    let res = get(server.url("/big"), &[("accept-encoding", "gzip")]).await;
    assert!(header(&res, "content-encoding").is_none());
    assert!(header(&res, "x-request-id").is_none());
    let res = client().get(server.url("/missing")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.bytes().await.unwrap().is_empty());
}

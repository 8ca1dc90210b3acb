//! The rate-limit layer over real HTTP: headers in the draft's exact syntax, the 429 problem body,
//! `Retry-After` rounding, exempt routes, named limiters, key extraction from trusted proxies
//! only, IPv6 prefixes, and the missing-peer-address error.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use http::StatusCode;
use rustforge_prod::ProductionLayer;
use rustforge_prod::ratelimit::{
    Algorithm, ClientIp, HeaderDialect, Key, Limit, MemoryStore, RateLimitLayer, RateLimiter,
};
use support::http::{TestServer, client, get as get_with};

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "home" }))
        .route("/items/{id}", get(|| async { "item" }))
        .route("/login", post(|| async { "welcome" }))
}

async fn serve(layer: RateLimitLayer) -> TestServer {
    TestServer::start(app().layer(layer)).await
}

/// `GET url` with one header.
async fn get_h(url: String, name: &'static str, value: impl Into<String>) -> reqwest::Response {
    client()
        .get(url)
        .header(name, value.into())
        .send()
        .await
        .unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// RFC 9651 list of `"name";k=int;k=int` items, as draft-ietf-httpapi-ratelimit-headers-11 has them.
fn assert_sf_list(value: &str, params: &[&str]) {
    for item in value.split(", ") {
        let mut parts = item.split(';');
        let name = parts.next().unwrap();
        assert!(
            name.len() > 2 && name.starts_with('"') && name.ends_with('"'),
            "item name is an sf-string: {value}"
        );
        let keys: Vec<&str> = parts
            .map(|p| {
                let (k, v) = p.split_once('=').expect("key=value");
                assert!(
                    v.parse::<u64>().is_ok(),
                    "{k} is a non-negative integer: {value}"
                );
                k
            })
            .collect();
        assert_eq!(keys, params, "{value}");
    }
}

#[tokio::test]
async fn production_layer_limits_with_headers_and_a_problem_body() {
    let prod = ProductionLayer::builder()
        .from_vars([("RUSTFORGE_RATE_LIMIT", "3/min")])
        .unwrap()
        .build()
        .await
        .unwrap();
    let server = TestServer::start(app().merge(prod.routes()).layer(prod.layer())).await;
    for remaining in [2, 1, 0] {
        let res = get_with(server.url("/items/1"), &[("origin", "https://x.example")]).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            header(&res, "ratelimit-policy").as_deref(),
            Some(r#""global";q=3;w=60"#)
        );
        // GCRA: 3 per minute is one every 20 s, so the full quota is back 20 s per used unit.
        let expected_t = 20 * (3 - remaining);
        assert_eq!(
            header(&res, "ratelimit").unwrap(),
            format!(r#""global";r={remaining};t={expected_t}"#)
        );
    }
    let res = get_with(server.url("/items/2"), &[("x-request-id", "req-429")]).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after").as_deref(), Some("20"));
    assert_eq!(header(&res, "ratelimit").unwrap(), r#""global";r=0;t=20"#);
    assert_eq!(
        header(&res, "content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(header(&res, "x-request-id").as_deref(), Some("req-429"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    assert_eq!(body["status"], 429);
    assert_eq!(body["violated-policies"], serde_json::json!(["global"]));
    assert_eq!(body["retry_after"], 20);
    assert_eq!(body["request_id"], "req-429");
    // The crate's own routes are exempt, and carry no rate-limit headers.
    for path in ["/health/live", "/health/ready", "/metrics"] {
        let res = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(header(&res, "ratelimit").is_none(), "{path}");
    }
}

#[tokio::test]
async fn retry_after_rounds_up_to_whole_seconds() {
    // A fixed window of 1.5 s: the wait is just under 1.5 s, so Retry-After says 2, never 1 or 0.
    let limit = Limit::new(1, Duration::from_millis(1_500)).algorithm(Algorithm::FixedWindow);
    let server = serve(RateLimitLayer::memory(RateLimiter::new("tight", [limit])).unwrap()).await;
    assert_eq!(
        client().get(server.url("/")).send().await.unwrap().status(),
        200
    );
    let res = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after").as_deref(), Some("2"));
    // Sub-second waits still say 1.
    let limit = Limit::new(1, Duration::from_millis(200));
    let server = serve(RateLimitLayer::memory(RateLimiter::new("fast", [limit])).unwrap()).await;
    assert_eq!(
        client().get(server.url("/")).send().await.unwrap().status(),
        200
    );
    let res = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after").as_deref(), Some("1"));
    assert_eq!(header(&res, "ratelimit").unwrap(), r#""fast";r=0;t=1"#);
}

#[tokio::test]
async fn legacy_and_ietf_headers_follow_the_dialect() {
    let layer = RateLimitLayer::builder(Arc::new(MemoryStore::new()))
        .limiter(RateLimiter::new(
            "api",
            [Limit::per_second(10), Limit::per_hour(100).named("hourly")],
        ))
        .headers(HeaderDialect::Both)
        .build()
        .unwrap();
    let server = serve(layer).await;
    let res = client().get(server.url("/")).send().await.unwrap();
    let policy = header(&res, "ratelimit-policy").unwrap();
    assert_eq!(policy, r#""api-10-s";q=10;w=1, "hourly";q=100;w=3600"#);
    assert_sf_list(&policy, &["q", "w"]);
    assert_sf_list(&header(&res, "ratelimit").unwrap(), &["r", "t"]);
    // Legacy: the limit closest to exhaustion, reset as Unix seconds.
    assert_eq!(header(&res, "x-ratelimit-limit").as_deref(), Some("10"));
    assert_eq!(header(&res, "x-ratelimit-remaining").as_deref(), Some("9"));
    let reset: u64 = header(&res, "x-ratelimit-reset").unwrap().parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now..=now + 2).contains(&reset), "reset {reset}, now {now}");

    let layer = RateLimitLayer::builder(Arc::new(MemoryStore::new()))
        .limiter(RateLimiter::new("api", [Limit::per_second(10)]))
        .headers(HeaderDialect::None)
        .build()
        .unwrap();
    let res = client()
        .get(serve(layer).await.url("/"))
        .send()
        .await
        .unwrap();
    assert!(header(&res, "ratelimit").is_none() && header(&res, "x-ratelimit-limit").is_none());
}

#[tokio::test]
async fn named_limiters_apply_to_their_routes_and_the_custom_response_hook() {
    let layer = RateLimitLayer::builder(Arc::new(MemoryStore::new()))
        .limiter(RateLimiter::new("global", [Limit::per_minute(100)]))
        .limiter(
            RateLimiter::new("login", [Limit::per_minute(2)])
                .routes(["/login"])
                .cost(1),
        )
        .on_limited(|parts, rejection| {
            let body = format!(
                "{} {} slow down: {}",
                parts.method,
                parts.uri.path(),
                rejection.limiter
            );
            (StatusCode::TOO_MANY_REQUESTS, body).into_response()
        })
        .build()
        .unwrap();
    let server = serve(layer).await;
    let login = || client().post(server.url("/login")).send();
    assert_eq!(login().await.unwrap().status(), 200);
    let res = login().await.unwrap();
    assert_eq!(res.status(), 200);
    // Both limiters report: global first, then login.
    assert_eq!(
        header(&res, "ratelimit-policy").unwrap(),
        r#""global";q=100;w=60, "login";q=2;w=60"#
    );
    let res = login().await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(header(&res, "retry-after").is_some());
    assert_eq!(res.text().await.unwrap(), "POST /login slow down: login");
    // Other routes only see the global limiter.
    let res = client().get(server.url("/items/9")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "ratelimit-policy").unwrap(),
        r#""global";q=100;w=60"#
    );
}

#[tokio::test]
async fn header_keys_count_per_api_key_and_skip_requests_without_one() {
    let limiter =
        RateLimiter::new("api-key", [Limit::per_minute(1)]).key(Key::header("x-api-key").unwrap());
    let server = serve(RateLimitLayer::memory(limiter).unwrap()).await;
    let with = |key: &'static str| get_h(server.url("/"), "x-api-key", key);
    assert_eq!(with("a").await.status(), 200);
    assert_eq!(with("a").await.status(), 429);
    assert_eq!(with("b").await.status(), 200);
    for _ in 0..3 {
        let res = client().get(server.url("/")).send().await.unwrap();
        assert_eq!(res.status(), 200, "no key: not counted by this limiter");
        assert!(header(&res, "ratelimit").is_none());
    }
}

fn ip_layer(client_ip: ClientIp, limit: Limit) -> RateLimitLayer {
    RateLimitLayer::builder(Arc::new(MemoryStore::new()))
        .limiter(RateLimiter::new("ip", [limit]))
        .client_ip(client_ip)
        .build()
        .unwrap()
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    // No trusted proxies: every spoofed address still counts against the real peer.
    let server = serve(ip_layer(ClientIp::new(), Limit::per_minute(3))).await;
    for i in 0..3 {
        let spoof = format!("198.51.100.{i}");
        let res = get_with(server.url("/"), &[("x-forwarded-for", spoof.as_str())]).await;
        assert_eq!(res.status(), 200);
    }
    let res = get_with(server.url("/"), &[("x-forwarded-for", "203.0.113.99")]).await;
    assert_eq!(
        res.status(),
        429,
        "a fresh X-Forwarded-For must not buy a fresh quota"
    );
    let res = get_with(server.url("/"), &[("x-real-ip", "203.0.113.98")]).await;
    assert_eq!(res.status(), 429);
}

#[tokio::test]
async fn trusted_proxies_give_the_rightmost_untrusted_address() {
    let trusted = ClientIp::new()
        .trusted_proxies(["127.0.0.1/32", "10.0.0.0/8"])
        .unwrap();
    let server = serve(ip_layer(trusted, Limit::per_minute(1))).await;
    let xff = |value: String| get_h(server.url("/"), "x-forwarded-for", value);
    assert_eq!(xff("203.0.113.1, 10.0.0.5".into()).await.status(), 200);
    // The client may prepend anything: the rightmost untrusted address is still 203.0.113.1.
    assert_eq!(
        xff("6.6.6.6, 203.0.113.1, 10.0.0.5".into()).await.status(),
        429
    );
    assert_eq!(xff("203.0.113.2".into()).await.status(), 200);
    // Garbage and absurdly long headers are answered (keyed by the last trusted hop), never a 5xx.
    assert_eq!(xff("not-an-ip".into()).await.status(), 200);
    assert_eq!(
        xff("also, garbage".into()).await.status(),
        429,
        "same key: the proxy"
    );
    let long = format!("{}203.0.113.3", "1.1.1.1, ".repeat(700));
    assert_eq!(xff(long).await.status(), 200);
    let long = format!("{}203.0.113.3", "9.9.9.9, ".repeat(700));
    assert_eq!(
        xff(long).await.status(),
        429,
        "only the rightmost hops count"
    );
}

#[tokio::test]
async fn ipv6_addresses_of_one_network_share_a_key() {
    let trusted = ClientIp::new().trusted_proxies(["127.0.0.1"]).unwrap();
    let server = serve(ip_layer(trusted, Limit::per_minute(1))).await;
    let from = |ip: &'static str| get_h(server.url("/"), "x-forwarded-for", ip);
    assert_eq!(from("2001:db8:1:2::1").await.status(), 200);
    assert_eq!(from("2001:db8:1:2:ffff:ffff:ffff:fffe").await.status(), 429);
    assert_eq!(from("[2001:db8:1:2::77]:4711").await.status(), 429);
    assert_eq!(from("2001:db8:1:3::1").await.status(), 200, "next /64");
    // A /48 setting groups wider.
    let wide = ClientIp::new()
        .trusted_proxies(["127.0.0.1"])
        .unwrap()
        .ipv6_prefix(48)
        .unwrap();
    let server = serve(ip_layer(wide, Limit::per_minute(1))).await;
    let from = |ip: &'static str| get_h(server.url("/"), "x-forwarded-for", ip);
    assert_eq!(from("2001:db8:1:2::1").await.status(), 200);
    assert_eq!(from("2001:db8:1:3::1").await.status(), 429);
}

#[tokio::test]
async fn a_missing_peer_address_is_a_clear_500_not_a_panic() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let layer = RateLimitLayer::memory(RateLimiter::new("ip", [Limit::per_minute(5)])).unwrap();
    // Served without `into_make_service_with_connect_info`.
    let task = tokio::spawn(async move { axum::serve(listener, app().layer(layer)).await });
    let res = client()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("into_make_service_with_connect_info"),
        "{body}"
    );
    task.abort();
}

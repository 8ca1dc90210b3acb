//! Configuration from the environment, from files and from code: every variable, and every bad
//! value named in its error.

use std::time::Duration;

use rustforge_prod::middleware::CorsConfig;
use rustforge_prod::ratelimit::{Algorithm, FailurePolicy, HeaderDialect, ProxyHeader, StoreKind};
use rustforge_prod::{Config, Error, LogFormat, ProductionLayer};

#[test]
fn defaults_are_production_defaults() {
    let config = Config::from_vars(Vec::<(String, String)>::new()).unwrap();
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.http.timeout, Some(Duration::from_secs(30)));
    assert_eq!(config.http.body_limit.unwrap().as_u64(), 2 * 1024 * 1024);
    assert!(config.http.compression.enabled);
    assert_eq!(config.http.compression.level, 1);
    assert_eq!(config.http.compression.min_size.as_u64(), 1024);
    assert!(config.http.cors.origins.is_empty());
    assert_eq!(config.http.request_id.header, "x-request-id");
    assert!(config.redis.is_none());
}

#[test]
fn the_documented_default_drain_can_be_written_out() {
    // `0s` is the documented default of RUSTFORGE_SHUTDOWN_DRAIN: writing it must be accepted.
    for value in ["0s", "0ms", "off"] {
        let config = Config::from_vars([("RUSTFORGE_SHUTDOWN_DRAIN", value)])
            .unwrap_or_else(|e| panic!("RUSTFORGE_SHUTDOWN_DRAIN={value}: {e}"));
        assert_eq!(config.shutdown_drain, Duration::ZERO, "{value}");
    }
    let err = Config::from_vars([("RUSTFORGE_SHUTDOWN_DRAIN", "-1s")]).unwrap_err();
    assert!(
        err.to_string().contains("RUSTFORGE_SHUTDOWN_DRAIN"),
        "{err}"
    );
}

#[test]
fn every_variable_is_read() {
    let config = Config::from_vars([
        ("RUST_LOG", "warn,my_app=debug"),
        ("RUSTFORGE_LOG_FORMAT", "pretty"),
        ("RUSTFORGE_REQUEST_ID_HEADER", "x-correlation-id"),
        (
            "RUSTFORGE_CORS_ORIGINS",
            "https://a.example.com, https://b.example.com:8443",
        ),
        ("RUSTFORGE_CORS_CREDENTIALS", "true"),
        ("RUSTFORGE_CORS_HEADERS", "content-type,x-api-key"),
        ("RUSTFORGE_CORS_MAX_AGE", "10m"),
        ("RUSTFORGE_COMPRESSION", "off"),
        ("RUSTFORGE_COMPRESSION_LEVEL", "6"),
        ("RUSTFORGE_COMPRESSION_MIN_SIZE", "4KiB"),
        ("RUSTFORGE_REQUEST_TIMEOUT", "15s"),
        ("RUSTFORGE_BODY_LIMIT", "10MiB"),
        ("REDIS_URL", "redis://127.0.0.1:6390/2"),
        ("RUSTFORGE_REDIS_PREFIX", "shop"),
        ("RUSTFORGE_REDIS_POOL_SIZE", "4"),
        ("RUSTFORGE_REDIS_CONNECT_TIMEOUT", "2s"),
        ("RUSTFORGE_REDIS_COMMAND_TIMEOUT", "50ms"),
        ("RUSTFORGE_SHUTDOWN_DRAIN", "5s"),
        ("RUSTFORGE_HEALTH_TOKEN", "t0ken"),
        ("RUSTFORGE_HEALTH_TIMEOUT", "1500ms"),
        ("RUSTFORGE_HEALTH_CACHE_TTL", "5s"),
        ("RUSTFORGE_HEALTH_PUBLIC_DETAILS", "yes"),
        ("RUSTFORGE_HEALTH_DISK_PATH", "/var/lib/app"),
        ("RUSTFORGE_HEALTH_DISK_WARN", "60"),
        ("RUSTFORGE_HEALTH_DISK_FAIL", "80.5"),
        ("RUSTFORGE_HEALTH_MEMORY_WARN", "85"),
        ("RUSTFORGE_HEALTH_MEMORY_FAIL", "95"),
        ("RUSTFORGE_RATE_LIMIT", "10/s, 1000/hour"),
        ("RUSTFORGE_RATE_LIMIT_ALGORITHM", "sliding-log"),
        ("RUSTFORGE_RATE_LIMIT_KEY", "header:x-api-key"),
        ("RUSTFORGE_RATE_LIMIT_STORE", "redis"),
        ("RUSTFORGE_RATE_LIMIT_ON_REDIS_FAILURE", "fail-closed"),
        ("RUSTFORGE_RATE_LIMIT_FALLBACK_REPLICAS", "4"),
        ("RUSTFORGE_RATE_LIMIT_TIMEOUT", "25ms"),
        ("RUSTFORGE_RATE_LIMIT_HEADERS", "both"),
        ("RUSTFORGE_RATE_LIMIT_IPV6_PREFIX", "56"),
        ("RUSTFORGE_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
        ("RUSTFORGE_PROXY_HEADER", "forwarded"),
        ("RUSTFORGE_HEADER_READ_TIMEOUT", "5s"),
        ("RUSTFORGE_IDLE_TIMEOUT", "620s"),
        ("RUSTFORGE_MAX_CONNECTIONS", "2048"),
        ("RUSTFORGE_MAX_HEADER_SIZE", "32KiB"),
        ("RUSTFORGE_MAX_HEADERS", "64"),
        ("RUSTFORGE_SHUTDOWN_TIMEOUT", "15s"),
        ("RUSTFORGE_HTTP2_KEEPALIVE_INTERVAL", "30s"),
        ("RUSTFORGE_HTTP2_MAX_STREAMS", "100"),
        ("PATH", "/usr/bin"), // other variables are ignored
    ])
    .unwrap();
    assert_eq!(config.log.filter.as_deref(), Some("warn,my_app=debug"));
    assert_eq!(config.log.format, LogFormat::Pretty);
    let http = &config.http;
    assert_eq!(http.request_id.header, "x-correlation-id");
    assert_eq!(
        http.cors.origins,
        ["https://a.example.com", "https://b.example.com:8443"]
    );
    assert!(http.cors.credentials);
    assert_eq!(http.cors.headers, ["content-type", "x-api-key"]);
    assert_eq!(http.cors.max_age, Duration::from_secs(600));
    assert!(!http.compression.enabled);
    assert_eq!(http.compression.level, 6);
    assert_eq!(http.compression.min_size.as_u64(), 4096);
    assert_eq!(http.timeout, Some(Duration::from_secs(15)));
    assert_eq!(http.body_limit.unwrap().as_u64(), 10 * 1024 * 1024);
    let redis = config.redis.as_ref().unwrap();
    assert_eq!(redis.url, "redis://127.0.0.1:6390/2");
    assert_eq!(redis.prefix, "shop");
    assert_eq!(redis.pool_size, 4);
    assert_eq!(redis.connect_timeout, Duration::from_secs(2));
    assert_eq!(redis.command_timeout, Duration::from_millis(50));
    assert_eq!(config.shutdown_drain, Duration::from_secs(5));
    let health = &config.health;
    assert_eq!(health.token.as_deref(), Some("t0ken"));
    assert_eq!(health.timeout, Duration::from_millis(1500));
    assert_eq!(health.cache_ttl, Duration::from_secs(5));
    assert!(health.public_details);
    assert_eq!(
        health.disk_path.as_deref(),
        Some(std::path::Path::new("/var/lib/app"))
    );
    assert_eq!(
        (health.disk_warn_percent, health.disk_fail_percent),
        (60.0, 80.5)
    );
    assert_eq!(
        (health.memory_warn_percent, health.memory_fail_percent),
        (85.0, 95.0)
    );
    assert!(
        !format!("{health:?}").contains("t0ken"),
        "the token never shows in Debug"
    );
    let rl = &config.rate_limit;
    let limits: Vec<String> = rl.limits.iter().map(ToString::to_string).collect();
    assert_eq!(limits, ["10/s", "1000/hour"]);
    assert_eq!(rl.algorithm, Algorithm::SlidingLog);
    assert_eq!(rl.key, "header:x-api-key");
    assert_eq!(rl.store, Some(StoreKind::Redis));
    assert_eq!(rl.on_redis_failure, FailurePolicy::FailClosed);
    assert_eq!(rl.fallback_replicas, 4);
    assert_eq!(rl.timeout, Duration::from_millis(25));
    assert_eq!(rl.headers, HeaderDialect::Both);
    assert_eq!(rl.ipv6_prefix, 56);
    assert_eq!(rl.trusted_proxies.len(), 2);
    assert_eq!(rl.proxy_header, ProxyHeader::Forwarded);
    let server = &config.server;
    assert_eq!(server.header_read_timeout, Duration::from_secs(5));
    assert_eq!(server.idle_timeout, Duration::from_secs(620));
    assert_eq!(server.max_connections, 2048);
    assert_eq!(server.max_header_size.as_u64(), 32 * 1024);
    assert_eq!(server.max_headers, 64);
    assert_eq!(server.shutdown_timeout, Duration::from_secs(15));
    assert_eq!(server.http2_keep_alive_interval, Duration::from_secs(30));
    assert_eq!(server.http2_max_concurrent_streams, 100);
}

#[test]
fn limits_can_be_switched_off() {
    let config = Config::from_vars([
        ("RUSTFORGE_REQUEST_TIMEOUT", "off"),
        ("RUSTFORGE_BODY_LIMIT", "none"),
        ("RUSTFORGE_CORS_ORIGINS", "*"),
    ])
    .unwrap();
    assert_eq!(config.http.timeout, None);
    assert_eq!(config.http.body_limit, None);
    assert_eq!(config.http.cors.origins, ["*"]);
}

#[test]
fn every_invalid_value_names_its_variable() {
    let cases: &[&[(&str, &str)]] = &[
        &[("RUSTFORGE_LOG_FORMAT", "xml")],
        &[("RUST_LOG", "info,[[[")],
        &[("RUSTFORGE_REQUEST_ID_HEADER", "bad header")],
        &[("RUSTFORGE_CORS_ORIGINS", "not a url")],
        &[("RUSTFORGE_CORS_ORIGINS", "https://app.example.com/")],
        &[("RUSTFORGE_CORS_ORIGINS", "https://app.example.com/path")],
        &[("RUSTFORGE_CORS_ORIGINS", "*,https://a.example.com")],
        &[("RUSTFORGE_CORS_CREDENTIALS", "maybe")],
        &[("RUSTFORGE_CORS_HEADERS", "x ok,bad header")],
        &[("RUSTFORGE_CORS_MAX_AGE", "forever")],
        &[("RUSTFORGE_COMPRESSION", "2")],
        &[("RUSTFORGE_COMPRESSION_LEVEL", "12")],
        &[("RUSTFORGE_COMPRESSION_LEVEL", "fast")],
        &[("RUSTFORGE_COMPRESSION_MIN_SIZE", "big")],
        &[("RUSTFORGE_REQUEST_TIMEOUT", "soon")],
        &[("RUSTFORGE_REQUEST_TIMEOUT", "0s")],
        &[("RUSTFORGE_BODY_LIMIT", "2 elephants")],
        &[("RUSTFORGE_BODY_LIMIT", "0")],
        &[("REDIS_URL", "http://127.0.0.1:6379")],
        &[("REDIS_URL", "redis+cluster://")],
        &[("RUSTFORGE_REDIS_PREFIX", "a{b}")],
        &[("RUSTFORGE_REDIS_POOL_SIZE", "0")],
        &[("RUSTFORGE_REDIS_POOL_SIZE", "many")],
        &[("RUSTFORGE_REDIS_CONNECT_TIMEOUT", "-1s")],
        &[("RUSTFORGE_REDIS_COMMAND_TIMEOUT", "0ms")],
        &[("RUSTFORGE_CORS_ORIGINN", "https://typo.example.com")],
        &[("RUSTFORGE_SHUTDOWN_DRAIN", "a while")],
        &[("RUSTFORGE_HEALTH_TOKEN", " ")],
        &[("RUSTFORGE_BROADCAST_SEND_QUEUE", "0")],
        &[("RUSTFORGE_BROADCAST_SEND_QUEUE", "lots")],
        &[("RUSTFORGE_HEALTH_TIMEOUT", "0s")],
        &[("RUSTFORGE_HEALTH_CACHE_TTL", "often")],
        &[("RUSTFORGE_HEALTH_PUBLIC_DETAILS", "sometimes")],
        &[("RUSTFORGE_HEALTH_DISK_WARN", "lots")],
        &[("RUSTFORGE_HEALTH_DISK_FAIL", "120")],
        &[("RUSTFORGE_HEALTH_MEMORY_WARN", "-5")],
        &[("RUSTFORGE_RATE_LIMIT", "lots")],
        &[("RUSTFORGE_RATE_LIMIT", "0/min")],
        &[("RUSTFORGE_RATE_LIMIT", "10/fortnight")],
        &[("RUSTFORGE_RATE_LIMIT", "10/s,5")],
        &[("RUSTFORGE_RATE_LIMIT_ALGORITHM", "leaky")],
        &[("RUSTFORGE_RATE_LIMIT_KEY", "cookie")],
        &[("RUSTFORGE_RATE_LIMIT_KEY", "header:bad header")],
        &[("RUSTFORGE_RATE_LIMIT_STORE", "memcached")],
        &[("RUSTFORGE_RATE_LIMIT_STORE", "redis")],
        &[("RUSTFORGE_RATE_LIMIT_ON_REDIS_FAILURE", "panic")],
        &[("RUSTFORGE_RATE_LIMIT_FALLBACK_REPLICAS", "0")],
        &[("RUSTFORGE_RATE_LIMIT_TIMEOUT", "0ms")],
        &[("RUSTFORGE_RATE_LIMIT_HEADERS", "draft-99")],
        &[("RUSTFORGE_RATE_LIMIT_IPV6_PREFIX", "129")],
        &[("RUSTFORGE_TRUSTED_PROXIES", "10.0.0.0/8,everyone")],
        &[("RUSTFORGE_PROXY_HEADER", "via")],
        &[("RUSTFORGE_HEADER_READ_TIMEOUT", "0s")],
        &[("RUSTFORGE_IDLE_TIMEOUT", "a minute")],
        &[("RUSTFORGE_MAX_CONNECTIONS", "0")],
        &[("RUSTFORGE_MAX_CONNECTIONS", "-1")],
        &[("RUSTFORGE_MAX_HEADER_SIZE", "1024")],
        &[("RUSTFORGE_MAX_HEADERS", "0")],
        &[("RUSTFORGE_SHUTDOWN_TIMEOUT", "never")],
        &[("RUSTFORGE_HTTP2_KEEPALIVE_INTERVAL", "0s")],
        &[("RUSTFORGE_HTTP2_MAX_STREAMS", "0")],
        &[
            ("RUSTFORGE_RATE_LIMIT", "2000/min"),
            ("RUSTFORGE_RATE_LIMIT_ALGORITHM", "sliding-log"),
        ],
    ];
    for vars in cases {
        let (name, value) = vars[0];
        let err = Config::from_vars(vars.iter().copied())
            .expect_err(&format!("{name}={value} should be rejected"));
        assert_eq!(err.setting(), name, "{name}={value}: {err}");
        assert!(
            !err.value().is_empty() && value.contains(err.value()),
            "{name}={value}: the error names the value given: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
        // The builder reports the same error.
        let err = ProductionLayer::builder()
            .from_vars(vars.iter().copied())
            .unwrap_err();
        assert_eq!(err.setting(), name);
    }
    // Tokens no client could send in a header: refused, named, and not echoed (they are secrets).
    for (name, value) in [
        ("RUSTFORGE_HEALTH_TOKEN", "line\nbreak"),
        ("RUSTFORGE_METRICS_TOKEN", "two words"),
        ("RUSTFORGE_METRICS_TOKEN", "café-au-lait"),
    ] {
        let err = Config::from_vars([(name, value)]).expect_err(&format!("{name}={value:?}"));
        assert_eq!(err.setting(), name, "{err}");
        assert!(
            !err.to_string().contains(value),
            "the token is echoed: {err}"
        );
    }
}

#[test]
fn credentials_with_a_wildcard_name_the_variable_instead_of_panicking() {
    let err = Config::from_vars([
        ("RUSTFORGE_CORS_ORIGINS", "*"),
        ("RUSTFORGE_CORS_CREDENTIALS", "true"),
    ])
    .unwrap_err();
    assert_eq!(err.setting(), "RUSTFORGE_CORS_CREDENTIALS");
    assert!(err.reason().contains('*'), "{err}");
}

#[test]
fn redis_passwords_never_appear_in_errors_or_debug() {
    let err =
        Config::from_vars([("REDIS_URL", "http://user:hunter2@redis.internal:6379")]).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let config =
        Config::from_vars([("REDIS_URL", "redis://user:hunter2@redis.internal:6379")]).unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[tokio::test]
async fn builder_conflicts_are_errors_naming_the_setting() {
    let builds = [
        (
            ProductionLayer::builder().cors(CorsConfig::any_origin().credentials(true)),
            "http.cors.credentials",
        ),
        (
            ProductionLayer::builder().cors(
                CorsConfig::origins(["https://a.example.com"])
                    .headers(["*"])
                    .credentials(true),
            ),
            "http.cors.credentials",
        ),
        (
            ProductionLayer::builder().cors(CorsConfig::default().allow_origin_regex("(unclosed")),
            "http.cors.origin_regexes",
        ),
        (
            ProductionLayer::builder().request_timeout(Some(Duration::ZERO)),
            "http.timeout",
        ),
        (
            ProductionLayer::builder().body_limit(Some(0)),
            "http.body_limit",
        ),
    ];
    for (builder, setting) in builds {
        match builder.build().await {
            Err(Error::Config(err)) => assert_eq!(err.setting(), setting, "{err}"),
            other => panic!("expected a config error for {setting}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn code_overrides_the_environment_and_errors_follow_the_source() {
    // Set from the environment, then replaced in code: the error names the config key.
    let err = ProductionLayer::builder()
        .from_vars([("RUSTFORGE_CORS_ORIGINS", "https://a.example.com")])
        .unwrap()
        .cors(CorsConfig::any_origin().credentials(true))
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("http.cors.credentials"), "{err}");
}

#[test]
fn config_deserializes_from_toml_and_json() {
    let config: Config = toml::from_str(
        r#"
        [log]
        format = "pretty"
        filter = "debug"

        [http]
        timeout = "5s"
        body_limit = "512KiB"
        timeout_status = 504

        [http.cors]
        origins = ["https://app.example.com"]
        credentials = true
        max_age = "2h"

        [http.compression]
        level = 2
        min_size = "2KiB"

        [redis]
        url = "redis+cluster://10.0.0.1:7000,10.0.0.2:7000"
        prefix = "svc"
        command_timeout = "20ms"
        "#,
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(config.log.format, LogFormat::Pretty);
    assert_eq!(config.http.timeout, Some(Duration::from_secs(5)));
    assert_eq!(config.http.body_limit.unwrap().as_u64(), 512 * 1024);
    assert_eq!(config.http.timeout_status, 504);
    assert_eq!(config.http.cors.max_age, Duration::from_secs(7200));
    assert_eq!(config.http.compression.level, 2);
    assert_eq!(
        config.redis.as_ref().unwrap().command_timeout,
        Duration::from_millis(20)
    );

    let json: Config = serde_json::from_str(r#"{"http":{"cors":{"origins":["*"]}}}"#).unwrap();
    assert_eq!(json.http.cors.origins, ["*"]);

    // Unknown keys are errors, not silently ignored.
    let err = toml::from_str::<Config>("[http]\ntimout = \"5s\"\n").unwrap_err();
    assert!(err.to_string().contains("timout"), "{err}");
    // And values checked at validate() name the key.
    let bad: Config = toml::from_str("[http.compression]\nlevel = 0\n").unwrap();
    assert_eq!(
        bad.validate().unwrap_err().setting(),
        "http.compression.level"
    );
}

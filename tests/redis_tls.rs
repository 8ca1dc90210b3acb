//! `rediss://` against real TLS-only `redis-server` processes (a single node, with and without
//! client certificates, and a 3-master cluster whose bus runs over TLS too), with certificates
//! the test makes with `openssl`: a private CA, a wrong CA, a client certificate, and the
//! settings' errors.

mod support;

use std::time::Duration;

use rustforge_prod::redis::{RedisConfig, RedisHandle, Script};
use rustforge_prod::{Config, ProductionLayer};
use support::redis::{RedisCluster, RedisServer};
use support::tls::TestPki;

const INCRBY: &str = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("a Redis call hung")
}

/// PING and a script through `redis`.
async fn works(redis: &RedisHandle) {
    bounded(redis.ping()).await.unwrap();
    let key = redis.key("tls", "counter");
    let script = Script::new(INCRBY);
    let n: i64 = bounded(redis.eval(&script, &[&key], &["2"])).await.unwrap();
    let m: i64 = bounded(redis.eval(&script, &[&key], &["3"])).await.unwrap();
    assert_eq!(m - n, 3);
}

#[tokio::test]
async fn a_private_ca_from_the_environment() {
    let pki = TestPki::new();
    let server = RedisServer::start_tls(&pki, false);
    let ca = pki.path("ca.pem");
    let config = Config::from_vars([
        ("REDIS_URL", server.url().as_str()),
        ("RUSTFORGE_REDIS_CA_CERT", ca.to_str().unwrap()),
    ])
    .unwrap();
    let prod = ProductionLayer::builder()
        .config(config)
        .build()
        .await
        .unwrap();
    works(prod.redis().unwrap()).await;
}

#[tokio::test]
async fn a_server_that_requires_a_client_certificate() {
    let pki = TestPki::new();
    let server = RedisServer::start_tls(&pki, true);
    let without =
        RedisHandle::connect(&RedisConfig::new(server.url()).ca_cert(pki.path("ca.pem"))).unwrap();
    let err = bounded(without.ping()).await.unwrap_err().to_string();
    assert!(err.contains("RUSTFORGE_REDIS_CLIENT_CERT"), "{err}");
    let with = RedisHandle::connect(
        &RedisConfig::new(server.url())
            .ca_cert(pki.path("ca.pem"))
            .client_cert(pki.path("client.pem"), pki.path("client.key")),
    )
    .unwrap();
    works(&with).await;
}

#[tokio::test]
async fn a_wrong_ca_is_a_clear_error_naming_the_setting() {
    let pki = TestPki::new();
    let server = RedisServer::start_tls(&pki, false);
    let redis =
        RedisHandle::connect(&RedisConfig::new(server.url()).ca_cert(pki.path("other-ca.pem")))
            .unwrap();
    let err = bounded(redis.ping()).await.unwrap_err().to_string();
    assert!(err.contains("not trusted"), "{err}");
    assert!(err.contains("RUSTFORGE_REDIS_CA_CERT"), "{err}");
    // Without a CA setting, the system's roots do not know the test CA either.
    let redis = RedisHandle::connect(&RedisConfig::new(server.url())).unwrap();
    let err = bounded(redis.ping()).await.unwrap_err().to_string();
    assert!(err.contains("RUSTFORGE_REDIS_CA_CERT"), "{err}");
}

#[tokio::test]
async fn tls_to_a_plain_port_and_insecure_test_setups() {
    let pki = TestPki::new();
    let plain = RedisServer::start();
    let url = plain.url().replace("redis://", "rediss://");
    let redis = RedisHandle::connect(&RedisConfig::new(url).ca_cert(pki.path("ca.pem"))).unwrap();
    let err = bounded(redis.ping()).await.unwrap_err().to_string();
    assert!(
        err.contains("does not speak TLS") || err.contains("TLS port"),
        "{err}"
    );

    // redis-rs's `#insecure`: no certificate check at all (test setups only).
    let server = RedisServer::start_tls(&pki, false);
    let redis =
        RedisHandle::connect(&RedisConfig::new(format!("{}/#insecure", server.url()))).unwrap();
    works(&redis).await;
}

#[tokio::test]
async fn a_cluster_over_tls() {
    let pki = TestPki::new();
    let cluster = RedisCluster::start_tls(&pki);
    let redis = RedisHandle::connect(
        &RedisConfig::new(cluster.url())
            .ca_cert(pki.path("ca.pem"))
            .client_cert(pki.path("client.pem"), pki.path("client.key")),
    )
    .unwrap();
    assert!(redis.is_cluster());
    // Keys under different prefixes land on different masters: every node is reached, over
    // TLS (the nodes have no plain port), as each one's command counts show.
    let script = Script::new(INCRBY);
    for prefix in ["a", "b", "c", "d", "e", "f"] {
        let redis = RedisHandle::connect(
            &RedisConfig::new(cluster.url())
                .prefix(prefix)
                .ca_cert(pki.path("ca.pem")),
        )
        .unwrap();
        let key = redis.key("tls", "n");
        let n: i64 = bounded(redis.eval(&script, &[&key], &["1"])).await.unwrap();
        assert_eq!(n, 1);
    }
    for port in cluster.ports() {
        let stats = cluster.command(*port, "INFO commandstats");
        assert!(
            stats.contains("cmdstat_evalsha:") || stats.contains("cmdstat_eval:"),
            "node {port} ran no script: {stats}"
        );
        let config = cluster.command(*port, "CONFIG GET port");
        assert_eq!(config.split_whitespace().nth(1), Some("0"), "{config}");
    }
    works(&redis).await;
    // A wrong CA on a cluster is the same clear error.
    let wrong =
        RedisHandle::connect(&RedisConfig::new(cluster.url()).ca_cert(pki.path("other-ca.pem")))
            .unwrap();
    let err = bounded(wrong.ping()).await.unwrap_err().to_string();
    assert!(err.contains("RUSTFORGE_REDIS_CA_CERT"), "{err}");
}

#[test]
fn certificate_settings_are_checked_at_start() {
    let pki = TestPki::new();
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().unwrap();
    let key = pki.path("client.key");
    let key = key.to_str().unwrap();
    // The variables, the setting the error names, a word of its reason.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[
                ("REDIS_URL", "rediss://127.0.0.1:6390"),
                ("RUSTFORGE_REDIS_CA_CERT", "/nonexistent/ca.pem"),
            ],
            "RUSTFORGE_REDIS_CA_CERT",
            "cannot read",
        ),
        (
            &[
                ("REDIS_URL", "rediss://127.0.0.1:6390"),
                ("RUSTFORGE_REDIS_CA_CERT", key),
            ],
            "RUSTFORGE_REDIS_CA_CERT",
            "CERTIFICATE",
        ),
        (
            &[
                ("REDIS_URL", "redis://127.0.0.1:6390"),
                ("RUSTFORGE_REDIS_CA_CERT", ca),
            ],
            "RUSTFORGE_REDIS_CA_CERT",
            "rediss://",
        ),
        (
            &[
                ("REDIS_URL", "rediss://127.0.0.1:6390"),
                ("RUSTFORGE_REDIS_CLIENT_CERT", ca),
            ],
            "RUSTFORGE_REDIS_CLIENT_KEY",
            "needs its key",
        ),
        (
            &[
                (
                    "REDIS_URL",
                    "rediss+cluster://127.0.0.1:7000,127.0.0.1:7001",
                ),
                ("RUSTFORGE_REDIS_CLIENT_CERT", ca),
                ("RUSTFORGE_REDIS_CLIENT_KEY", ca),
            ],
            "RUSTFORGE_REDIS_CLIENT_KEY",
            "PRIVATE KEY",
        ),
    ];
    for (vars, setting, reason) in cases {
        let err = Config::from_vars(vars.iter().copied()).unwrap_err();
        assert_eq!(err.setting(), *setting, "{vars:?}: {err}");
        assert!(err.to_string().contains(reason), "{vars:?}: {err}");
    }
}

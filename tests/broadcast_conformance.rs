//! The broadcast conformance suite (`rustforge_prod::testing::broadcast`) on every backend: one
//! server with the in-process hub, two servers sharing a Redis, two servers on a Redis Cluster —
//! the last two also over TLS (`rediss://`, a private CA, a client certificate).

mod support;

use rustforge_prod::redis::RedisConfig;
use rustforge_prod::testing::broadcast::{Server, conformance};
use support::pusher::{config, serve, serve_on, serve_on_redis};
use support::redis::{RedisCluster, RedisServer};
use support::tls::TestPki;

fn server(test: &support::http::TestServer, prod: &rustforge_prod::ProductionLayer) -> Server {
    Server {
        addr: test.addr,
        broadcaster: prod.broadcaster().expect("broadcasting on").clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_hub() {
    let (a, prod) = serve(config()).await;
    conformance(&[server(&a, &prod)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_redis() {
    let (_redis, url) = support::redis::shared_or_spawn();
    let (a, prod_a) = serve_on_redis(config(), &url, "conformance").await;
    let (b, prod_b) = serve_on_redis(config(), &url, "conformance").await;
    conformance(&[server(&a, &prod_a), server(&b, &prod_b)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let (a, prod_a) = serve_on_redis(config(), &cluster.url(), "conformance").await;
    let (b, prod_b) = serve_on_redis(config(), &cluster.url(), "conformance").await;
    conformance(&[server(&a, &prod_a), server(&b, &prod_b)]).await;
}

/// The TLS settings of a client of `pki`'s servers: the test CA and the client certificate.
fn over_tls(url: String, pki: &TestPki) -> RedisConfig {
    RedisConfig::new(url)
        .prefix("conformance")
        .ca_cert(pki.path("ca.pem"))
        .client_cert(pki.path("client.pem"), pki.path("client.key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_redis_over_tls() {
    let pki = TestPki::new();
    let redis = RedisServer::start_tls(&pki, true);
    let (a, prod_a) = serve_on(config(), over_tls(redis.url(), &pki)).await;
    let (b, prod_b) = serve_on(config(), over_tls(redis.url(), &pki)).await;
    conformance(&[server(&a, &prod_a), server(&b, &prod_b)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_a_redis_cluster_over_tls() {
    let pki = TestPki::new();
    let cluster = RedisCluster::start_tls(&pki);
    let (a, prod_a) = serve_on(config(), over_tls(cluster.url(), &pki)).await;
    let (b, prod_b) = serve_on(config(), over_tls(cluster.url(), &pki)).await;
    conformance(&[server(&a, &prod_a), server(&b, &prod_b)]).await;
}

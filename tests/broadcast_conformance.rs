//! The broadcast conformance suite (`rustforge_prod::testing::broadcast`) on every backend: one
//! server with the in-process hub, two servers sharing a Redis, two servers on a Redis Cluster.

mod support;

use rustforge_prod::testing::broadcast::{Server, conformance};
use support::pusher::{config, serve, serve_on_redis};

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
    let cluster = support::redis::RedisCluster::start();
    let (a, prod_a) = serve_on_redis(config(), &cluster.url(), "conformance").await;
    let (b, prod_b) = serve_on_redis(config(), &cluster.url(), "conformance").await;
    conformance(&[server(&a, &prod_a), server(&b, &prod_b)]).await;
}

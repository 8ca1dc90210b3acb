//! Health checks through real HTTP, against real Redis (killed and restarted), real disks and
//! `/proc`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use rustforge_prod::ProductionLayer;
use rustforge_prod::health::{
    CheckResult, DiskCheck, DiskSpace, HealthCheck, HealthConfig, MemorySource, MemoryUsage,
    check_fn,
};
use rustforge_prod::redis::RedisConfig;
use serde_json::Value;
use support::http::{TestServer, client, get};
use support::redis::RedisServer;

const TOKEN: &str = "s3cret-health-token";

fn config() -> HealthConfig {
    let mut config = HealthConfig::default();
    config.token = Some(TOKEN.into());
    config.cache_ttl = Duration::ZERO;
    config.timeout = Duration::from_millis(500);
    config
}

async fn serve(prod: &ProductionLayer) -> TestServer {
    TestServer::start(Router::new().merge(prod.routes()).layer(prod.layer())).await
}

/// GET with the token; fails the test if the server takes longer than 10 s (a hang).
async fn fetch(server: &TestServer, path: &str, token: bool) -> (u16, Value, String) {
    let auth = format!("Bearer {TOKEN}");
    let headers: Vec<(&str, &str)> = if token {
        vec![("authorization", &auth)]
    } else {
        vec![]
    };
    let res = tokio::time::timeout(Duration::from_secs(10), get(server.url(path), &headers))
        .await
        .expect("a health endpoint hung");
    let status = res.status().as_u16();
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    (status, body, content_type)
}

fn entry<'a>(body: &'a Value, key: &str) -> &'a Value {
    let list = body["checks"][key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {body}"));
    assert_eq!(list.len(), 1);
    &list[0]
}

/// Every entry has the documented fields with the documented status words.
fn assert_document_shape(body: &Value) {
    assert!(["pass", "warn", "fail"].contains(&body["status"].as_str().unwrap()));
    for (key, entries) in body["checks"].as_object().unwrap() {
        let (component, measurement) = key.split_once(':').expect("component:measurement");
        assert!(!component.is_empty() && !measurement.contains(':'), "{key}");
        for e in entries.as_array().unwrap() {
            assert!(
                ["pass", "warn", "fail"].contains(&e["status"].as_str().unwrap()),
                "{e}"
            );
            assert!(
                ["datastore", "system", "component"]
                    .contains(&e["componentType"].as_str().unwrap())
            );
            let time = e["time"].as_str().unwrap();
            humantime::parse_rfc3339(time).unwrap_or_else(|_| panic!("time {time}"));
            assert_eq!(
                e["observedValue"].is_null(),
                e["observedUnit"].is_null(),
                "{e}"
            );
            if e["status"] != "pass" {
                assert!(e["output"].is_string(), "a failing check says why: {e}");
            }
        }
    }
}

/// A server on a Redis that is then killed and restarted; `vars` add settings.
async fn on_redis(redis: &RedisServer, vars: &[(&str, &str)]) -> (TestServer, ProductionLayer) {
    let redis_config = RedisConfig::new(redis.url())
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300));
    let prod = ProductionLayer::builder()
        .redis(redis_config)
        .health(config())
        .from_vars(vars.iter().copied())
        .unwrap()
        .build()
        .await
        .unwrap();
    (serve(&prod).await, prod)
}

#[tokio::test]
async fn a_redis_outage_is_reported_but_keeps_servers_in_the_load_balancer() {
    let mut redis = RedisServer::start();
    let (server, _prod) = on_redis(&redis, &[]).await;

    let (status, body, content_type) = fetch(&server, "/health", true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "application/health+json");
    assert_eq!(body["status"], "pass");
    assert_document_shape(&body);
    let redis_entry = entry(&body, "redis:responseTime");
    assert_eq!(redis_entry["componentType"], "datastore");
    assert_eq!(redis_entry["observedUnit"], "ms");
    assert!(redis_entry["observedValue"].as_f64().unwrap() >= 0.0);
    assert_eq!(entry(&body, "process:uptime")["observedUnit"], "s");
    assert_eq!(fetch(&server, "/health/ready", false).await.0, 200);

    redis.stop();
    // Every server shares this Redis: readiness stays up (the modules degrade instead) ...
    let (status, body, _) = fetch(&server, "/health/ready", true).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("pass")),
        "{body}"
    );
    // ... while the report says what is wrong: a failing, non-critical check makes it `warn`.
    let (status, body, _) = fetch(&server, "/health", true).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("warn")),
        "{body}"
    );
    assert_eq!(entry(&body, "redis:responseTime")["status"], "fail");
    let (status, body, _) = fetch(&server, "/health/live", false).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("pass")));

    redis.restart();
    let (status, body, _) = fetch(&server, "/health", true).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("pass")),
        "{body}"
    );
}

#[tokio::test]
async fn a_server_that_needs_redis_leaves_readiness_while_it_is_down() {
    // Asked for explicitly, or implied by a rate limiter that fails closed without Redis.
    let settings: [&[(&str, &str)]; 2] = [
        &[("RUSTFORGE_HEALTH_REDIS_READINESS", "true")],
        &[
            ("RUSTFORGE_RATE_LIMIT", "100/min"),
            ("RUSTFORGE_RATE_LIMIT_ON_REDIS_FAILURE", "fail-closed"),
        ],
    ];
    for vars in settings {
        let mut redis = RedisServer::start();
        let (server, _prod) = on_redis(&redis, vars).await;
        assert_eq!(
            fetch(&server, "/health/ready", false).await.0,
            200,
            "{vars:?}"
        );

        redis.stop();
        let (status, body, _) = fetch(&server, "/health/ready", true).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (503, Some("fail")),
            "{vars:?}: {body}"
        );
        assert_eq!(entry(&body, "redis:responseTime")["status"], "fail");
        assert_eq!(fetch(&server, "/health", false).await.0, 503, "{vars:?}");
        assert_eq!(
            fetch(&server, "/health/live", false).await.0,
            200,
            "{vars:?}"
        );

        redis.restart();
        let (status, body, _) = fetch(&server, "/health/ready", true).await;
        assert_eq!(status, 200, "{vars:?}: {body}");
    }
    // And `false` keeps even a fail-closed server in the load balancer.
    let mut redis = RedisServer::start();
    let vars = [
        ("RUSTFORGE_RATE_LIMIT_ON_REDIS_FAILURE", "fail-closed"),
        ("RUSTFORGE_HEALTH_REDIS_READINESS", "false"),
    ];
    let (server, _prod) = on_redis(&redis, &vars).await;
    redis.stop();
    assert_eq!(fetch(&server, "/health/ready", false).await.0, 200);
}

#[tokio::test]
async fn a_check_that_never_returns_is_reported_as_timed_out() {
    let mut health = config();
    health.timeout = Duration::from_millis(200);
    let prod = ProductionLayer::builder()
        .health(health)
        .health_check(check_fn("stuck", std::future::pending::<CheckResult>))
        .health_check(check_fn("fine", || async { CheckResult::healthy() }))
        .build()
        .await
        .unwrap();
    let server = serve(&prod).await;
    let (status, body, _) = fetch(&server, "/health", true).await;
    assert_eq!(status, 503);
    let stuck = entry(&body, "stuck:status");
    assert_eq!(stuck["status"], "fail");
    assert_eq!(stuck["output"], "timed out after 200ms");
    assert_eq!(entry(&body, "fine:status")["status"], "pass");
    assert_eq!(body["output"], "stuck: timed out after 200ms");
}

/// What a test check returns each time it runs.
type Outcome = Arc<dyn Fn() -> CheckResult + Send + Sync>;

#[tokio::test]
async fn aggregation_follows_criticality_and_never_treats_failure_as_healthy() {
    let mut degraded_503 = config();
    degraded_503.degraded_status = 503;
    let cases: Vec<(Vec<Outcome>, bool, HealthConfig, u16, &str)> = vec![
        (
            vec![Arc::new(CheckResult::healthy)],
            true,
            config(),
            200,
            "pass",
        ),
        (
            vec![Arc::new(|| CheckResult::degraded("slow"))],
            true,
            config(),
            200,
            "warn",
        ),
        (
            vec![Arc::new(|| CheckResult::unhealthy("down"))],
            false,
            config(),
            200,
            "warn",
        ),
        (
            vec![Arc::new(|| CheckResult::unhealthy("down"))],
            true,
            config(),
            503,
            "fail",
        ),
        (
            vec![Arc::new(|| CheckResult::degraded("slow"))],
            true,
            degraded_503,
            503,
            "warn",
        ),
        (
            vec![
                Arc::new(|| CheckResult::degraded("slow")),
                Arc::new(|| CheckResult::unhealthy("down")),
            ],
            true,
            config(),
            503,
            "fail",
        ),
        (
            vec![Arc::new(|| panic!("check bug"))],
            true,
            config(),
            503,
            "fail",
        ),
    ];
    for (i, (results, critical, mut health, want_status, want_word)) in
        cases.into_iter().enumerate()
    {
        health.memory = false;
        let mut builder = ProductionLayer::builder().health(health);
        for (j, result) in results.into_iter().enumerate() {
            let check = check_fn(format!("c{j}"), move || {
                let result = result.clone();
                async move { result() }
            });
            builder = if critical {
                builder.health_check(check)
            } else {
                builder.health_check(check.not_critical())
            };
        }
        let prod = builder.build().await.unwrap();
        let server = serve(&prod).await;
        let (status, body, _) = fetch(&server, "/health", true).await;
        assert_eq!(
            (status, body["status"].as_str().unwrap()),
            (want_status, want_word),
            "case {i}: {body}"
        );
    }
}

#[tokio::test]
async fn a_thousand_concurrent_requests_run_each_check_once_per_ttl() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let mut health = config();
    health.cache_ttl = Duration::from_secs(300);
    let prod = ProductionLayer::builder()
        .health(health)
        .health_check(check_fn("counted", move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                // Slow enough that the requests pile up behind this one run.
                tokio::time::sleep(Duration::from_millis(100)).await;
                CheckResult::healthy()
            }
        }))
        .build()
        .await
        .unwrap();
    let server = serve(&prod).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let requests = (0..1000).map(|i| {
        let path = if i % 2 == 0 {
            "/health"
        } else {
            "/health/ready"
        };
        client.get(server.url(path)).send()
    });
    let responses = futures_util::future::join_all(requests).await;
    assert!(responses.into_iter().all(|r| r.unwrap().status() == 200));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn readiness_follows_startup_and_shutdown() {
    let mut health = config();
    health.wait_for_startup = true;
    let prod = ProductionLayer::builder()
        .health(health)
        .build()
        .await
        .unwrap();
    let server = serve(&prod).await;
    let (status, body, _) = fetch(&server, "/health/ready", true).await;
    assert_eq!((status, body["output"].as_str()), (503, Some("starting")));
    assert_eq!(fetch(&server, "/health/live", false).await.0, 200);

    prod.health().startup_complete();
    assert_eq!(fetch(&server, "/health/ready", false).await.0, 200);

    prod.shutdown().trigger();
    let (status, body, _) = fetch(&server, "/health/ready", true).await;
    assert_eq!(
        (status, body["output"].as_str()),
        (503, Some("shutting down"))
    );
    assert_eq!(fetch(&server, "/health/live", false).await.0, 200);

    prod.health().set_live(false);
    assert_eq!(fetch(&server, "/health/live", false).await.0, 503);
}

#[tokio::test]
async fn details_need_the_token() {
    let prod = ProductionLayer::builder()
        .health(config())
        .build()
        .await
        .unwrap();
    let server = serve(&prod).await;
    let (_, public, _) = fetch(&server, "/health", false).await;
    assert_eq!(public, serde_json::json!({"status": "pass"}));
    let res = client()
        .get(server.url("/health"))
        .header("authorization", "Bearer wrong-token-of-same-size")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        serde_json::json!({"status": "pass"})
    );
    let (_, private, _) = fetch(&server, "/health", true).await;
    assert!(
        private["checks"]["memory:utilization"].is_array(),
        "{private}"
    );
    assert_document_shape(&private);
}

#[tokio::test]
async fn paths_are_configurable_and_the_old_ones_are_gone() {
    let mut health = config();
    health.live_path = "/livez".into();
    health.ready_path = "/readyz".into();
    health.path = "/healthz".into();
    let prod = ProductionLayer::builder()
        .health(health)
        .build()
        .await
        .unwrap();
    let server = serve(&prod).await;
    for path in ["/livez", "/readyz", "/healthz"] {
        assert_eq!(fetch(&server, path, false).await.0, 200, "{path}");
    }
    assert_eq!(
        client()
            .get(server.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn disk_check_reports_what_df_reports_and_honours_thresholds() {
    let space = DiskSpace::of(std::path::Path::new("/")).unwrap();
    // `df` from coreutils: an independent statvfs reading of the same file system.
    let df = std::process::Command::new("df")
        .args(["-B1", "--output=avail,size", "/"])
        .output()
        .unwrap();
    let text = String::from_utf8(df.stdout).unwrap();
    let numbers: Vec<u64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(space.total, numbers[1]);
    let drift = space.available.abs_diff(numbers[0]);
    assert!(
        drift < 64 << 20,
        "available {} vs df {}",
        space.available,
        numbers[0]
    );

    let used = space.used_percent();
    for (warn, fail, word) in [
        (100.0, 100.0, "pass"),
        (0.0, 100.0, "warn"),
        (0.0, 0.0, "fail"),
    ] {
        let result = DiskCheck::new("/").thresholds(warn, fail).check().await;
        assert_eq!(
            result.status.as_str(),
            word,
            "{used}% used, thresholds {warn}/{fail}"
        );
        let observed = result.observed.unwrap();
        assert_eq!(observed.unit, "percent");
        assert!((observed.value - used).abs() < 1.0);
    }
    let missing = DiskCheck::new("/no/such/dir").check().await;
    assert_eq!(missing.status.as_str(), "fail");
}

#[test]
fn memory_figures_match_proc() {
    let usage = MemoryUsage::read().unwrap();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_kib: u64 = meminfo
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    // Without a cgroup limit the figures are the host's; with one, the limit is at most that.
    match usage.source {
        MemorySource::Host => assert_eq!(usage.total, total_kib * 1024),
        _ => assert!(usage.total <= total_kib * 1024),
    }
    assert!(usage.available > 0 && usage.available <= usage.total);
    // This test process has allocated at least a few hundred KiB and far less than all memory.
    assert!(usage.process_rss > 100 << 10 && usage.process_rss < usage.total);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let vm_rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let diff = usage.process_rss.abs_diff(vm_rss_kib * 1024);
    assert!(
        diff < 16 << 20,
        "statm RSS {} vs VmRSS {} KiB",
        usage.process_rss,
        vm_rss_kib
    );
}

/// `/health/ready` (with details) of an app whose only extra check is `check`.
async fn ready_with(check: impl HealthCheck) -> (u16, Value) {
    let prod = ProductionLayer::builder()
        .health(config())
        .health_check(check)
        .build()
        .await
        .unwrap();
    let server = serve(&prod).await;
    let (status, body, _) = fetch(&server, "/health/ready", true).await;
    (status, body)
}

#[tokio::test]
async fn postgres_select_1_against_the_real_server_and_a_dead_one() {
    use rustforge_prod::health::postgres_check;
    // A server of the test's own: the machine's, its port and its credentials, are left alone.
    let server = support::postgres::PgServer::start();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&server.url())
        .await
        .unwrap();
    let dead_port = support::free_port();
    let dead = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy(&format!(
            "postgres://postgres@127.0.0.1:{dead_port}/postgres"
        ))
        .unwrap();

    let (status, body) = ready_with(postgres_check(pool)).await;
    assert_eq!(status, 200, "{body}");
    let pg = entry(&body, "postgres:responseTime");
    assert_eq!(
        (pg["status"].as_str(), pg["componentType"].as_str()),
        (Some("pass"), Some("datastore"))
    );
    assert!(pg["observedValue"].as_f64().unwrap() > 0.0);

    let (status, body) = ready_with(postgres_check(dead)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(entry(&body, "postgres:responseTime")["status"], "fail");
}

/// A fake `/proc` and cgroup mount: `files` are (path under the root, content).
fn fake_tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    root
}

const MIB: u64 = 1 << 20;

fn proc_files(cgroup: &str) -> Vec<(&'static str, String)> {
    vec![
        ("proc/self/statm", "5000 256 100 1 0 300 0\n".to_owned()),
        ("proc/self/cgroup", cgroup.to_owned()),
        (
            "proc/meminfo",
            "MemTotal:       16777216 kB\nMemFree:  1 kB\nMemAvailable:    8388608 kB\n".to_owned(),
        ),
    ]
}

fn read(files: &[(&str, String)]) -> MemoryUsage {
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let root = fake_tree(&files);
    MemoryUsage::read_from(
        &root.path().join("sys/fs/cgroup"),
        &root.path().join("proc"),
    )
    .unwrap()
}

#[test]
fn memory_is_the_containers_under_cgroup_v2() {
    let mut files = proc_files("0::/kubepods/pod1/app\n");
    files.extend([
        (
            "sys/fs/cgroup/kubepods/pod1/app/memory.max",
            (512 * MIB).to_string(),
        ),
        (
            "sys/fs/cgroup/kubepods/pod1/app/memory.current",
            (300 * MIB).to_string(),
        ),
        (
            "sys/fs/cgroup/kubepods/pod1/app/memory.stat",
            format!("anon 1\ninactive_file {}\nactive_file 5\n", 100 * MIB),
        ),
    ]);
    let usage = read(&files);
    assert_eq!(usage.source, MemorySource::CgroupV2);
    assert_eq!(usage.total, 512 * MIB);
    // The working set (usage minus inactive file cache), as the kubelet counts it.
    assert_eq!(usage.available, (512 - 200) * MIB);
    assert_eq!(usage.process_rss, 256 * page_size());
}

#[test]
fn a_cgroup_v2_without_a_limit_reports_the_host() {
    let mut files = proc_files("0::/\n");
    files.extend([
        ("sys/fs/cgroup/memory.max", "max\n".to_owned()),
        ("sys/fs/cgroup/memory.current", (300 * MIB).to_string()),
    ]);
    let usage = read(&files);
    assert_eq!(usage.source, MemorySource::Host);
    assert_eq!(usage.total, 16 << 30);
    assert_eq!(usage.available, 8 << 30);
}

#[test]
fn memory_is_the_containers_under_cgroup_v1_even_in_its_own_namespace() {
    // The host's view names the path; inside a cgroup namespace the mount is the cgroup itself.
    for dir in ["sys/fs/cgroup/memory/docker/abc", "sys/fs/cgroup/memory"] {
        let files = proc_files("5:cpu:/docker/abc\n4:memory:/docker/abc\n0::/\n");
        let limit = format!("{dir}/memory.limit_in_bytes");
        let usage_file = format!("{dir}/memory.usage_in_bytes");
        let stat = format!("{dir}/memory.stat");
        let owned = [
            (limit, (1024 * MIB).to_string()),
            (usage_file, (600 * MIB).to_string()),
            (
                stat,
                format!("cache 1\ntotal_inactive_file {}\n", 100 * MIB),
            ),
        ];
        let mut all: Vec<(&str, String)> = files.clone();
        all.extend(owned.iter().map(|(p, c)| (p.as_str(), c.clone())));
        let usage = read(&all);
        assert_eq!(usage.source, MemorySource::CgroupV1, "{dir}");
        assert_eq!(usage.total, 1024 * MIB, "{dir}");
        assert_eq!(usage.available, (1024 - 500) * MIB, "{dir}");
    }
}

#[test]
fn a_cgroup_v1_without_a_limit_reports_the_host() {
    let mut files = proc_files("4:memory:/\n");
    files.extend([
        (
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712".to_owned(),
        ),
        (
            "sys/fs/cgroup/memory/memory.usage_in_bytes",
            (600 * MIB).to_string(),
        ),
    ]);
    let usage = read(&files);
    assert_eq!(usage.source, MemorySource::Host);
    assert_eq!(usage.total, 16 << 30);
}

#[tokio::test]
async fn the_memory_check_says_where_its_figures_come_from() {
    let result = rustforge_prod::health::MemoryCheck::default().check().await;
    let source = MemoryUsage::read().unwrap().source.as_str();
    let output = result.output.unwrap_or_default();
    assert!(output.contains(&format!("({source})")), "{output}");
}

fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

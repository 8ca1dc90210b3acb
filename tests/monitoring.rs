//! The deployment kit's monitoring (`examples/deploy/monitoring`) against a real `/metrics`: an
//! app with every module on and used (Redis bus, rate limits, storage, cache, sessions, the
//! database pool, webhooks). Every metric the dashboard and the alert rules query is one the
//! crate exports, every metric it exports has a dashboard panel, and docs/metrics.md lists
//! exactly those. (The rules themselves are tested by `promtool test rules`, scripts/test.sh.)

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use rustforge_prod::session::Session;
use serde_json::json;
use support::http::{TestServer, client};
use support::postgres::PgServer;
use support::prod::from_vars;
use support::redis::RedisServer;

fn kit_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The metric families and the label names on a real /metrics of an app that used every module.
async fn exported() -> (BTreeSet<String>, BTreeSet<String>) {
    let redis = RedisServer::start();
    let pg = PgServer::start();
    let prod = from_vars(&[
        ("REDIS_URL", &redis.url()),
        ("DATABASE_URL", &pg.url()),
        ("RUSTFORGE_DB_MAX_CONNECTIONS", "1"),
        ("RUSTFORGE_DB_ACQUIRE_TIMEOUT", "100ms"),
        ("RUSTFORGE_SESSION_TTL", "2s"),
        ("RUSTFORGE_RATE_LIMIT", "100/min"),
        ("RUSTFORGE_STORAGE_DISK", "memory"),
        ("PUSHER_APP_ID", "1"),
        ("PUSHER_APP_KEY", "key"),
        ("PUSHER_APP_SECRET", "secret"),
        (
            "RUSTFORGE_BROADCAST_WEBHOOK_URL",
            "http://127.0.0.1:9/webhooks",
        ),
    ])
    .await;
    let visits = |session: Session| async move {
        let n: u64 = session.get("n").await.unwrap().unwrap_or(0);
        session.insert("n", n + 1).await.unwrap();
        (n + 1).to_string()
    };
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/visits", get(visits))
        .layer(prod.session_layer())
        .merge(prod.routes())
        .layer(prod.layer());
    let server = TestServer::start(app).await;
    client().get(server.url("/users/1")).send().await.unwrap();
    // A session saved, then loaded and extended by a request past the slack (a tenth of the
    // 2 s TTL set above; the session lives 2.2 s).
    let mut cookies = String::new();
    for expected in ["1", "2"] {
        if expected == "2" {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let res = client()
            .get(server.url("/visits"))
            .header("cookie", &cookies)
            .send()
            .await
            .unwrap();
        support::http::keep_cookies(&res, &mut cookies);
        assert_eq!(res.text().await.unwrap(), expected);
    }
    client().get(server.url("/health")).send().await.unwrap();
    prod.storage().unwrap().put("a.txt", "x").await.unwrap();
    let cache = prod.cache();
    cache.put("word", "text", None).await.unwrap();
    // A read of another type is a decode error (counted) and a miss.
    assert_eq!(cache.get::<u64>("word").await, None);
    let loaded = cache
        .remember("answer", None, || async { Ok::<_, std::io::Error>(42u64) })
        .await
        .unwrap();
    assert_eq!(loaded, 42);
    let db = prod.database().unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(one, 1);
    let held = db.acquire().await.unwrap();
    // The pool has one connection: a second caller times out (counted).
    assert!(db.acquire().await.is_err());
    drop(held);
    prod.broadcaster()
        .unwrap()
        .publish(["news"], "item", &json!({"n": 1}))
        .await
        .unwrap();
    let text = support::http::get_text(server.url("/metrics")).await;
    support::promtool::check_metrics(&text);
    let families = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .filter(|name| name != "target_info")
        .collect();
    let labels = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(label_names)
        .collect();
    (families, labels)
}

/// The label names of one series line, `name{a="x",b="y \"q\" {z}"} 1`.
fn label_names(line: &str) -> Vec<String> {
    let Some((_, rest)) = line.split_once('{') else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut chars = rest.chars();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let name = name.trim_start_matches(',');
        if name.is_empty() || name.starts_with('}') {
            return names;
        }
        names.push(name.to_string());
        chars.next(); // the opening quote
        let mut escaped = false;
        for c in chars.by_ref() {
            match c {
                '"' if !escaped => break,
                '\\' => escaped = !escaped,
                _ => escaped = false,
            }
        }
    }
}

/// The crate's metric names a query text uses (label names such as
/// `db_client_connection_state` are not).
fn referenced(
    text: &str,
    families: &BTreeSet<String>,
    labels: &BTreeSet<String>,
) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !labels.contains(*w))
        .filter(|w| {
            ["http_server_", "rustforge_", "db_client_"]
                .iter()
                .any(|p| w.starts_with(p))
        })
        .filter(|w| !w.starts_with("rustforge_app") && !w.starts_with("rustforge_prod"))
        .map(|w| {
            // A histogram's series are its family's name plus a suffix.
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| w.strip_suffix(s).filter(|f| families.contains(*f)));
            family.unwrap_or(w).to_string()
        })
        .collect()
}

/// The Prometheus names (second column) of the tables under "## Every metric" in docs/metrics.md.
fn documented() -> BTreeSet<String> {
    kit_file("docs/metrics.md")
        .lines()
        .skip_while(|l| *l != "## Every metric")
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.split('|')
                .nth(2)
                .unwrap()
                .trim()
                .trim_matches('`')
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_alert_rules_cover_exactly_what_the_crate_exports() {
    let (families, labels) = exported().await;
    assert!(families.len() >= 30, "{families:?}");
    assert_eq!(
        documented(),
        families,
        "docs/metrics.md lists every exported metric"
    );

    let dashboard: serde_json::Value = serde_json::from_str(&kit_file(
        "examples/deploy/monitoring/grafana-dashboard.json",
    ))
    .unwrap();
    let mut on_dashboard = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let used = referenced(expr, &families, &labels);
            let unknown: Vec<_> = used.difference(&families).collect();
            assert!(
                unknown.is_empty(),
                "panel {}: {unknown:?} not exported",
                panel["title"]
            );
            on_dashboard.extend(used);
        }
    }
    let missing: Vec<_> = families.difference(&on_dashboard).collect();
    assert!(missing.is_empty(), "no dashboard panel shows {missing:?}");

    let alerts = kit_file("examples/deploy/monitoring/alerts.yml");
    let used = referenced(&alerts, &families, &labels);
    let unknown: Vec<_> = used.difference(&families).collect();
    assert!(
        unknown.is_empty(),
        "alerts.yml queries {unknown:?}, not exported"
    );
    assert!(used.len() >= 10, "{used:?}");
}

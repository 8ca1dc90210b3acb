//! The PostgreSQL pool against real servers: settings from the environment applied (read back
//! on the server: `application_name`, `statement_timeout`), the acquire timeout of an exhausted
//! pool, PostgreSQL down at start and restarted mid-run (bounded errors, readiness, recovery),
//! the pool metrics accepted by promtool, and the pool closed when the server stops.

mod support;

use std::time::{Duration, Instant};

use axum::Router;
use rustforge_prod::ProductionLayer;
use support::http::{TestServer, client, get_text};
use support::postgres::PgServer;
use support::prod::{config_error, from_vars, metric_sum};

/// Builds a layer from `vars` and serves its routes.
async fn app(vars: &[(&str, &str)]) -> (ProductionLayer, TestServer) {
    let prod = from_vars(vars).await;
    let server = TestServer::start(Router::new().merge(prod.routes()).layer(prod.layer())).await;
    (prod, server)
}

async fn status(url: String) -> u16 {
    client().get(url).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn settings_from_the_environment_are_applied_on_the_server() {
    let pg = PgServer::start();
    let name = format!("rustforge-test-{}", std::process::id());
    let (prod, _server) = app(&[
        ("DATABASE_URL", &pg.url()),
        ("RUSTFORGE_DB_APPLICATION_NAME", &name),
        ("RUSTFORGE_DB_STATEMENT_TIMEOUT", "250ms"),
        ("RUSTFORGE_DB_MAX_CONNECTIONS", "3"),
    ])
    .await;
    let db = prod.database().unwrap();
    let mut conn = db.acquire().await.unwrap();
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(timeout, "250ms");
    let seen: String = sqlx::query_scalar(
        "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(seen, name);
    let started = Instant::now();
    let err = sqlx::query("SELECT pg_sleep(5)")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .unwrap_or_default();
    assert_eq!(code, "57014", "cancelled by statement_timeout: {err}");
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(conn);
    let max: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
            .bind(&name)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert!((1..=3).contains(&max), "{max} connections");
}

#[tokio::test]
async fn an_exhausted_pool_times_out_and_the_metrics_say_so() {
    let pg = PgServer::start();
    let (prod, server) = app(&[
        ("DATABASE_URL", &pg.url()),
        ("RUSTFORGE_DB_MAX_CONNECTIONS", "2"),
        ("RUSTFORGE_DB_ACQUIRE_TIMEOUT", "300ms"),
    ])
    .await;
    let db = prod.database().unwrap();
    let held = [db.acquire().await.unwrap(), db.acquire().await.unwrap()];
    let started = Instant::now();
    let err = db.acquire().await.unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "gave up early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "bounded: {waited:?}");

    let text = get_text(server.url("/metrics")).await;
    assert_eq!(
        metric_sum(&text, "db_client_connection_timeouts_total{"),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric_sum(&text, "db_client_connection_pending_requests{"),
        0.0,
        "{text}"
    );
    let used = "db_client_connections_usage{db_client_connection_pool_name=\"default\",db_client_connection_state=\"used\"";
    assert_eq!(metric_sum(&text, used), 2.0, "{text}");
    assert_eq!(
        metric_sum(&text, "db_client_connection_max{"),
        2.0,
        "{text}"
    );
    assert!(
        metric_sum(&text, "db_client_connection_wait_time_seconds_count{") >= 3.0,
        "{text}"
    );
    support::promtool::check_metrics(&text);
    drop(held);
}

/// Queries written the usual way, on `db.pool()`, are observed as well: each checkout's wait,
/// a timeout of an exhausted pool, and every query's duration by operation (and error type).
#[tokio::test]
async fn queries_on_the_pool_are_measured_like_checkouts() {
    let pg = PgServer::start();
    let (prod, server) = app(&[
        ("DATABASE_URL", &pg.url()),
        ("RUSTFORGE_DB_MAX_CONNECTIONS", "1"),
        ("RUSTFORGE_DB_ACQUIRE_TIMEOUT", "300ms"),
    ])
    .await;
    let db = prod.database().unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(one, 1);
    let rows: Vec<i32> = sqlx::query_scalar("select generate_series(1, 3)")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(rows, [1, 2, 3]);
    let failed = sqlx::query("SELECT * FROM no_such_table")
        .execute(db.pool())
        .await;
    assert!(failed.is_err());
    // The one connection held: a query on the pool waits, times out, and is counted.
    let held = db.acquire().await.unwrap();
    let err = sqlx::query("SELECT 1")
        .execute(db.pool())
        .await
        .unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err}");
    drop(held);

    let text = get_text(server.url("/metrics")).await;
    let series = |labels: &[&str]| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("db_client_operation_duration_seconds_count{"))
            .filter(|l| labels.iter().all(|label| l.contains(label)))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    let select = "db_operation_name=\"SELECT\"";
    assert_eq!(
        series(&[select, "db_system_name=\"postgresql\""]),
        3.0,
        "{text}"
    );
    assert_eq!(series(&[select, "error_type=\"database\""]), 1.0, "{text}");
    assert_eq!(
        metric_sum(&text, "db_client_connection_timeouts_total{"),
        1.0,
        "a query's checkout that timed out: {text}"
    );
    assert!(
        metric_sum(&text, "db_client_connection_wait_time_seconds_count{") >= 5.0,
        "every checkout's wait, the queries' included: {text}"
    );
    support::promtool::check_metrics(&text);
}

#[tokio::test]
async fn postgres_down_at_start_then_restarted_mid_run_recovers() {
    let mut pg = PgServer::start();
    pg.stop();
    let (prod, server) = app(&[
        ("DATABASE_URL", &pg.url()),
        ("RUSTFORGE_DB_ACQUIRE_TIMEOUT", "500ms"),
        ("RUSTFORGE_HEALTH_CACHE_TTL", "1ms"),
    ])
    .await;
    let db = prod.database().unwrap().clone();
    let query = async || {
        let started = Instant::now();
        let result: Result<i32, _> = sqlx::query_scalar("SELECT 1").fetch_one(db.pool()).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "bounded by the acquire timeout"
        );
        result.is_ok()
    };
    // Down at start, then stopped under the running server (the pool's open connections are
    // dead, not hung): queries fail within the acquire timeout and readiness drops; once it is
    // started again, both recover.
    for phase in ["down at start", "stopped under a running server"] {
        if phase != "down at start" {
            pg.stop();
        }
        assert!(!query().await, "{phase}: an error, not a hang");
        assert_eq!(
            status(server.url("/health/ready")).await,
            503,
            "{phase}: not ready without its database"
        );
        pg.restart();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !query().await {
            assert!(
                Instant::now() < deadline,
                "{phase}: no recovery once started"
            );
        }
        while status(server.url("/health/ready")).await != 200 {
            assert!(
                Instant::now() < deadline,
                "{phase}: readiness did not recover"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn readiness_can_be_told_not_to_depend_on_the_database() {
    let mut pg = PgServer::start();
    pg.stop();
    let (_prod, server) = app(&[
        ("DATABASE_URL", &pg.url()),
        ("RUSTFORGE_DB_READINESS", "false"),
        ("RUSTFORGE_DB_ACQUIRE_TIMEOUT", "300ms"),
    ])
    .await;
    assert_eq!(status(server.url("/health/ready")).await, 200);
}

#[tokio::test]
async fn bad_database_settings_name_their_variable() {
    for (var, value) in [
        ("DATABASE_URL", "mysql://root:hunter2@db/app"),
        ("RUSTFORGE_DB_MAX_CONNECTIONS", "0"),
        ("RUSTFORGE_DB_LIFETIME_JITTER", "80"),
        ("RUSTFORGE_DB_ACQUIRE_TIMEOUT", "soon"),
    ] {
        let mut vars = vec![("DATABASE_URL", "postgres://u:hunter2@127.0.0.1/app")];
        vars.retain(|(name, _)| *name != var);
        vars.push((var, value));
        let err = config_error(&vars).await;
        assert!(err.contains(var), "{var}={value}: {err}");
        assert!(!err.contains("hunter2"), "no password in errors: {err}");
    }
    let err = ProductionLayer::builder()
        .from_vars([("RUSTFORGE_DB_MAX_CONNECTIONS", "5")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("DATABASE_URL"),
        "a pool setting without a URL: {err}"
    );
}

#[tokio::test]
async fn serve_closes_the_pool_when_the_server_stops() {
    let pg = PgServer::start();
    let prod = ProductionLayer::builder()
        .from_vars([("DATABASE_URL", pg.url().as_str())])
        .unwrap()
        .build()
        .await
        .unwrap();
    let db = prod.database().unwrap().clone();
    let _: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let listener = rustforge_prod::bind("127.0.0.1:0").await.unwrap();
    let serving = {
        let prod = prod.clone();
        tokio::spawn(async move { rustforge_prod::serve(listener, Router::new(), &prod).await })
    };
    prod.shutdown().trigger();
    tokio::time::timeout(Duration::from_secs(20), serving)
        .await
        .unwrap()
        .unwrap();
    assert!(db.is_closed(), "closed after the server stopped");
}

//! Sessions through real HTTP: two app servers sharing a real Redis (a session written on one
//! is read on the other), id rotation at login, inactivity and absolute expiry, tampered
//! cookies, the size bound, the cookie's attributes, and Redis unavailable (503 within the
//! timeout, the session intact afterwards) — on the memory store as well where it applies.

mod support;

use std::time::{Duration, Instant};

use axum::extract::Query;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use rustforge_prod::session::{self, Session};
use support::http::{TestServer, client};
use support::prod::{config_error, from_vars};
use support::redis::{RedisServer, raw_command};

const SECRET: &str = "a-test-secret-of-more-than-thirty-two-bytes";

async fn counter(session: Session) -> Result<String, Response> {
    let n: u64 = session
        .get("n")
        .await
        .map_err(session::unavailable)?
        .unwrap_or(0);
    session
        .insert("n", n + 1)
        .await
        .map_err(session::unavailable)?;
    Ok((n + 1).to_string())
}

async fn login(session: Session) -> Result<&'static str, Response> {
    session.cycle_id().await.map_err(session::unavailable)?;
    session
        .insert("user", "ada")
        .await
        .map_err(session::unavailable)?;
    Ok("logged in")
}

async fn whoami(session: Session) -> Result<Json<Option<String>>, Response> {
    Ok(Json(
        session.get("user").await.map_err(session::unavailable)?,
    ))
}

#[derive(serde::Deserialize)]
struct Big {
    bytes: usize,
}

async fn big(session: Session, Query(big): Query<Big>) -> Result<&'static str, Response> {
    session
        .insert("blob", "x".repeat(big.bytes))
        .await
        .map_err(session::unavailable)?;
    Ok("stored")
}

/// An app server configured from `vars`, with its own connection pool.
async fn server(vars: &[(&str, &str)]) -> TestServer {
    let prod = from_vars(vars).await;
    let app = Router::new()
        .route("/counter", get(counter))
        .route("/login", post(login))
        .route("/whoami", get(whoami))
        .route("/big", post(big))
        .layer(prod.session_layer())
        .merge(prod.routes())
        .layer(prod.layer());
    TestServer::start(app).await
}

/// A browser's cookie jar for one cookie, kept by hand: the test sees every `Set-Cookie`.
#[derive(Default)]
struct Jar {
    cookie: Option<String>,
    set_cookie: Option<String>,
}

impl Jar {
    async fn send(&mut self, request: reqwest::RequestBuilder) -> (u16, String) {
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        };
        let response = request
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().unwrap().to_owned();
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
            self.set_cookie = Some(set);
        }
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}

fn redis_vars<'a>(url: &'a str, prefix: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("REDIS_URL", url),
        ("RUSTFORGE_REDIS_PREFIX", prefix),
        ("RUSTFORGE_REDIS_COMMAND_TIMEOUT", "300ms"),
        ("RUSTFORGE_SESSION_SECRET", SECRET),
    ]
}

#[tokio::test]
async fn a_session_written_on_one_server_is_read_on_the_other() {
    let redis = RedisServer::start();
    let (url, prefix) = (redis.url(), format!("two-{}", std::process::id()));
    let vars = redis_vars(&url, &prefix);
    let (a, b) = (server(&vars).await, server(&vars).await);
    let http = client();
    let mut jar = Jar::default();
    assert_eq!(
        jar.send(http.get(a.url("/counter"))).await,
        (200, "1".into())
    );
    assert_eq!(
        jar.send(http.get(b.url("/counter"))).await,
        (200, "2".into())
    );
    assert_eq!(
        jar.send(http.get(a.url("/counter"))).await,
        (200, "3".into())
    );
    let keys = raw_command(redis.port(), &format!("KEYS {prefix}:session:*")).unwrap();
    assert!(!keys.is_empty(), "the session is in Redis: {keys:?}");

    // Login on B rotates the id: the old cookie no longer opens the session.
    let before = jar.cookie.clone().unwrap();
    assert_eq!(
        jar.send(http.post(b.url("/login"))).await,
        (200, "logged in".into())
    );
    let after = jar.cookie.clone().unwrap();
    assert_ne!(before, after, "a new cookie at login");
    assert_eq!(
        jar.send(http.get(a.url("/whoami"))).await,
        (200, "\"ada\"".into())
    );
    let mut stale = Jar {
        cookie: Some(before),
        ..Jar::default()
    };
    assert_eq!(
        stale.send(http.get(a.url("/whoami"))).await,
        (200, "null".into())
    );
    assert_eq!(
        stale.send(http.get(a.url("/counter"))).await,
        (200, "1".into()),
        "a new session"
    );
}

#[tokio::test]
async fn the_cookie_is_secure_by_default_and_a_tampered_one_starts_over() {
    for secret in [Some(SECRET), None] {
        let mut vars = vec![];
        if let Some(secret) = secret {
            vars.push(("RUSTFORGE_SESSION_SECRET", secret));
        }
        let app = server(&vars).await;
        let http = client();
        let mut jar = Jar::default();
        assert_eq!(jar.send(http.get(app.url("/counter"))).await.0, 200);
        let set = jar.set_cookie.clone().unwrap();
        for attribute in [
            "__Host-session=",
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=7200",
        ] {
            assert!(set.contains(attribute), "{attribute} in {set}");
        }
        assert!(!set.contains("Domain"), "host-only: {set}");
        assert_eq!(
            jar.send(http.get(app.url("/counter"))).await,
            (200, "2".into())
        );

        let cookie = jar.cookie.clone().unwrap();
        let (name, value) = cookie.split_once('=').unwrap();
        let mut bytes = value.as_bytes().to_vec();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let mut tampered = Jar {
            cookie: Some(format!("{name}={}", String::from_utf8(bytes).unwrap())),
            ..Jar::default()
        };
        assert_eq!(
            tampered.send(http.get(app.url("/counter"))).await,
            (200, "1".into()),
            "a tampered cookie is a new, empty session (secret: {})",
            secret.is_some()
        );
        assert_eq!(
            jar.send(http.get(app.url("/counter"))).await,
            (200, "3".into()),
            "the real one is intact"
        );
    }
}

/// Waits until a request with `jar` sees a new session; returns how long that took.
async fn until_new_session(
    jar: &mut Jar,
    http: &reqwest::Client,
    url: &str,
    keep_active: bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = if keep_active {
            jar.send(http.get(url)).await
        } else {
            // A fresh jar with the same cookie: the probe itself does not renew anything.
            let mut probe = Jar {
                cookie: jar.cookie.clone(),
                ..Jar::default()
            };
            probe
                .send(http.get(url.replace("/counter", "/whoami")))
                .await
        };
        assert_eq!(status, 200);
        if (keep_active && body == "1") || (!keep_active && body == "null") {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the session never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sessions_end_after_inactivity_and_after_their_absolute_lifetime() {
    let redis = RedisServer::start();
    let (url, prefix) = (redis.url(), format!("expiry-{}", std::process::id()));
    for store in ["memory", "redis"] {
        // Inactivity: 1 s without a request.
        let mut vars = redis_vars(&url, &prefix);
        vars.extend([
            ("RUSTFORGE_SESSION_STORE", store),
            ("RUSTFORGE_SESSION_TTL", "1s"),
        ]);
        let app = server(&vars).await;
        let http = client();
        let mut jar = Jar::default();
        jar.send(http.post(app.url("/login"))).await;
        assert_eq!(jar.send(http.get(app.url("/whoami"))).await.1, "\"ada\"");
        let waited = until_new_session(&mut jar, &http, &app.url("/counter"), false).await;
        assert!(waited < Duration::from_secs(20), "{store}");

        // Absolute: 2 s after it started, however active it is.
        let mut vars = redis_vars(&url, &prefix);
        vars.extend([
            ("RUSTFORGE_SESSION_STORE", store),
            ("RUSTFORGE_SESSION_ABSOLUTE_TTL", "2s"),
        ]);
        let app = server(&vars).await;
        let mut jar = Jar::default();
        let started = Instant::now();
        assert_eq!(jar.send(http.get(app.url("/counter"))).await.1, "1");
        until_new_session(&mut jar, &http, &app.url("/counter"), true).await;
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{store}: ended too early"
        );
    }
}

#[tokio::test]
async fn a_session_above_the_size_bound_is_refused_and_nothing_is_written() {
    let redis = RedisServer::start();
    let (url, prefix) = (redis.url(), format!("size-{}", std::process::id()));
    for store in ["memory", "redis"] {
        let mut vars = redis_vars(&url, &prefix);
        vars.extend([
            ("RUSTFORGE_SESSION_STORE", store),
            ("RUSTFORGE_SESSION_MAX_SIZE", "4KiB"),
        ]);
        let app = server(&vars).await;
        let http = client();
        let mut jar = Jar::default();
        assert_eq!(jar.send(http.get(app.url("/counter"))).await.1, "1");
        assert_eq!(jar.send(http.post(app.url("/big?bytes=1000"))).await.0, 200);
        assert_eq!(
            jar.send(http.post(app.url("/big?bytes=10000"))).await.0,
            500,
            "{store}"
        );
        assert_eq!(
            jar.send(http.get(app.url("/counter"))).await.1,
            "2",
            "{store}: the last good save is kept"
        );
    }
}

#[tokio::test]
async fn redis_unavailable_answers_503_in_bounded_time_and_loses_nothing() {
    let mut redis = RedisServer::start();
    let (url, prefix) = (redis.url(), format!("down-{}", std::process::id()));
    let app = server(&redis_vars(&url, &prefix)).await;
    let http = client();
    let mut jar = Jar::default();
    assert_eq!(jar.send(http.get(app.url("/counter"))).await.1, "1");
    assert_eq!(jar.send(http.get(app.url("/counter"))).await.1, "2");

    // Paused: every command blocks, as on an overloaded or partitioned Redis.
    raw_command(redis.port(), "CLIENT PAUSE 3000 ALL").unwrap();
    let started = Instant::now();
    let response = jar.send(http.get(app.url("/counter"))).await;
    assert_eq!(response.0, 503, "{response:?}");
    assert!(
        response.1.contains("\"status\":503"),
        "a problem body: {}",
        response.1
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the command timeout"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let value = loop {
        let (status, body) = jar.send(http.get(app.url("/counter"))).await;
        if status == 200 {
            break body;
        }
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(value, "3", "the session survived the outage unchanged");

    // Stopped: the same answer, then a fresh start once it is back (it kept no data).
    redis.stop();
    assert_eq!(jar.send(http.get(app.url("/counter"))).await.0, 503);
    // A handler that changed a new session and answered 200 (it never met the store): the
    // layer's save after it fails, and the answer is the same 503 with `Retry-After`, neither
    // the handler's 200 (the change was not kept) nor a bare 500.
    let res = http.post(app.url("/big?bytes=10")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let body = res.text().await.unwrap();
    assert!(body.contains("\"status\":503"), "a problem body: {body}");
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while jar.send(http.get(app.url("/counter"))).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "never recovered after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn session_settings_come_from_the_environment() {
    for (var, value) in [
        ("RUSTFORGE_SESSION_SECRET", "too-short"),
        ("RUSTFORGE_SESSION_TTL", "0s"),
        ("RUSTFORGE_SESSION_SAME_SITE", "sometimes"),
        ("RUSTFORGE_SESSION_STORE", "redis"),
        ("RUSTFORGE_SESSION_COOKIE", "bad name"),
    ] {
        let err = config_error(&[(var, value)]).await;
        assert!(err.contains(var), "{var}={value}: {err}");
        assert!(
            !err.contains("too-short"),
            "the secret is not echoed: {err}"
        );
    }
    let app = server(&[
        ("RUSTFORGE_SESSION_SECURE", "false"),
        ("RUSTFORGE_SESSION_SAME_SITE", "strict"),
    ])
    .await;
    let mut jar = Jar::default();
    jar.send(client().get(app.url("/counter"))).await;
    let set = jar.set_cookie.unwrap();
    assert!(
        set.starts_with("session=") && set.contains("SameSite=Strict") && !set.contains("Secure"),
        "{set}"
    );
}

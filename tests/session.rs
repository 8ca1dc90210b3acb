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
use rustforge_prod::session::{self, Session, flash};
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

#[derive(serde::Deserialize)]
struct Login {
    user: Option<String>,
}

async fn login(session: Session, Query(login): Query<Login>) -> Result<&'static str, Response> {
    let user = login.user.unwrap_or_else(|| "ada".into());
    session.cycle_id().await.map_err(session::unavailable)?;
    session
        .insert("user", &user)
        .await
        .map_err(session::unavailable)?;
    session::set_user_id(&session, &user)
        .await
        .map_err(session::unavailable)?;
    Ok("logged in")
}

async fn flash_put(session: Session) -> Result<&'static str, Response> {
    flash::put(&session, "status", "saved")
        .await
        .map_err(session::unavailable)?;
    Ok("put")
}

#[derive(serde::Deserialize)]
struct Show {
    keep: Option<bool>,
}

async fn flash_show(
    session: Session,
    Query(show): Query<Show>,
) -> Result<Json<Option<String>>, Response> {
    if show.keep == Some(true) {
        flash::reflash(&session)
            .await
            .map_err(session::unavailable)?;
    }
    Ok(Json(
        flash::get(&session, "status")
            .await
            .map_err(session::unavailable)?,
    ))
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
    let sessions = prod.sessions();
    let logout_others = move |session: Session| async move {
        let ended = sessions.end_other_sessions(&session).await;
        ended.map(|n| n.to_string()).map_err(session::unavailable)
    };
    let app = Router::new()
        .route("/counter", get(counter))
        .route("/flash", post(flash_put).get(flash_show))
        .route("/logout-others", post(logout_others))
        .route("/login", post(login))
        .route("/whoami", get(whoami))
        .route("/big", post(big))
        .route("/untouched", get(|| async { "no session used" }))
        .layer(prod.session_layer())
        .route("/plain", get(|| async { "no session layer" }))
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
            "Max-Age=7260",
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
async fn until_new_session(jar: &mut Jar, http: &reqwest::Client, url: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = jar.send(http.get(url)).await;
        assert_eq!(status, 200);
        if body == "1" {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the session never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sleeps until `at`.
async fn until(at: Instant) {
    tokio::time::sleep_until(at.into()).await;
}

#[tokio::test]
async fn reads_keep_a_session_alive_and_an_idle_one_ends_after_its_timeout() {
    let redis = RedisServer::start();
    let (url, prefix) = (redis.url(), format!("idle-{}", std::process::id()));
    let ttl = Duration::from_secs(3);
    for store in ["memory", "redis"] {
        let mut vars = redis_vars(&url, &prefix);
        vars.extend([
            ("RUSTFORGE_SESSION_STORE", store),
            ("RUSTFORGE_SESSION_TTL", "3s"),
        ]);
        let a = server(&vars).await;
        // The memory store is per process: the second server shares only Redis sessions.
        let other = server(&vars).await;
        let b = if store == "redis" { &other } else { &a };
        let http = client();
        let (mut reader, mut idle_early, mut idle_late) =
            (Jar::default(), Jar::default(), Jar::default());
        for jar in [&mut reader, &mut idle_early, &mut idle_late] {
            assert_eq!(jar.send(http.post(a.url("/login"))).await.1, "logged in");
        }
        let t0 = Instant::now();

        // A client that only reads, every TTL/3, on either server: logged in for 3 × TTL.
        for i in 1..=9u32 {
            if i == 3 {
                // An idle session, read once 100 ms before its timeout: still there (sessions
                // used to end up to a second early, their expiry cut to whole seconds).
                until(t0 + ttl - Duration::from_millis(100)).await;
                assert_eq!(
                    idle_early.send(http.get(a.url("/whoami"))).await.1,
                    "\"ada\"",
                    "{store}: ended before its timeout ({:?} idle)",
                    t0.elapsed()
                );
            }
            until(t0 + ttl / 3 * i).await;
            let server = if i % 2 == 0 { &a } else { b };
            assert_eq!(
                reader.send(http.get(server.url("/whoami"))).await,
                (200, "\"ada\"".into()),
                "{store}: read {i} at {:?}",
                t0.elapsed()
            );
            if i == 4 {
                // Another, read 1 s after its timeout (plus the extension's 300 ms slack): gone.
                assert_eq!(
                    idle_late.send(http.get(a.url("/whoami"))).await.1,
                    "null",
                    "{store}: still there {:?} after its last request",
                    t0.elapsed()
                );
            }
        }

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
        until_new_session(&mut jar, &http, &app.url("/counter")).await;
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "{store}: ended too early ({:?})",
            started.elapsed()
        );
    }
}

/// The sum of the `rustforge_session_<name>` series whose labels include every one of
/// `labels`.
fn session_metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    let series = format!("rustforge_session_{name}{{");
    text.lines()
        .filter(|l| l.starts_with(&series) && labels.iter().all(|label| l.contains(label)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// Calls of `command` Redis has answered (`INFO commandstats`), commands run by scripts
/// included.
fn calls(port: u16, command: &str) -> u64 {
    let stats = raw_command(port, "INFO commandstats").unwrap();
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// `PTTL` of the one session under `prefix`.
fn pttl(port: u16, prefix: &str) -> i64 {
    let script = "return redis.call('PTTL', redis.call('KEYS', ARGV[1])[1])";
    let reply = raw_command(port, &format!("EVAL \"{script}\" 0 {prefix}:session:*")).unwrap();
    reply.trim_start_matches(':').parse().unwrap()
}

#[tokio::test]
async fn an_unchanged_session_is_extended_not_rewritten_and_untouched_routes_cost_nothing() {
    let redis = RedisServer::start();
    let (http, url) = (client(), redis.url());

    // A save keeps the session for the TTL plus the slack, in milliseconds: 30 min + 1 min.
    let prefix = format!("precise-{}", std::process::id());
    let mut vars = redis_vars(&url, &prefix);
    vars.push(("RUSTFORGE_SESSION_TTL", "30m"));
    let app = server(&vars).await;
    let mut jar = Jar::default();
    jar.send(http.post(app.url("/login"))).await;
    let saved = pttl(redis.port(), &prefix);
    assert!(
        saved > 1_859_000 && saved <= 1_860_000,
        "the expiry in milliseconds, not truncated to seconds: PTTL {saved}"
    );
    let cookie = jar.set_cookie.take().unwrap();
    assert!(cookie.contains("Max-Age=1860"), "{cookie}");

    // TTL 10 s, so the slack is 1 s.
    let prefix = format!("writes-{}", std::process::id());
    let mut vars = redis_vars(&url, &prefix);
    vars.push(("RUSTFORGE_SESSION_TTL", "10s"));
    let app = server(&vars).await;
    let mut jar = Jar::default();
    jar.send(http.post(app.url("/login"))).await;
    let logged_in = Instant::now();
    let (sets, pexpires, setranges) = (
        calls(redis.port(), "set"),
        calls(redis.port(), "pexpire"),
        calls(redis.port(), "setrange"),
    );
    jar.set_cookie = None;
    assert_eq!(jar.send(http.get(app.url("/whoami"))).await.1, "\"ada\"");
    assert_eq!(jar.set_cookie, None, "just saved: nothing to extend");
    assert_eq!(calls(redis.port(), "pexpire"), pexpires);

    // Past the slack, a read extends the session and renews the cookie; the reads after it,
    // within the next slack, do neither.
    tokio::time::sleep_until((logged_in + Duration::from_millis(1100)).into()).await;
    let extending = Instant::now();
    assert_eq!(jar.send(http.get(app.url("/whoami"))).await.1, "\"ada\"");
    let renewed = jar
        .set_cookie
        .take()
        .expect("the extension renews the cookie");
    assert!(
        renewed.contains("Max-Age=11") && renewed.contains("HttpOnly"),
        "the cookie lives as long as the extended session (10 s + 1 s slack): {renewed}"
    );
    let extended = pttl(redis.port(), &prefix);
    assert!(extended > 10_000, "extended to 11 s: PTTL {extended}");
    for _ in 0..20 {
        assert_eq!(jar.send(http.get(app.url("/whoami"))).await.1, "\"ada\"");
    }
    // At most one extension per slack begun (on a machine slow enough for the reads to take
    // longer than a slack, more are allowed).
    let slacks = 1 + extending.elapsed().as_millis() as u64 / 1000;
    let extensions = calls(redis.port(), "pexpire") - pexpires;
    assert!(
        (1..=slacks).contains(&extensions),
        "{extensions} extensions in {slacks} slack(s)"
    );
    assert_eq!(
        calls(redis.port(), "set"),
        sets,
        "an unchanged session is never rewritten"
    );
    assert_eq!(
        calls(redis.port(), "setrange") - setranges,
        extensions,
        "each extension writes the value's expiry (8 bytes) and nothing else"
    );
    let metrics = support::http::get_text(app.url("/metrics")).await;
    assert_eq!(
        session_metric(
            &metrics,
            "store_duration_seconds_count",
            &["operation=\"load\"", "outcome=\"ok\""]
        ),
        22.0,
        "every load is counted"
    );
    assert_eq!(
        session_metric(&metrics, "extensions_total", &["store=\"redis\""]),
        extensions as f64
    );

    // Requests that never touch the session make no store call, with the layer or without.
    let commands = [
        "evalsha", "eval", "get", "set", "setrange", "pexpire", "del",
    ];
    let before: Vec<u64> = commands.iter().map(|c| calls(redis.port(), c)).collect();
    for _ in 0..20 {
        assert_eq!(jar.send(http.get(app.url("/untouched"))).await.0, 200);
        assert_eq!(jar.send(http.get(app.url("/plain"))).await.0, 200);
    }
    let after: Vec<u64> = commands.iter().map(|c| calls(redis.port(), c)).collect();
    assert_eq!(before, after, "{commands:?}");
    assert_eq!(jar.set_cookie, None);
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
    let metrics = support::http::get_text(app.url("/metrics")).await;
    assert!(
        session_metric(
            &metrics,
            "store_duration_seconds_count",
            &["operation=\"load\"", "outcome=\"error\""]
        ) >= 1.0,
        "the failed load is counted: {metrics}"
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

/// An app with session routes behind the CSRF layer, `/hooks` exempt.
async fn csrf_server(vars: &[(&str, &str)]) -> TestServer {
    let prod = from_vars(vars).await;
    async fn logout(session: Session) -> Result<&'static str, Response> {
        session.flush().await.map_err(session::unavailable)?;
        Ok("bye")
    }
    let app = Router::new()
        .route("/counter", get(counter).post(counter))
        .route("/logout", post(logout))
        .route("/hooks/payment", post(|| async { "hook" }))
        .route("/about", get(|| async { "about" }))
        .layer(prod.csrf_layer().exempt("/hooks"))
        .layer(prod.session_layer())
        .merge(prod.routes())
        .layer(prod.layer());
    TestServer::start(app).await
}

/// A cookie jar keeping every cookie, and the `XSRF-TOKEN` a script would read from it.
#[derive(Default)]
struct Browser {
    cookies: String,
}

impl Browser {
    async fn send(&mut self, request: reqwest::RequestBuilder) -> (u16, String) {
        let response = request
            .header("cookie", &self.cookies)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        support::http::keep_cookies(&response, &mut self.cookies);
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    fn xsrf(&self) -> String {
        self.cookies
            .split("; ")
            .find_map(|c| c.strip_prefix("XSRF-TOKEN="))
            .unwrap_or_else(|| panic!("no XSRF-TOKEN cookie in {}", self.cookies))
            .to_owned()
    }
}

#[tokio::test]
async fn the_csrf_layer_requires_the_sessions_token_on_state_changing_requests() {
    let redis = RedisServer::start();
    let (url, prefix) = (redis.url(), format!("csrf-{}", std::process::id()));
    let vars = redis_vars(&url, &prefix);
    let (a, b) = (csrf_server(&vars).await, csrf_server(&vars).await);
    let http = client();
    let mut user = Browser::default();

    // A safe request passes and hands out the token; the cookie is readable by scripts.
    let res = http.get(a.url("/counter")).send().await.unwrap();
    let set: Vec<_> = res.headers().get_all("set-cookie").iter().collect();
    let xsrf = set
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("XSRF-TOKEN="))
        .unwrap_or_else(|| panic!("{set:?}"));
    assert!(
        !xsrf.contains("HttpOnly") && xsrf.contains("Secure") && xsrf.contains("SameSite=Lax"),
        "{xsrf}"
    );
    assert_eq!(
        user.send(http.get(a.url("/counter"))).await,
        (200, "1".into())
    );
    let token = user.xsrf();

    // Without the token, or with a wrong one: 419, and the handler did not run.
    let (status, body) = user.send(http.post(a.url("/counter"))).await;
    assert_eq!(status, 419, "{body}");
    assert!(body.contains("csrf-token-mismatch"), "{body}");
    // The last character changed (to a different one whatever it was).
    let last = if token.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &token[..token.len() - 1]);
    assert_ne!(wrong, token);
    let refused = user
        .send(http.post(a.url("/counter")).header("x-csrf-token", &wrong))
        .await;
    assert_eq!(refused.0, 419);

    // With it, in each of the three places, on either server (the token is in the session).
    for (server, request) in [
        (
            &a,
            http.post(a.url("/counter")).header("x-xsrf-token", &token),
        ),
        (
            &b,
            http.post(b.url("/counter")).header("x-csrf-token", &token),
        ),
        (
            &b,
            http.post(b.url("/counter"))
                .form(&[("name", "ada"), ("_token", token.as_str())]),
        ),
    ] {
        let (status, body) = user.send(request).await;
        assert_eq!(status, 200, "{} {body}", server.url(""));
    }
    assert_eq!(user.send(http.get(a.url("/counter"))).await.1, "5");

    // Another session's token is worthless here, and this one's there.
    let mut other = Browser::default();
    other.send(http.get(b.url("/counter"))).await;
    assert_ne!(other.xsrf(), token);
    let (status, _) = other
        .send(http.post(b.url("/counter")).header("x-xsrf-token", &token))
        .await;
    assert_eq!(status, 419, "a token from another session");
    let (status, _) = user
        .send(
            http.post(a.url("/counter"))
                .header("x-xsrf-token", other.xsrf()),
        )
        .await;
    assert_eq!(status, 419);

    // Exempt routes need no token; no session at all is a 419 too (nothing to compare to).
    assert_eq!(
        Browser::default()
            .send(http.post(a.url("/hooks/payment")))
            .await,
        (200, "hook".into())
    );
    let (status, body) = Browser::default()
        .send(http.post(a.url("/counter")).header("x-xsrf-token", &token))
        .await;
    assert_eq!(status, 419, "{body}");

    // A logout flushes the session: the next page has a new token, the old one is refused.
    let (status, _) = user
        .send(http.post(a.url("/logout")).header("x-xsrf-token", &token))
        .await;
    assert_eq!(status, 200);
    assert_ne!(user.xsrf(), token, "a new token after the logout");
    let stale = user
        .send(http.post(a.url("/counter")).header("x-xsrf-token", &token))
        .await;
    assert_eq!(stale.0, 419);
    let fresh = user.xsrf();
    let ok = user
        .send(http.post(a.url("/counter")).header("x-xsrf-token", &fresh))
        .await;
    assert_eq!(ok, (200, "1".into()));

    // While Redis is down: safe requests that need no session pass, the others cannot be
    // verified (503 with Retry-After, not 419: the client should retry, not reload).
    raw_command(redis.port(), "CLIENT PAUSE 2000 ALL").unwrap();
    let res = http
        .post(a.url("/counter"))
        .header("cookie", &user.cookies)
        .header("x-xsrf-token", &fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let res = http
        .get(a.url("/about"))
        .header("cookie", &user.cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a page that uses no session");
    assert!(res.headers().get("set-cookie").is_none());
}

/// The stores to test, each with the two servers to use: on Redis two servers sharing it, in
/// memory one server twice (a memory store is per process).
async fn pairs(
    redis: &RedisServer,
    name: &str,
) -> Vec<(&'static str, TestServer, Option<TestServer>)> {
    let (url, prefix) = (redis.url(), format!("{name}-{}", std::process::id()));
    let mut pairs = vec![];
    for store in ["memory", "redis"] {
        let mut vars = redis_vars(&url, &prefix);
        vars.push(("RUSTFORGE_SESSION_STORE", store));
        let a = server(&vars).await;
        let b = if store == "redis" {
            Some(server(&vars).await)
        } else {
            None
        };
        pairs.push((store, a, b));
    }
    pairs
}

#[tokio::test]
async fn flash_data_is_there_for_exactly_the_next_request_on_either_server() {
    let redis = RedisServer::start();
    let http = client();
    for (store, a, b) in pairs(&redis, "flash").await {
        let b = b.as_ref().unwrap_or(&a);
        let mut jar = Jar::default();
        assert_eq!(
            jar.send(http.post(a.url("/flash"))).await,
            (200, "put".into())
        );
        // Requests that do not use the session do not count.
        assert_eq!(jar.send(http.get(b.url("/untouched"))).await.0, 200);
        let saved = (200, "\"saved\"".to_owned());
        assert_eq!(
            jar.send(http.get(b.url("/flash"))).await,
            saved,
            "{store}: the next"
        );
        assert_eq!(
            jar.send(http.get(a.url("/flash"))).await,
            (200, "null".into()),
            "{store}: gone after it"
        );
        // Kept one request more.
        jar.send(http.post(a.url("/flash"))).await;
        assert_eq!(jar.send(http.get(b.url("/flash?keep=true"))).await, saved);
        assert_eq!(
            jar.send(http.get(a.url("/flash"))).await,
            saved,
            "{store}: kept"
        );
        assert_eq!(
            jar.send(http.get(b.url("/flash"))).await.1,
            "null",
            "{store}"
        );
        // Flash data does not disturb the rest of the session.
        assert_eq!(jar.send(http.get(a.url("/counter"))).await.1, "1");
        assert_eq!(jar.send(http.get(b.url("/counter"))).await.1, "2");
    }
}

#[tokio::test]
async fn a_user_logs_out_their_other_devices_on_every_server() {
    let redis = RedisServer::start();
    let http = client();
    for (store, a, b) in pairs(&redis, "devices").await {
        let b = b.as_ref().unwrap_or(&a);
        let (mut laptop, mut phone, mut tablet, mut bob) = (
            Jar::default(),
            Jar::default(),
            Jar::default(),
            Jar::default(),
        );
        laptop.send(http.post(a.url("/login"))).await;
        phone.send(http.post(b.url("/login"))).await;
        tablet.send(http.post(a.url("/login"))).await;
        bob.send(http.post(b.url("/login?user=bob"))).await;
        // A rotated id: the laptop logs in again; its old id is in the index, but gone.
        laptop.send(http.post(b.url("/login"))).await;
        for jar in [&mut laptop, &mut phone, &mut tablet] {
            assert_eq!(jar.send(http.get(a.url("/whoami"))).await.1, "\"ada\"");
        }

        // The phone changes the password: the two other sessions of ada end, on both servers.
        assert_eq!(
            phone.send(http.post(b.url("/logout-others"))).await,
            (200, "2".into()),
            "{store}"
        );
        for (name, jar) in [("laptop", &mut laptop), ("tablet", &mut tablet)] {
            for server in [&a, b] {
                let mut probe = Jar {
                    cookie: jar.cookie.clone(),
                    ..Jar::default()
                };
                assert_eq!(
                    probe.send(http.get(server.url("/whoami"))).await.1,
                    "null",
                    "{store}: the {name} is logged out"
                );
            }
        }
        assert_eq!(
            phone.send(http.get(a.url("/whoami"))).await.1,
            "\"ada\"",
            "{store}"
        );
        assert_eq!(
            bob.send(http.get(a.url("/whoami"))).await.1,
            "\"bob\"",
            "{store}"
        );
        assert_eq!(
            phone.send(http.post(a.url("/logout-others"))).await.1,
            "0",
            "{store}: nothing left to end"
        );
    }
    // On Redis the index holds the phone's session only, and expires with it.
    let prefix = format!("devices-{}", std::process::id());
    let size = raw_command(redis.port(), &format!("ZCARD {prefix}:session-user:ada")).unwrap();
    assert_eq!(size, ":1");
    let ttl = raw_command(redis.port(), &format!("PTTL {prefix}:session-user:ada")).unwrap();
    let ttl: i64 = ttl.trim_start_matches(':').parse().unwrap();
    assert!(
        ttl > 7_000_000 && ttl <= 7_260_000,
        "expires with the session (2 h + slack): {ttl}"
    );
}

/// A store of your own, here the crate's memory store behind a newtype: wrapped with
/// `AnyStore::with_index`, `Sessions` ends its users' sessions; wrapped with `AnyStore::new`, it
/// says it cannot.
#[derive(Clone, Debug)]
struct OwnStore(session::MemoryStore);

#[async_trait::async_trait]
impl tower_sessions::SessionStore for OwnStore {
    async fn create(
        &self,
        record: &mut tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        self.0.create(record).await
    }
    async fn save(
        &self,
        record: &tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        self.0.save(record).await
    }
    async fn load(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<Option<tower_sessions::session::Record>> {
        self.0.load(id).await
    }
    async fn delete(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<()> {
        self.0.delete(id).await
    }
}

#[async_trait::async_trait]
impl session::UserIndex for OwnStore {
    async fn end_sessions_of(
        &self,
        user: &str,
        except: Option<tower_sessions::session::Id>,
    ) -> tower_sessions::session_store::Result<usize> {
        self.0.end_sessions_of(user, except).await
    }
}

#[tokio::test]
async fn a_store_of_your_own_ends_users_sessions_through_its_index() {
    let mut config = session::SessionConfig::default();
    config.secure = false;
    let own = || OwnStore(session::MemoryStore::new(1_000, 64 * 1024, config.ttl));
    for (indexed, layer) in [
        (
            true,
            session::SessionLayer::new(session::AnyStore::with_index(own()), &config),
        ),
        (
            false,
            session::SessionLayer::new(session::AnyStore::new(own()), &config),
        ),
    ] {
        let sessions = layer.sessions();
        let direct = sessions.clone();
        let logout_others = move |session: Session| async move {
            let ended = sessions.end_other_sessions(&session).await;
            ended.map(|n| n.to_string()).map_err(session::unavailable)
        };
        let app = Router::new()
            .route("/login", post(login))
            .route("/whoami", get(whoami))
            .route("/logout-others", post(logout_others))
            .layer(layer);
        let server = TestServer::start(app).await;
        let http = client();
        let (mut laptop, mut phone) = (Jar::default(), Jar::default());
        laptop.send(http.post(server.url("/login"))).await;
        phone.send(http.post(server.url("/login"))).await;
        let (status, body) = phone.send(http.post(server.url("/logout-others"))).await;
        if indexed {
            assert_eq!((status, body.as_str()), (200, "1"));
            assert_eq!(laptop.send(http.get(server.url("/whoami"))).await.1, "null");
        } else {
            // The handler's own choice of answer; the error says why.
            assert_eq!(status, 503, "{body}");
            let err = direct.end_sessions_of("ada").await.unwrap_err().to_string();
            assert!(err.contains("keeps no index"), "{err}");
            assert_eq!(
                laptop.send(http.get(server.url("/whoami"))).await.1,
                "\"ada\""
            );
        }
        assert_eq!(
            phone.send(http.get(server.url("/whoami"))).await.1,
            "\"ada\""
        );
    }
}

//! The deployment kit run for real (tests/support/fleet.rs: the kit's nginx in front of two
//! `full_stack` servers on one Redis, with the kit's environment). It shows what a fleet promises its users: pusher-js clients
//! behind the balancer get events from either server and one presence, rate limits count real
//! clients exactly across servers, and a rolling restart under load fails no request and leaves
//! no ghost. The servers reach Redis as the kit's ACL user (`examples/deploy/redis/users.acl`),
//! which shows its permissions are all the crate needs — on one Redis and on a Redis Cluster.

mod support;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde_json::{Value, json};
use support::fleet::{Fleet, JsClients, Redis, kit_redis_user};
use support::http::keep_cookies;
use support::redis::{RedisCluster, RedisServer};

/// Fleets run side by side, except the one under full wrk load, which runs alone: on two cores
/// it would starve the others (a rate-limit check past its 10 ms deadline falls back to local
/// limits, which is not what those tests check).
static LOAD: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// This fleet's share of the machine: shared, or the whole of it (held for the test's length;
/// each test has its own runtime, so waiting for it blocks no other test's tasks).
enum Turn {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// The kit's fleet on one Redis, sharing the machine with the other tests' fleets.
fn fleet(extra: &[(&str, &str)]) -> (Turn, Fleet) {
    fleet_on(Redis::Server(RedisServer::start()), extra)
}

fn fleet_on(redis: Redis, extra: &[(&str, &str)]) -> (Turn, Fleet) {
    let turn = Turn::Shared(LOAD.read().unwrap_or_else(|e| e.into_inner()));
    (turn, Fleet::start(redis, extra))
}

/// The same, with the machine to itself (see [`LOAD`]).
fn fleet_alone(extra: &[(&str, &str)]) -> (Turn, Fleet) {
    let turn = Turn::Alone(LOAD.write().unwrap_or_else(|e| e.into_inner()));
    (
        turn,
        Fleet::start(Redis::Server(RedisServer::start()), extra),
    )
}

/// The route the load and the operator's checks use.
const ITEMS: &str = "/api/items";

/// tests/js/fleet.js's clients, `users` of them.
fn fleet_clients(fleet: &Fleet, users: usize) -> JsClients {
    fleet.pusher_clients("fleet.js", users)
}

/// Every client connected and subscribed, every event of this check delivered, and the same
/// members on both servers and in every client: exactly the users connected.
fn check(clients: &mut JsClients) -> Value {
    let summary = clients.command("CHECK");
    let everyone: Vec<String> = (0..clients.users).map(|i| format!("u{i}")).collect();
    assert_eq!(summary["connected"], json!(clients.users), "{summary}");
    assert_eq!(summary["api"], json!([everyone, everyone]), "{summary}");
    // No ghost: one subscription per client on both servers' APIs (users come back under the
    // same ids, so member lists alone cannot show a stale subscription).
    let n = clients.users;
    assert_eq!(summary["counts"], json!([[n, n], [n, n]]), "{summary}");
    for (user, seen) in summary["seen"].as_object().unwrap() {
        assert_eq!(seen, &json!(everyone), "{user} sees: {summary}");
    }
    for (user, missed) in summary["missed"].as_object().unwrap() {
        assert_eq!(missed, &json!([]), "{user} missed events: {summary}");
    }
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_js_clients_behind_nginx_get_events_from_either_server_and_one_presence() {
    let (_turn, fleet) = fleet(&[]);
    let mut clients = fleet_clients(&fleet, 6);
    check(&mut clients);
    // nginx spread the WebSockets over both servers.
    for i in 0..2 {
        let open = fleet
            .metric(i, "rustforge_broadcast_connections", &[])
            .await;
        assert!(open >= 1.0, "server {i} holds {open} connections");
    }
    fleet.assert_no_refused_commands();
}

/// A client behind nginx, its requests leaving from `ip` (any 127/8 address is loopback).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// `n` requests through nginx; the statuses counted: (200s, 429s).
async fn burst(client: &reqwest::Client, url: &str, n: u32, spoof: bool) -> (u32, u32) {
    let (mut ok, mut limited) = (0, 0);
    for n in 0..n {
        let mut request = client.get(url);
        if spoof {
            request = request.header("x-forwarded-for", format!("203.0.113.{n}"));
        }
        match request.send().await.unwrap().status().as_u16() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (ok, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_behind_nginx_count_each_real_client_exactly_across_servers() {
    // 10 per hour: the test never lasts long enough for a token to come back.
    let (_turn, fleet) = fleet(&[("RUSTFORGE_RATE_LIMIT", "10/hour")]);
    let url = fleet.nginx.url(ITEMS);
    // Two clients; nginx alternates each one's requests between the servers.
    assert_eq!(
        burst(&client_from("127.0.0.2"), &url, 15, false).await,
        (10, 5)
    );
    // A forged X-Forwarded-For is only the left part of what nginx forwards: the client is
    // still its own address, and gets no fresh limit per forged value.
    assert_eq!(
        burst(&client_from("127.0.0.3"), &url, 15, true).await,
        (10, 5)
    );
    // Both servers decided, and together exactly once per request.
    let mut total = (0.0, 0.0);
    for i in 0..2 {
        let decisions = "rustforge_ratelimit_decisions_total";
        let allowed = fleet.metric(i, decisions, &["outcome=\"allowed\""]).await;
        let limited = fleet.metric(i, decisions, &["outcome=\"limited\""]).await;
        assert!(
            allowed + limited >= 10.0,
            "server {i}: {allowed} + {limited}"
        );
        total = (total.0 + allowed, total.1 + limited);
    }
    assert_eq!(total, (20.0, 10.0));
    fleet.assert_no_refused_commands();
}

/// Load through nginx until `stop`: plain GETs on several connections, POSTs with 1 KiB bodies
/// (echoed back) on two more, and one user's session counter that must go up by one at each
/// request, whichever server answers.
fn load(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let served = Arc::new(AtomicU64::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..2u8 {
            let (url, stop, served) = (url.clone(), stop.clone(), served.clone());
            workers.spawn(async move {
                let client = reqwest::Client::new();
                let mut failures = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let body = format!("{worker}:{n:>1018}").into_bytes();
                    let sent = client.post(format!("{url}/api/echo")).body(body.clone());
                    match sent.send().await {
                        Ok(res) if res.status() == 200 => match res.bytes().await {
                            Ok(echo) if echo == body => {
                                served.fetch_add(1, Ordering::Relaxed);
                            }
                            other => failures.push(format!("POST /api/echo: echoed {other:?}")),
                        },
                        Ok(res) => failures.push(format!("POST /api/echo: {}", res.status())),
                        Err(err) => failures.push(format!("POST /api/echo: {err}")),
                    }
                }
                failures
            });
        }
        for _ in 0..4 {
            let (url, stop, served) = (url.clone(), stop.clone(), served.clone());
            workers.spawn(async move {
                let client = reqwest::Client::new();
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match client.get(format!("{url}/api/items")).send().await {
                        Ok(res) if res.status() == 200 => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(res) => failures.push(format!("/api/items: {}", res.status())),
                        Err(err) => failures.push(format!("/api/items: {err}")),
                    }
                }
                failures
            });
        }
        let (session_url, session_stop, session_served) = (url, stop, served.clone());
        workers.spawn(async move {
            let client = reqwest::Client::new();
            let (mut cookie, mut last, mut failures) = (String::new(), 0u64, Vec::new());
            while !session_stop.load(Ordering::Relaxed) {
                let res = client
                    .get(format!("{session_url}/api/visits"))
                    .header("cookie", &cookie)
                    .send()
                    .await;
                let res = match res {
                    Ok(res) if res.status() == 200 => res,
                    Ok(res) => {
                        failures.push(format!("/api/visits: {}", res.status()));
                        continue;
                    }
                    Err(err) => {
                        failures.push(format!("/api/visits: {err}"));
                        continue;
                    }
                };
                keep_cookies(&res, &mut cookie);
                let visits: u64 = res.text().await.unwrap().trim().parse().unwrap();
                if visits != last + 1 {
                    failures.push(format!("/api/visits: {visits} after {last}"));
                }
                last = visits;
                session_served.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            failures
        });
        let mut failures = Vec::new();
        while let Some(done) = workers.join_next().await {
            failures.extend(done.unwrap());
        }
        (served.load(Ordering::Relaxed), failures)
    })
}

/// wrk (a load generator of its own, many keep-alive connections) through nginx until `stop`,
/// in 2 s runs: half `GET /api/items`, half `POST /api/echo` with a 1 KiB body. Returns the
/// requests sent and every failure wrk reported (non-2xx answers, socket errors).
fn wrk_load(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, Vec<String>)> {
    const HINT: &str = "needs wrk (Debian: apt-get install wrk; scripts/test.sh installs it)";
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        script.path(),
        r#"local body = string.rep("x", 1024)
local n = 0
request = function()
  n = n + 1
  if n % 2 == 0 then
    return wrk.format("POST", "/api/echo", {["Content-Type"] = "application/octet-stream"}, body)
  end
  return wrk.format("GET", "/api/items")
end
"#,
    )
    .unwrap();
    std::thread::spawn(move || {
        let (mut requests, mut failures) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            let out = std::process::Command::new("wrk")
                .args(["-t1", "-c16", "-d2s", "-s"])
                .arg(script.path())
                .arg(&url)
                .output()
                .unwrap_or_else(|e| panic!("cannot run wrk ({e}): {HINT}"));
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "wrk failed: {text}");
            let sent = text
                .lines()
                .find_map(|l| l.trim().split_once(" requests in "))
                .map(|(n, _)| n.trim().parse::<u64>().unwrap())
                .unwrap_or_else(|| panic!("no request count in wrk's output: {text}"));
            requests += sent;
            failures.extend(
                text.lines()
                    .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
                    .map(|l| l.trim().to_owned()),
            );
        }
        (requests, failures)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_no_request_and_leaves_no_ghost() {
    let (_turn, mut fleet) = fleet(&[]);
    let mut clients = fleet_clients(&fleet, 10);
    let stop = Arc::new(AtomicBool::new(false));
    let load = load(fleet.nginx.url(""), stop.clone());
    for i in 0..2 {
        let before = fleet.served_on(1 - i, ITEMS).await;
        tokio::task::block_in_place(|| fleet.restart(i));
        // The other server carried the load meanwhile.
        let after = fleet.served_on(1 - i, ITEMS).await;
        assert!(
            after > before,
            "server {} served nothing during the restart",
            1 - i
        );
        fleet.wait_until_balanced_to(i, ITEMS).await;
    }
    let summary = check(&mut clients);
    stop.store(true, Ordering::Relaxed);
    let (served, failures) = load.await.unwrap();
    assert!(served > 100, "only {served} requests served");
    assert_eq!(failures, Vec::<String>::new(), "{served} requests served");
    // Every client lost its server once (each server restarted) and subscribed again.
    for (user, n) in summary["subscriptions"].as_object().unwrap() {
        assert!(
            n.as_u64().unwrap() >= 2,
            "{user} never reconnected: {summary}"
        );
    }
    fleet.assert_no_refused_commands();
}

/// A rolling restart with only HTTP load (wrk, GET and POST with bodies) and no WebSocket
/// client: nothing else makes nginx skip a stopping server during its drain, so nginx keeps
/// sending it requests until its listener closes — the moment a POST on a keep-alive connection
/// the server closes would fail. `Connection: close` during the drain retires them first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_post_load_fails_no_request() {
    let (_turn, mut fleet) = fleet_alone(&[]);
    let stop = Arc::new(AtomicBool::new(false));
    let wrk = wrk_load(fleet.nginx.url("/"), stop.clone());
    fleet.wait_until_balanced_to(0, ITEMS).await;
    fleet.wait_until_balanced_to(1, ITEMS).await;
    for i in 0..2 {
        tokio::task::block_in_place(|| fleet.restart(i));
        fleet.wait_until_balanced_to(i, ITEMS).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (sent, failures) = tokio::task::block_in_place(|| wrk.join().unwrap());
    assert_eq!(failures, Vec::<String>::new(), "wrk sent {sent} requests");
    println!("wrk: {sent} requests (GET and POST), none failed");
}

/// What one client saw of a route through nginx: statuses counted, and any answer outside
/// `allowed`.
#[derive(Debug, Default)]
struct Seen {
    statuses: std::collections::BTreeMap<u16, u64>,
    unexpected: Vec<String>,
}

/// GETs `path` through nginx until `stop`, with a session cookie kept; a 503 must carry
/// `Retry-After`.
fn watch(
    url: String,
    path: &'static str,
    allowed: &'static [u16],
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Seen> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let (mut seen, mut cookie) = (Seen::default(), String::new());
        while !stop.load(Ordering::Relaxed) {
            let res = client
                .get(format!("{url}{path}"))
                .header("cookie", &cookie)
                .send()
                .await;
            let res = match res {
                Ok(res) => res,
                Err(err) => {
                    seen.unexpected.push(format!("{path}: {err}"));
                    continue;
                }
            };
            let status = res.status().as_u16();
            *seen.statuses.entry(status).or_default() += 1;
            if !allowed.contains(&status) {
                seen.unexpected.push(format!("{path}: {status}"));
            } else if status == 503 && res.headers().get("retry-after").is_none() {
                seen.unexpected
                    .push(format!("{path}: 503 without Retry-After"));
            }
            keep_cookies(&res, &mut cookie);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    })
}

/// Redis killed behind the kit's nginx: routes that do not use Redis answer 200 all along (the
/// nginx config counts no 503 of a session route against a server), the cached route serves
/// (a miss loads), the session route answers only its documented 503 with `Retry-After`, both
/// servers' breakers open; after the restart every route answers 200 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_behind_nginx_fails_only_what_needs_redis() {
    let (_turn, mut fleet) = fleet(&[]);
    let stop = Arc::new(AtomicBool::new(false));
    let url = fleet.nginx.url("");
    let watchers = [
        watch(url.clone(), "/", &[200], stop.clone()),
        watch(url.clone(), "/api/items", &[200], stop.clone()),
        watch(url.clone(), "/api/stats", &[200], stop.clone()),
        watch(url.clone(), "/api/visits", &[200, 503], stop.clone()),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    fleet.wait_for_breakers(0.0, "closed").await;

    let Redis::Server(redis) = &mut fleet.redis else {
        unreachable!()
    };
    redis.stop();
    // The load trips both servers' breakers.
    fleet.wait_for_breakers(1.0, "open").await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let Redis::Server(redis) = &mut fleet.redis else {
        unreachable!()
    };
    redis.restart();
    // The restarted Redis is empty: the kit's user again.
    kit_redis_user(&fleet.redis);
    fleet.wait_for_breakers(0.0, "closed").await;
    // Sessions work again (on the empty Redis, a new session).
    let client = reqwest::Client::new();
    for _ in 0..4 {
        let res = client.get(fleet.nginx.url("/api/visits")).send().await;
        assert_eq!(res.unwrap().status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut report = Vec::new();
    for watcher in watchers {
        report.push(watcher.await.unwrap());
    }
    for seen in &report {
        assert_eq!(seen.unexpected, Vec::<String>::new(), "{report:?}");
    }
    // The session route did meet the outage.
    assert!(report[3].statuses.contains_key(&503), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_the_kit_user_is_all_every_module_needs() {
    let redis = Redis::Cluster(RedisCluster::start());
    // 50 per hour: room for the pusher-js clients' own requests from 127.0.0.1.
    let (_turn, fleet) = fleet_on(redis, &[("RUSTFORGE_RATE_LIMIT", "50/hour")]);
    // Broadcasting (sharded pub/sub, presence) across the two servers.
    let mut clients = fleet_clients(&fleet, 4);
    check(&mut clients);
    // Rate limits, exact across the servers.
    let url = fleet.nginx.url(ITEMS);
    assert_eq!(
        burst(&client_from("127.0.0.2"), &url, 55, false).await,
        (50, 5)
    );
    // Sessions: one visitor's counter, whichever server answers.
    let client = client_from("127.0.0.3");
    let mut cookie = String::new();
    for expected in 1..=4 {
        let res = client
            .get(fleet.nginx.url("/api/visits"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        keep_cookies(&res, &mut cookie);
        assert_eq!(res.text().await.unwrap().trim(), expected.to_string());
    }
    // The cache: a tagged entry, the tag flushed, the entry loaded again.
    let client = client_from("127.0.0.4");
    for _ in 0..2 {
        let res = client.get(fleet.nginx.url("/api/stats")).send().await;
        assert_eq!(res.unwrap().status(), 200);
        let res = client.post(fleet.nginx.url("/api/stats/refresh")).send();
        assert_eq!(res.await.unwrap().status(), 204);
    }
    let (mut loads, mut errors) = (0.0, 0.0);
    for i in 0..2 {
        let count = "rustforge_cache_loader_duration_seconds_count";
        loads += fleet.metric(i, count, &["outcome=\"ok\""]).await;
        errors += fleet.metric(i, "rustforge_cache_errors_total", &[]).await;
    }
    assert_eq!(
        (loads, errors),
        (2.0, 0.0),
        "loads once per flush, no errors"
    );
    fleet.assert_no_refused_commands();
}

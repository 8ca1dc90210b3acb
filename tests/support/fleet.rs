//! The deployment kit run for real, the way `docs/deployment.md` says: the kit's nginx config
//! (`examples/deploy/nginx/rustforge.conf`) in front of two `full_stack` servers sharing one
//! Redis (a single server, a 3-node Cluster or a Sentinel group), each started with the kit's
//! environment (`examples/deploy/app.env`; loopback addresses for Redis and the trusted proxy),
//! reaching Redis as the kit's ACL user (`examples/deploy/redis/users.acl`). Used by
//! tests/fleet.rs and tests/chaos.rs; pusher-js clients come from the scripts in tests/js.

use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::nginx::Nginx;
use super::process::Running;
use super::redis::{RedisCluster, RedisServer};
use super::sentinel::SentinelGroup;

pub const JS_HINT: &str = "needs Node.js ≥ 20 and `npm ci` in tests/js (scripts/test.sh does both)";
/// The broadcasting app's secret; the id and key come from the kit's app.env.
pub const PUSHER_SECRET: &str = "fleet-test-secret";

/// Two app servers behind nginx, sharing one Redis.
pub struct Fleet {
    /// `None` while a server is stopped.
    pub servers: Vec<Option<Running>>,
    pub ports: Vec<u16>,
    pub env: Vec<(String, String)>,
    pub nginx: Nginx,
    pub redis: Redis,
}

/// The fleet's Redis.
pub enum Redis {
    Server(RedisServer),
    Cluster(RedisCluster),
    Sentinel(SentinelGroup),
}

impl Redis {
    /// The client port of every data node.
    pub fn ports(&self) -> Vec<u16> {
        match self {
            Redis::Server(server) => vec![server.port()],
            Redis::Cluster(cluster) => cluster.ports().to_vec(),
            Redis::Sentinel(group) => group.nodes.iter().map(RedisServer::port).collect(),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Redis::Server(server) => server.url(),
            Redis::Cluster(cluster) => cluster.url(),
            Redis::Sentinel(group) => group.url(),
        }
    }
}

impl Fleet {
    /// The kit's environment plus `extra` (which overrides it), on `redis`.
    pub fn start(redis: Redis, extra: &[(&str, &str)]) -> Self {
        let mut env = kit_env(&kit_redis_user(&redis));
        for (name, value) in extra {
            env.retain(|(k, _)| k != name);
            env.push((name.to_string(), value.to_string()));
        }
        let servers: Vec<Option<Running>> = (0..2).map(|_| Some(start_server(&env))).collect();
        let ports: Vec<u16> = servers.iter().flatten().map(|s| s.port).collect();
        assert_eq!(super::nginx::test_config(&ports), Ok(()), "nginx -t");
        let nginx = Nginx::start(&ports);
        Self {
            servers,
            ports,
            env,
            nginx,
            redis,
        }
    }

    /// Redis refused no command of the kit's ACL user (`ACL LOG` is empty on every node): the
    /// user's permissions are all the servers needed.
    pub fn assert_no_refused_commands(&self) {
        for port in self.redis.ports() {
            let log = super::redis::raw_command(port, "ACL LOG");
            assert_eq!(
                log.unwrap(),
                "*0",
                "refused commands: `ACL LOG` on the Redis node on port {port}"
            );
        }
    }

    pub fn var(&self, name: &str) -> &str {
        &self.env.iter().find(|(k, _)| k == name).unwrap().1
    }

    /// SIGTERM server `i`, wait for its clean exit, start it again on its port.
    pub fn restart(&mut self, i: usize) {
        self.servers[i].take().unwrap().terminate();
        self.start_again(i);
    }

    /// Starts server `i` (stopped) again on its port.
    pub fn start_again(&mut self, i: usize) {
        assert!(self.servers[i].is_none(), "server {i} is running");
        self.servers[i] = Some(restart_server(self.ports[i], &self.env));
    }

    /// pusher-js clients through nginx: `script` in tests/js, which prints `READY` once every
    /// client is subscribed and then answers each command line with one JSON line.
    pub fn pusher_clients(&self, script: &str, users: usize) -> JsClients {
        let js = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
        assert!(js.join("node_modules/pusher-js").is_dir(), "{JS_HINT}");
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        let mut child = std::process::Command::new("node")
            .arg(script)
            .current_dir(&js)
            .env("PROXY_PORT", self.nginx.port().to_string())
            .env("SERVER_PORTS", ports.join(","))
            .env("USERS", users.to_string())
            .env("PUSHER_APP_ID", self.var("PUSHER_APP_ID"))
            .env("PUSHER_APP_KEY", self.var("PUSHER_APP_KEY"))
            .env("PUSHER_APP_SECRET", PUSHER_SECRET)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node ({e}): {JS_HINT}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let clients = JsClients {
            child,
            stdin,
            lines,
            users,
        };
        assert_eq!(clients.next_line(), "READY");
        clients
    }

    /// The sum of the samples of `name` with every one of `labels` on server `i`'s /metrics.
    pub async fn metric(&self, i: usize, name: &str, labels: &[&str]) -> f64 {
        let url = format!("http://127.0.0.1:{}/metrics", self.ports[i]);
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    }

    /// Requests server `i` answered on `route`.
    pub async fn served_on(&self, i: usize, route: &str) -> f64 {
        let count = "http_server_request_duration_seconds_count";
        let label = format!("http_route=\"{route}\"");
        self.metric(i, count, &[&label]).await
    }

    /// Waits (up to 10 s) until every running server's shared Redis breaker is `state` (1
    /// open, 0 closed), as their /metrics say.
    pub async fn wait_for_breakers(&self, state: f64, what: &str) {
        let mut seen = Vec::new();
        for _ in 0..500 {
            seen.clear();
            for i in (0..2).filter(|&i| self.servers[i].is_some()) {
                seen.push(self.metric(i, "rustforge_redis_breaker_open", &[]).await);
            }
            if seen.iter().all(|&s| s == state) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the breakers are not {what}: {seen:?}");
    }

    /// Waits until server `i` answers requests on `route` that came through nginx again (nginx
    /// skips a failed server for its `fail_timeout`): what an operator waits for before the next
    /// restart.
    pub async fn wait_until_balanced_to(&self, i: usize, route: &str) {
        for _ in 0..300 {
            if self.served_on(i, route).await > 0.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server {i} got no request through nginx within 15 s of its restart");
    }
}

/// Creates the kit's Redis user (users.acl, with a test password) on every node of `redis`
/// (ACL rules are not replicated); the URL that logs in as it.
pub fn kit_redis_user(redis: &Redis) -> String {
    for port in redis.ports() {
        create_kit_user(port);
    }
    redis
        .url()
        .replacen("://", &format!("://rustforge:{KIT_PASSWORD}@"), 1)
}

/// The kit user's password in the tests.
const KIT_PASSWORD: &str = "fleet-test-password";

/// Creates the kit's Redis user on the node listening on `port` (a restarted node has none).
pub fn create_kit_user(port: u16) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/redis/users.acl");
    let acl = std::fs::read_to_string(path).unwrap();
    assert!(acl.lines().any(|l| l == "user default off"), "{acl}");
    let rules = acl
        .lines()
        .find_map(|l| l.strip_prefix("user rustforge "))
        .expect("users.acl defines the user rustforge");
    let rules = rules.replace(">change-me", &format!(">{KIT_PASSWORD}"));
    let reply = super::redis::raw_command(port, &format!("ACL SETUSER rustforge reset {rules}"));
    assert_eq!(reply.unwrap(), "+OK", "node on port {port}");
    // Servers that tried to log in before the user existed are not refused commands.
    let reply = super::redis::raw_command(port, "ACL LOG RESET");
    assert_eq!(reply.unwrap(), "+OK", "node on port {port}");
}

/// The kit's app.env as variables, with loopback addresses: Redis at `redis_url`, nginx on
/// 127.0.0.1 as the trusted proxy. `PORT` is each server's own.
fn kit_env(redis_url: &str) -> Vec<(String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/app.env");
    let mut env: Vec<(String, String)> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.to_string(), v.to_string())
        })
        .filter(|(k, _)| k != "PORT")
        .collect();
    for (name, value) in [
        ("REDIS_URL", redis_url),
        ("RUSTFORGE_TRUSTED_PROXIES", "127.0.0.1/32"),
    ] {
        let var = env.iter_mut().find(|(k, _)| k == name);
        var.unwrap_or_else(|| panic!("app.env sets {name}")).1 = value.to_string();
    }
    env.push(("PUSHER_APP_SECRET".into(), PUSHER_SECRET.into()));
    env
}

fn vars(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn start_server(env: &[(String, String)]) -> Running {
    Running::start("full_stack", &vars(env))
}

/// A server started again on the port nginx knows it by.
fn restart_server(port: u16, env: &[(String, String)]) -> Running {
    Running::start_on("full_stack", port, &vars(env))
}

/// A tests/js script's clients: one JSON line per command.
pub struct JsClients {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: mpsc::Receiver<String>,
    pub users: usize,
}

impl JsClients {
    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(90))
            .expect("a line from the pusher-js clients' script")
    }

    /// Sends `command` and reads its JSON answer (blocking: call it from a multi-threaded
    /// runtime).
    pub fn command(&mut self, command: &str) -> Value {
        writeln!(self.stdin, "{command}").unwrap();
        let line = tokio::task::block_in_place(|| self.next_line());
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }
}

impl Drop for JsClients {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

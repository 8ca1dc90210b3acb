//! Redis Sentinel for real: a primary, a replica and three sentinels (`redis-server FILE
//! --sentinel`) on free loopback ports, watching the service `rustforge`, with a 1 s
//! down-after so a failover takes a few seconds. Killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::redis::{RedisServer, raw_command};

/// The service name the sentinels watch.
pub const SERVICE: &str = "rustforge";

/// A primary, its replica and three sentinels.
pub struct SentinelGroup {
    /// `[primary, replica]` as started; after a failover the roles are swapped.
    pub nodes: Vec<RedisServer>,
    sentinel_ports: Vec<u16>,
    sentinels: Vec<Child>,
    _dir: TempDir,
}

impl SentinelGroup {
    pub fn start() -> Self {
        let primary = RedisServer::start();
        let replica = RedisServer::start();
        let reply = raw_command(
            replica.port(),
            &format!("REPLICAOF 127.0.0.1 {}", primary.port()),
        );
        assert_eq!(reply.unwrap(), "+OK");
        super::wait_until("the replica to sync", || {
            raw_command(replica.port(), "INFO replication")
                .is_ok_and(|info| info.contains("master_link_status:up"))
        });
        let dir = tempfile::tempdir().unwrap();
        let (mut sentinels, mut sentinel_ports) = (Vec::new(), Vec::new());
        for i in 0..3 {
            let (port, child) = (0..5)
                .find_map(|attempt| start_sentinel(&dir, i * 10 + attempt, primary.port()))
                .expect("a sentinel did not start on any of 5 free ports");
            sentinels.push(child);
            sentinel_ports.push(port);
        }
        let group = Self {
            nodes: vec![primary, replica],
            sentinel_ports,
            sentinels,
            _dir: dir,
        };
        // Every sentinel knows the replica and the other sentinels: a failover can happen.
        for &port in &group.sentinel_ports {
            super::wait_until("the sentinels to find each other and the replica", || {
                let info = sentinel_command(port, &format!("SENTINEL MASTER {SERVICE}"));
                field(&info, "num-other-sentinels") == Some("2")
                    && field(&info, "num-slaves") == Some("1")
            });
        }
        group
    }

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/rustforge`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinel_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+sentinel://{}/{SERVICE}", hosts.join(","))
    }

    /// The port of the primary the sentinels name now.
    pub fn primary_port(&self) -> u16 {
        let reply = sentinel_command(
            self.sentinel_ports[0],
            &format!("SENTINEL GET-MASTER-ADDR-BY-NAME {SERVICE}"),
        );
        reply
            .lines()
            .filter_map(|l| l.parse::<u16>().ok())
            .next()
            .unwrap_or_else(|| panic!("no primary address in {reply:?}"))
    }

    /// Waits (up to 30 s) until the sentinels name a primary other than `old` and it answers as
    /// a master; its port.
    pub fn wait_for_failover_from(&self, old: u16) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let port = self.primary_port();
            if port != old
                && raw_command(port, "ROLE").is_ok()
                && raw_command(port, "INFO replication").is_ok_and(|i| i.contains("role:master"))
            {
                return port;
            }
            assert!(
                Instant::now() < deadline,
                "no failover within 30 s (primary still {port})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the node that is not the primary replicates it with its link up (after a
    /// restart, the sentinels reconfigure a returning node as a replica).
    pub fn wait_for_replica(&self) {
        let primary = self.primary_port();
        let replica = self
            .nodes
            .iter()
            .map(RedisServer::port)
            .find(|&p| p != primary);
        let replica = replica.expect("two nodes");
        super::wait_until("the replica to follow the primary", || {
            raw_command(replica, "INFO replication").is_ok_and(|info| {
                info.contains(&format!("master_port:{primary}"))
                    && info.contains("master_link_status:up")
            })
        });
    }

    /// Makes the node on `port` (restarted, or resumed after a freeze) a replica of the current
    /// primary, as the sentinels would when they next look at it, and waits until it follows.
    pub fn rejoin(&self, port: u16) {
        let primary = self.primary_port();
        let reply = raw_command(port, &format!("REPLICAOF 127.0.0.1 {primary}"));
        assert_eq!(reply.unwrap(), "+OK");
        self.wait_for_replica();
    }

    /// Whether every sentinel sees the primary up (no subjective or objective down flag).
    pub fn primary_up(&self) -> bool {
        self.sentinel_ports.iter().all(|&port| {
            let info = sentinel_command(port, &format!("SENTINEL MASTER {SERVICE}"));
            field(&info, "flags").is_some_and(|flags| !flags.contains("down"))
        })
    }

    /// The node (primary or replica) listening on `port`.
    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        for child in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts one sentinel (its config file is its own: sentinels rewrite it); `None` when it did
/// not come up on the chosen port.
fn start_sentinel(dir: &TempDir, n: usize, primary: u16) -> Option<(u16, Child)> {
    let port = super::free_port();
    let conf = dir.path().join(format!("sentinel-{n}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\n\
             sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n\
             sentinel down-after-milliseconds {SERVICE} 1000\n\
             sentinel failover-timeout {SERVICE} 5000\n\
             sentinel parallel-syncs {SERVICE} 1\n",
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let child = Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run redis-server --sentinel ({e}): install redis-server (scripts/test.sh does)")
        });
    super::redis::started(child, || {
        raw_command(port, "PING").is_ok_and(|r| r == "+PONG")
    })
    .map(|child| (port, child))
}

/// A sentinel command's reply through `redis-cli` (its replies are arrays and maps, which
/// [`raw_command`] does not read whole).
fn sentinel_command(port: u16, command: &str) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(command.split_whitespace())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): install redis-tools"))
}

/// The value after the line `name` in redis-cli's flat rendering of a map.
fn field<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    let mut lines = reply.lines();
    lines.find(|l| *l == name)?;
    lines.next()
}

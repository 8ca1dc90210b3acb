//! Real `redis-server` processes on free loopback ports: a single node that can be stopped and
//! restarted for fault tests, and a 3-master cluster, each also TLS-only with the certificates of
//! a [`TestPki`]. Killed on drop. A missing `redis-server` fails the test with an install hint —
//! it never skips.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::tls::TestPki;

const INSTALL_HINT: &str = "redis-server (>= 7.0) is required by the tests: install it with \
     `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis`, or run scripts/test.sh \
     which installs it";

/// How a server listens: plain TCP, or TLS only with the PKI's server certificate.
#[derive(Clone, Debug)]
pub enum Listen {
    Plain,
    Tls {
        /// `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`.
        files: Vec<PathBuf>,
        /// Whether clients must present a certificate signed by the CA.
        client_auth: bool,
    },
}

impl Listen {
    /// TLS with `pki`'s server certificate.
    pub fn tls(pki: &TestPki, client_auth: bool) -> Self {
        Self::Tls {
            files: [
                "ca.pem",
                "server.pem",
                "server.key",
                "client.pem",
                "client.key",
            ]
            .iter()
            .map(|f| pki.path(f))
            .collect(),
            client_auth,
        }
    }

    fn args(&self, port: u16) -> Vec<String> {
        match self {
            Self::Plain => vec!["--port".into(), port.to_string()],
            Self::Tls { files, client_auth } => {
                let mut args = vec!["--port".into(), "0".into(), "--tls-port".into()];
                args.push(port.to_string());
                for (flag, file) in [
                    ("--tls-ca-cert-file", &files[0]),
                    ("--tls-cert-file", &files[1]),
                    ("--tls-key-file", &files[2]),
                ] {
                    args.push(flag.into());
                    args.push(file.display().to_string());
                }
                args.push("--tls-auth-clients".into());
                args.push(if *client_auth { "yes" } else { "no" }.into());
                args
            }
        }
    }

    /// `redis-cli`'s connection arguments (TLS with the client certificate).
    fn cli_args(&self) -> Vec<String> {
        match self {
            Self::Plain => Vec::new(),
            Self::Tls { files, .. } => vec![
                "--tls".into(),
                "--cacert".into(),
                files[0].display().to_string(),
                "--cert".into(),
                files[3].display().to_string(),
                "--key".into(),
                files[4].display().to_string(),
            ],
        }
    }

    /// Whether the server on `port` answers PING.
    fn pings(&self, port: u16) -> bool {
        match self {
            Self::Plain => raw_command(port, "PING").is_ok_and(|r| r == "+PONG"),
            // A TLS port answers redis-cli only; a missing redis-cli fails, never skips.
            Self::Tls { .. } => match Command::new("redis-cli")
                .args(self.cli_args())
                .args(["-p", &port.to_string(), "PING"])
                .output()
            {
                Ok(o) => String::from_utf8_lossy(&o.stdout).trim() == "PONG",
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
                Err(_) => false,
            },
        }
    }
}

fn spawn_redis(port: u16, listen: &Listen, dir: &Path, extra: &[String]) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args(listen.args(port))
        .args(["--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Sends one inline command with the RESP protocol and returns the raw first reply line (or the
/// whole bulk string for `$` replies).
pub fn raw_command(port: u16, command: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if let Some(len) = line.strip_prefix('$') {
        let len: usize = len.trim().parse().unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        return Ok(String::from_utf8_lossy(&body).into_owned());
    }
    Ok(line.trim_end().to_owned())
}

/// One `redis-server` on a free port.
pub struct RedisServer {
    port: u16,
    listen: Listen,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a fresh server (retrying with another port if the chosen one was taken).
    pub fn start() -> Self {
        Self::start_with(Listen::Plain)
    }

    /// Starts a fresh TLS-only server with `pki`'s certificates.
    pub fn start_tls(pki: &TestPki, client_auth: bool) -> Self {
        Self::start_with(Listen::tls(pki, client_auth))
    }

    fn start_with(listen: Listen) -> Self {
        for _ in 0..5 {
            let mut server = Self {
                port: super::free_port(),
                listen: listen.clone(),
                dir: tempfile::tempdir().unwrap(),
                child: None,
            };
            if server.try_start() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    fn try_start(&mut self) -> bool {
        let mut child = match spawn_redis(self.port, &self.listen, self.dir.path(), &[]) {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(e) => panic!("cannot spawn redis-server: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.listen.pings(self.port) {
                self.child = Some(child);
                return true;
            }
            if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false; // port taken, most likely
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `redis://127.0.0.1:PORT` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = match self.listen {
            Listen::Plain => "redis",
            Listen::Tls { .. } => "rediss",
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (connections drop at once, as in a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` to the server: SIGSTOP freezes it as a hung host would (connections
    /// stay open, nothing answers), SIGCONT resumes it.
    pub fn signal(&self, signal: rustix::process::Signal) {
        use rustix::process::{Pid, kill_process};
        let child = self.child.as_ref().expect("the server is running");
        let pid = Pid::from_raw(child.id() as i32).expect("a child's pid");
        kill_process(pid, signal).expect("signal sent");
    }

    /// Starts the server again on the same port, with no data: it saves nothing itself, and
    /// the snapshot a replica received from its primary is removed (it would be loaded).
    pub fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(self.dir.path().join("dump.rdb"));
        super::wait_until("the old server's port to be free", || {
            std::net::TcpListener::bind(("127.0.0.1", self.port)).is_ok()
        });
        assert!(
            self.try_start(),
            "redis-server did not restart on port {}",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Redis the suite uses for plain (non-fault) tests: `REDIS_URL` when set, otherwise a fresh
/// server. Keep the returned server alive for as long as the URL is used.
pub fn shared_or_spawn() -> (Option<RedisServer>, String) {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => (None, url),
        _ => {
            let server = RedisServer::start();
            let url = server.url();
            (Some(server), url)
        }
    }
}

/// Starts one cluster-enabled node on a free port pair; `None` when it did not come up (most
/// likely a port taken between choosing and binding it), so the caller tries other ports.
fn start_cluster_node(dir: &Path, listen: &Listen) -> Option<(u16, Child)> {
    let (port, bus) = (super::free_port(), super::free_port());
    let mut extra = vec![
        "--cluster-enabled".to_owned(),
        "yes".to_owned(),
        "--cluster-port".to_owned(),
        bus.to_string(),
        "--cluster-config-file".to_owned(),
        format!("nodes-{port}.conf"),
        "--cluster-node-timeout".to_owned(),
        "2000".to_owned(),
    ];
    if let Listen::Tls { .. } = listen {
        // The cluster bus and replication over TLS as well, as a TLS-only deployment runs.
        extra.extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from));
    }
    let child = match spawn_redis(port, listen, dir, &extra) {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
        Err(e) => panic!("cannot spawn redis-server: {e}"),
    };
    started(child, || listen.pings(port)).map(|child| (port, child))
}

/// `child` once `up` says it serves (within 5 s); `None`, with the child killed, when it exited
/// first (a port taken between choosing and binding it) or did not come up in time.
pub fn started(mut child: Child, up: impl Fn() -> bool) -> Option<Child> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if up() {
            return Some(child);
        }
        if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A 3-master Redis Cluster on free ports (client and bus ports chosen explicitly with
/// `--cluster-port`, so ephemeral ports never overflow `port + 10000`).
pub struct RedisCluster {
    ports: Vec<u16>,
    listen: Listen,
    children: Vec<Child>,
    _dir: TempDir,
}

impl RedisCluster {
    /// Sends `signal` to every node (SIGSTOP freezes the whole cluster, SIGCONT resumes it).
    pub fn signal(&self, signal: rustix::process::Signal) {
        use rustix::process::{Pid, kill_process};
        for child in &self.children {
            let pid = Pid::from_raw(child.id() as i32).expect("a child's pid");
            kill_process(pid, signal).expect("signal sent");
        }
    }

    /// Starts the three nodes, joins them with `redis-cli --cluster create` and waits for
    /// `cluster_state:ok` on every node.
    pub fn start() -> Self {
        Self::start_with(Listen::Plain)
    }

    /// The same cluster, TLS-only (client port, bus and replication) with `pki`'s certificates.
    pub fn start_tls(pki: &TestPki) -> Self {
        Self::start_with(Listen::tls(pki, false))
    }

    fn start_with(listen: Listen) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        let mut children = Vec::new();
        for i in 0..3 {
            let node_dir = dir.path().join(format!("n{i}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let (port, child) = (0..5)
                .find_map(|_| start_cluster_node(&node_dir, &listen))
                .expect("a cluster node did not start on any of 5 free port pairs");
            children.push(child);
            ports.push(port);
        }
        let cluster = Self {
            ports,
            listen,
            children,
            _dir: dir,
        };
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let status = Command::new("redis-cli")
            .args(cluster.listen.cli_args())
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}); {INSTALL_HINT}"));
        assert!(status.success(), "redis-cli --cluster create failed");
        for &port in &cluster.ports {
            super::wait_until("cluster_state:ok", || {
                cluster
                    .command(port, "CLUSTER INFO")
                    .contains("cluster_state:ok")
            });
        }
        cluster
    }

    /// One command to the node on `port` through `redis-cli` (over TLS on a TLS cluster); its
    /// output.
    pub fn command(&self, port: u16, command: &str) -> String {
        let output = Command::new("redis-cli")
            .args(self.listen.cli_args())
            .args(["-p", &port.to_string()])
            .args(command.split_whitespace())
            .output();
        output.map_or_else(
            |_| String::new(),
            |o| String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let scheme = match self.listen {
            Listen::Plain => "redis+cluster",
            Listen::Tls { .. } => "rediss+cluster",
        };
        format!("{scheme}://{}", nodes.join(","))
    }

    /// The client ports of the three masters.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

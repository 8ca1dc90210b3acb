//! A private PostgreSQL server for the tests that stop and restart it: `initdb` into a
//! temporary directory, `postgres` on a free loopback port (as the `postgres` user when the
//! tests run as root, which PostgreSQL requires).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const INSTALL_HINT: &str = "PostgreSQL's server binaries are required by this test: install \
     Debian's `postgresql` package or run scripts/test.sh, which installs it";

/// One PostgreSQL server of our own.
pub struct PgServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

/// The newest `/usr/lib/postgresql/<version>/bin`, or the `PATH` when there is none.
fn bin(name: &str) -> PathBuf {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|dirs| {
            dirs.flatten()
                .filter_map(|d| d.file_name().to_str()?.parse::<u32>().ok())
                .max()
        });
    match newest {
        Some(version) => PathBuf::from(format!("/usr/lib/postgresql/{version}/bin/{name}")),
        None => PathBuf::from(name),
    }
}

/// The uid and gid of the `postgres` user, when we are root (PostgreSQL refuses to run as root).
fn postgres_user() -> Option<(u32, u32)> {
    if rustix::process::getuid().as_raw() != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
}

fn command(name: &str) -> Command {
    let mut command = Command::new(bin(name));
    if let Some((uid, gid)) = postgres_user() {
        command.uid(uid).gid(gid);
    }
    command.stdout(Stdio::null()).stderr(Stdio::null());
    command
}

impl PgServer {
    /// A fresh cluster, started.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        if let Some((uid, gid)) = postgres_user() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let status = command("initdb")
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .status()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"));
        assert!(status.success(), "initdb failed");
        let mut server = Self {
            port: super::free_port(),
            dir,
            child: None,
        };
        server.restart();
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port (also used before the server first starts, to test a database that is down).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A fast shutdown (SIGINT: clients are disconnected, open transactions rolled back), as
    /// an operator's restart does; returns once it has exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data; returns once it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let child = command("postgres")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "fsync=off"])
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = Command::new(bin("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

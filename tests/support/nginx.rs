//! The deployment kit's nginx config (`examples/deploy/nginx/rustforge.conf`) run for real: the
//! file unchanged but for its upstream servers and listen port, inside a minimal main config
//! with its own prefix directory, started as `nginx -g 'daemon off;'`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const HINT: &str = "needs nginx (Debian: apt-get install nginx-light; scripts/test.sh installs it)";

/// A running nginx; stopped when dropped.
pub struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// The kit's config with `upstreams` for its `server appN:3000` lines and `port` for `listen 80`.
pub fn kit_config(upstreams: &[u16], port: u16) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/nginx/rustforge.conf");
    let kit = std::fs::read_to_string(&path).unwrap();
    let mut servers = upstreams.iter();
    let mut listens = 0;
    let mut out = String::new();
    for line in kit.lines() {
        let host = line.split_whitespace().nth(1).unwrap_or_default();
        if line.trim_start().starts_with("server app") && host.ends_with(":3000") {
            let port = servers.next().expect("a port for each `server appN` line");
            out.push_str(&line.replacen(host, &format!("127.0.0.1:{port}"), 1));
        } else if line.trim() == "listen 80;" {
            out.push_str(&format!("    listen 127.0.0.1:{port};"));
            listens += 1;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    let servers = upstreams.len() - servers.len();
    assert_eq!(
        (servers, listens),
        (2, 1),
        "{}: expected two `server appN:3000` lines and one `listen 80;`",
        path.display()
    );
    out
}

/// The `events { … }` block of the kit's main config (`examples/deploy/nginx/nginx.conf`).
fn kit_events() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/nginx/nginx.conf");
    let main = std::fs::read_to_string(&path).unwrap();
    let start = main
        .find("events {")
        .expect("an events block in the kit's nginx.conf");
    let end = start + main[start..].find('}').expect("the events block is closed") + 1;
    main[start..end].to_owned()
}

/// The main config around `site`, with the kit's `events` block: everything nginx writes stays
/// under `dir` (the rest of the kit's main config names system paths).
fn main_config(dir: &Path, site: &str) -> String {
    let d = dir.display();
    let events = kit_events();
    format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log stderr warn;\n\
         {events}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         {site}}}\n"
    )
}

fn nginx() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("nginx not found: {HINT}"))
}

/// `nginx -t` on the kit's config: its output when nginx rejects it.
pub fn test_config(upstreams: &[u16]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(dir.path(), upstreams, super::free_port());
    let out = command(dir.path(), &conf)
        .arg("-t")
        .output()
        .unwrap_or_else(|e| panic!("cannot run nginx ({e}): {HINT}"));
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// nginx with its prefix directory `dir`, the config `conf` and its errors on stderr.
fn command(dir: &Path, conf: &Path) -> Command {
    let mut command = Command::new(nginx());
    command
        .args(["-e", "stderr", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(conf);
    command
}

fn write_config(dir: &Path, upstreams: &[u16], port: u16) -> PathBuf {
    // Workers run as another user when the test runs as root: they need to reach the temp paths.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, main_config(dir, &kit_config(upstreams, port))).unwrap();
    conf
}

impl Nginx {
    /// Starts nginx on a free loopback port in front of `upstreams` (ports on 127.0.0.1).
    /// Retries on another port when nginx exits at start (its port taken meanwhile).
    pub fn start(upstreams: &[u16]) -> Self {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = super::free_port();
            let conf = write_config(dir.path(), upstreams, port);
            let mut child = command(dir.path(), &conf)
                .args(["-g", "daemon off;"])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run nginx ({e}): {HINT}"));
            let mut exited = false;
            super::wait_until(&format!("nginx to listen on {port}"), || {
                exited = child.try_wait().unwrap().is_some();
                exited || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            if !exited {
                return Self {
                    child,
                    port,
                    _dir: dir,
                };
            }
        }
        panic!("nginx did not start on any of 5 free ports");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}

impl Drop for Nginx {
    /// SIGTERM, not SIGKILL: the master process then stops its workers (a killed master would
    /// leave them running, holding the port).
    fn drop(&mut self) {
        use rustix::process::{Pid, Signal, kill_process};
        let pid = Pid::from_raw(self.child.id() as i32).expect("a child's pid");
        if kill_process(pid, Signal::TERM).is_err() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

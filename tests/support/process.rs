//! An example binary as a user runs it: a real process, configured by the environment, spoken to
//! over loopback, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::example;

/// A running example; killed when dropped.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line `wait_for_line` has read, matched or not.
    read: std::sync::Mutex<Vec<String>>,
    pub port: u16,
}

impl Running {
    /// Starts `name` on a port the kernel picks (`PORT=0`), read back from its "listening on"
    /// line: a port chosen beforehand can be taken by another test's connection before the
    /// server binds it.
    pub fn start(name: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(Command::new(example(name)), 0, env)
    }

    /// Like [`start`](Self::start) on a given port (a server restarted where it was).
    pub fn start_on(name: &str, port: u16, env: &[(&str, &str)]) -> Self {
        Self::spawn(Command::new(example(name)), port, env)
    }

    /// Like [`start`](Self::start), with the open-file limit set to `soft`:`hard` (through
    /// util-linux's `prlimit`), as a shell or a container runtime may start it.
    pub fn start_with_open_files(name: &str, soft: u64, hard: u64, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={soft}:{hard}"))
            .arg("--")
            .arg(example(name));
        Self::spawn(command, 0, env)
    }

    fn spawn(mut command: Command, port: u16, env: &[(&str, &str)]) -> Self {
        let mut child = command
            .env_clear()
            .env("PORT", port.to_string())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Both streams are read to the end (a pipe nobody reads blocks a chatty child once
        // its buffer is full), their lines in one channel.
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        forward(stdout, tx.clone());
        forward(stderr, tx);
        let mut running = Self {
            child,
            lines,
            read: Default::default(),
            port,
        };
        let line = running.wait_for_line(|l| l.contains("listening on http://"));
        running.port = listening_port(&line);
        assert!(port == 0 || running.port == port, "{line}");
        running
    }

    /// Reads output lines until one matches `pred`; fails showing every line read (a closed
    /// channel means the process ended: its last lines say why).
    pub fn wait_for_line(&self, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let line = match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => line,
                Err(e) => panic!(
                    "no expected output line ({e}); lines read: {:#?}",
                    self.lines_read()
                ),
            };
            self.read.lock().unwrap().push(line.clone());
            if pred(&line) {
                return line;
            }
        }
    }

    /// The output lines [`wait_for_line`](Self::wait_for_line) has read so far, from the first.
    pub fn lines_read(&self) -> Vec<String> {
        self.read.lock().unwrap().clone()
    }

    /// The output lines not read yet.
    pub fn output(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// The soft and hard open-file limits of the process, from `/proc/<pid>/limits`.
    pub fn open_file_limits(&self) -> (u64, u64) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).unwrap();
        let line = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .expect("Max open files in /proc/<pid>/limits");
        let mut numbers = line.split_whitespace().map(|n| n.parse().unwrap());
        (numbers.next().unwrap(), numbers.next().unwrap())
    }

    /// Sends SIGTERM (through the kill(2) call, not a `kill` binary).
    pub fn sigterm(&self) {
        use rustix::process::{Pid, Signal, kill_process};
        let pid = Pid::from_raw(self.child.id() as i32).expect("a child pid");
        kill_process(pid, Signal::TERM).expect("SIGTERM sent");
    }

    /// Sends SIGTERM and expects a clean exit.
    pub fn terminate(self) {
        self.sigterm();
        self.wait_for_clean_exit();
    }

    /// Waits (10 s at most) for the process to exit with success; returns every line it wrote,
    /// from the first.
    pub fn wait_for_clean_exit(mut self) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status}");
                let mut lines = self.lines_read();
                // The reader ends at the process's end of output.
                lines.extend(self.lines.iter());
                return lines;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in a "listening on http://ADDR:PORT" line (plain text or a JSON log line).
fn listening_port(line: &str) -> u16 {
    let (_, rest) = line.split_once("listening on http://").unwrap();
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    let port = addr.rsplit(':').next().unwrap();
    port.parse()
        .unwrap_or_else(|e| panic!("no port in {line:?}: {e}"))
}

/// Sends each line `stream` yields to `tx`; after the receiver is gone, reads on and drops them.
fn forward(stream: impl std::io::Read + Send + 'static, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
}

//! promtool, Prometheus' own checker, on a `/metrics` text.

use std::io::Write;
use std::process::{Command, Stdio};

const PROMTOOL_HINT: &str = "promtool is required by this test: install Debian's `prometheus` \
     package (`apt-get install prometheus`) or run scripts/test.sh, which installs it";

/// `promtool check metrics` accepts `text` (lint included); panics with its findings otherwise.
pub fn check_metrics(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PROMTOOL_HINT} ({e})"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

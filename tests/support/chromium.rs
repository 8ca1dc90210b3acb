//! Headless Chromium for the browser tests: load a page, let its script run, and take the text
//! it wrote into its `<pre id="out">` element, which the page itself sends back ([`report`]).

const INSTALL_HINT: &str = "headless Chromium is required by this test: install it with \
     `apt-get install chromium` (Debian) or run scripts/test.sh, which installs it";

fn chromium() -> &'static str {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

/// The value a page wrote as `name=value` on a line of its results.
pub fn outcome<'a>(results: &'a str, name: &str) -> &'a str {
    results
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("case {name} missing from the page's results:\n{results}"))
}

/// The JavaScript statement a page ends its script with to send its `<pre id="out">` text to
/// [`report`]'s route.
pub const REPORT: &str =
    "fetch('/__report', { method: 'POST', body: document.getElementById('out').textContent })";

/// A page that reports its results itself instead of being read from the DOM: Chromium's
/// `--dump-dom` comes when the virtual-time budget has run, and virtual time runs on while a
/// request is in flight, so a late request of a slow run could be cut off (seen on a loaded
/// machine: the DOM dumped while a POST was pending). Merge the router into the page's app, end
/// the page's script with [`REPORT`], and [`Report::run`] the page.
pub fn report<S: Clone + Send + Sync + 'static>() -> (axum::Router<S>, Report) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let router = axum::Router::new().route(
        "/__report",
        axum::routing::post(move |body: String| async move {
            let _ = tx.send(body);
            ""
        }),
    );
    (router, Report { rx })
}

/// What a reporting page sent (see [`report`]).
pub struct Report {
    rx: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Report {
    /// Opens `url` in headless Chromium (a fresh profile) and returns what the page reported,
    /// waiting up to 60 s of real time; then closes Chromium.
    pub async fn run(mut self, url: String) -> String {
        let profile = tempfile::tempdir().unwrap();
        let mut browser = tokio::process::Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e}); {INSTALL_HINT}", chromium()));
        let wait = std::time::Duration::from_secs(60);
        tokio::select! {
            report = tokio::time::timeout(wait, self.rx.recv()) => {
                let _ = browser.kill().await;
                report
                    .expect("the page reported within 60 s")
                    .expect("the report route is alive")
            }
            status = browser.wait() => {
                let mut stderr = String::new();
                if let Some(mut err) = browser.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = err.read_to_string(&mut stderr).await;
                }
                panic!("Chromium exited ({status:?}) before the page reported:\n{stderr}");
            }
        }
    }
}

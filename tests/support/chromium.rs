//! Headless Chromium for the browser tests: load a page, let its script run, read back the text
//! it wrote into its `<pre id="out">` element.

use std::process::Command;

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

/// What a page loaded from `url` wrote into its `<pre id="out">` element, once its script ran
/// (up to 10 s of the page's virtual time), in a fresh profile; panics with Chromium's stderr
/// when the page has no such element.
pub async fn run_page(url: String) -> String {
    let browser = chromium();
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::task::spawn_blocking({
        let profile = profile.path().to_owned();
        move || {
            Command::new(browser)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--virtual-time-budget=10000",
                    "--dump-dom",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(url)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {browser} ({e}); {INSTALL_HINT}"))
        }
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    results(&dom)
        .unwrap_or_else(|| {
            panic!(
                "no result element in the page:\n{dom}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
        .to_owned()
}

/// The text of the page's `<pre id="out">` result element (not the page's script, which may
/// name the same words).
fn results(dom: &str) -> Option<&str> {
    let open = r#"<pre id="out">"#;
    let start = dom.find(open)? + open.len();
    let end = dom[start..].find("</pre>")?;
    Some(&dom[start..start + end])
}

/// The value a page wrote as `name=value` on a line of its results.
pub fn outcome<'a>(results: &'a str, name: &str) -> &'a str {
    results
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("case {name} missing from the page's results:\n{results}"))
}

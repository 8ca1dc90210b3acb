//! The environment table is declared once, by the modules; the README's table and
//! `docs/environment.md` (which the `config` rustdoc includes) are generated from it.
//!
//! After adding or changing a variable: `UPDATE_ENV_DOCS=1 cargo test --all-features --test env_table`.

use rustforge_prod::config::{self, EnvVar, FEATURE_VARS};

const README_START: &str =
    "<!-- env-table:start (generated from the modules' tables: see tests/env_table.rs) -->\n";
const README_END: &str = "<!-- env-table:end -->";

fn table(vars: &[EnvVar]) -> String {
    let mut out = String::from("| variable | meaning | default |\n|---|---|---|\n");
    for var in vars {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            var.name, var.doc, var.default
        ));
    }
    out
}

fn environment_md(vars: &[EnvVar]) -> String {
    format!(
        "# Environment variables

`Config::from_env()` (or `ProductionLayer::builder().from_env()?`) reads these on top of the
defaults. Every bad value is a `ConfigError` naming the variable and the value; a `RUSTFORGE_*`
variable that is not in this table is an error too, so a typo never silently falls back to a
default; and a variable of a feature this build does not have is an error naming the feature.

{}
Booleans accept `true/false`, `1/0`, `yes/no`, `on/off`. Durations use humantime syntax
(`500ms`, `30s`, `2m`); sizes accept `2MiB`, `512KB` or plain bytes.

This page is generated from the tables the modules declare
(`UPDATE_ENV_DOCS=1 cargo test --all-features --test env_table`); edit those, not this page.
",
        table(vars)
    )
}

/// Compares `actual` with `expected`; when they differ and `UPDATE_ENV_DOCS` is set, rewrites
/// `path` — and fails all the same, so that a run that had to rewrite a page never passes (CI
/// with the variable set would otherwise go green on stale docs).
fn check(path: &str, actual: &str, expected: &str, whole: String) {
    if actual == expected {
        return;
    }
    if std::env::var_os("UPDATE_ENV_DOCS").is_some() {
        std::fs::write(path, whole).unwrap();
        panic!(
            "{path} was out of step and has been rewritten: review and commit it, then run again"
        );
    }
    panic!(
        "{path} is out of step with the modules' environment tables; regenerate it with \
         UPDATE_ENV_DOCS=1 cargo test --all-features --test env_table"
    );
}

#[test]
fn docs_environment_md_is_generated_from_the_tables() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/environment.md");
    let expected = environment_md(&config::env_vars());
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    check(path, &actual, &expected, expected.clone());
}

#[test]
fn readme_table_is_generated_from_the_tables() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme
        .find(README_START)
        .expect("README has the env-table start marker")
        + README_START.len();
    let end = readme
        .find(README_END)
        .expect("README has the env-table end marker");
    let expected = table(&config::env_vars());
    let whole = format!("{}{}{}", &readme[..start], expected, &readme[end..]);
    check(path, &readme[start..end], &expected, whole);
}

#[test]
fn every_variable_is_declared_once_with_docs() {
    let vars = config::env_vars();
    let mut names: Vec<_> = vars.iter().map(|v| v.name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "a variable is declared twice");
    for var in &vars {
        assert!(
            !var.doc.is_empty() && !var.default.is_empty(),
            "{var:?} lacks docs"
        );
    }
}

#[test]
fn the_feature_lists_match_the_features_tables() {
    // With every feature on, each variable with a config key belongs to exactly one feature's
    // list, or to the crate itself (logging, the server, shutdown, exporter choice).
    let crate_own = [
        "RUST_LOG",
        "RUSTFORGE_LOG_FORMAT",
        "RUSTFORGE_SHUTDOWN_DRAIN",
        "OTEL_METRICS_EXPORTER",
        "OTEL_TRACES_EXPORTER",
        // Also read by sqlx's CLI, migration tools and the app itself: in a build without
        // `sqlx-postgres` it is someone else's variable, not a request for the feature.
        "DATABASE_URL",
    ];
    let mut listed: Vec<&str> = FEATURE_VARS
        .iter()
        .flat_map(|(_, names)| names.iter().copied())
        .collect();
    listed.sort_unstable();
    let mut declared: Vec<&str> = config::env_vars()
        .into_iter()
        .filter(|v| !v.key.is_empty() && !crate_own.contains(&v.name))
        .filter(|v| !v.key.starts_with("server."))
        .map(|v| v.name)
        .collect();
    declared.sort_unstable();
    assert_eq!(listed, declared);
}

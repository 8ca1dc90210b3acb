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

/// Variables that set no limit: where things are, who the app is, formats and algorithms —
/// each with why it is not a row of docs/security.md. Every other variable must be there.
const NOT_LIMITS: &[(&str, &str)] = &[
    ("RUST_LOG", "log filter"),
    ("RUSTFORGE_LOG_FORMAT", "log format"),
    ("OTEL_METRICS_EXPORTER", "exporter choice"),
    ("OTEL_TRACES_EXPORTER", "exporter choice"),
    ("RUSTFORGE_COMPRESSION", "response encoding"),
    ("RUSTFORGE_COMPRESSION_LEVEL", "response encoding"),
    ("RUSTFORGE_COMPRESSION_MIN_SIZE", "response encoding"),
    ("RUSTFORGE_METRICS", "whether /metrics exists"),
    ("RUSTFORGE_METRICS_PATH", "an address"),
    ("RUSTFORGE_METRICS_PORT", "an address"),
    ("OTEL_SERVICE_NAME", "identity"),
    ("OTEL_RESOURCE_ATTRIBUTES", "identity"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "an address"),
    ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "an address"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "an address"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "wire format"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "collector credentials"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "push schedule"),
    ("OTEL_TRACES_SAMPLER", "sampling"),
    ("RUSTFORGE_HEALTH_DISK_PATH", "what a check watches"),
    (
        "RUSTFORGE_HEALTH_DISK_WARN",
        "a check's threshold, not a limit on clients",
    ),
    (
        "RUSTFORGE_HEALTH_DISK_FAIL",
        "a check's threshold, not a limit on clients",
    ),
    (
        "RUSTFORGE_HEALTH_MEMORY_WARN",
        "a check's threshold, not a limit on clients",
    ),
    (
        "RUSTFORGE_HEALTH_MEMORY_FAIL",
        "a check's threshold, not a limit on clients",
    ),
    ("RUSTFORGE_HEALTH_REDIS_READINESS", "what readiness means"),
    ("RUSTFORGE_RATE_LIMIT_ALGORITHM", "algorithm"),
    ("RUSTFORGE_RATE_LIMIT_KEY", "what a client is"),
    ("RUSTFORGE_RATE_LIMIT_STORE", "backend choice"),
    ("RUSTFORGE_RATE_LIMIT_HEADERS", "header format"),
    ("PUSHER_APP_ID", "identity"),
    ("PUSHER_APP_KEY", "identity"),
    ("RUSTFORGE_BROADCAST_STORE", "backend choice"),
    ("RUSTFORGE_BROADCAST_WEBHOOK_URL", "an address"),
    ("RUSTFORGE_STORAGE_DISK", "backend choice"),
    ("RUSTFORGE_STORAGE_ROOT", "an address"),
    ("RUSTFORGE_STORAGE_PUBLIC_URL", "an address"),
    ("RUSTFORGE_APP_URL", "an address"),
    ("AWS_BUCKET", "an address"),
    ("AWS_REGION", "an address"),
    ("AWS_ENDPOINT", "an address"),
    ("AWS_ACCESS_KEY_ID", "credentials of the store"),
    ("AWS_SECRET_ACCESS_KEY", "credentials of the store"),
    ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "URL form"),
    ("RUSTFORGE_CACHE_STORE", "backend choice"),
    ("RUSTFORGE_CACHE_PREFIX", "key naming"),
    ("RUSTFORGE_CACHE_HEALTH_CHECK", "whether a check exists"),
    (
        "RUSTFORGE_CACHE_FLUSH_CHECK",
        "how soon another server sees a flush, not a bound on clients",
    ),
    ("RUSTFORGE_SESSION_STORE", "backend choice"),
    ("RUSTFORGE_SESSION_COOKIE", "cookie name"),
    ("DATABASE_URL", "an address"),
    ("RUSTFORGE_DB_MIN_CONNECTIONS", "a floor, not a limit"),
    ("RUSTFORGE_DB_APPLICATION_NAME", "identity"),
    ("RUSTFORGE_DB_READINESS", "what readiness means"),
    ("REDIS_URL", "an address (TLS in it: a row)"),
    ("RUSTFORGE_REDIS_PREFIX", "key naming"),
    (
        "RUSTFORGE_REDIS_SENTINEL_USERNAME",
        "credentials of the store",
    ),
    (
        "RUSTFORGE_REDIS_SENTINEL_PASSWORD",
        "credentials of the store",
    ),
];

/// The variables docs/security.md's limit tables name: full names, `PREFIX_*` groups, and `_SUFFIX`
/// shorthands after a full name on the same line (`RUSTFORGE_REDIS_CONNECT_TIMEOUT`,
/// `_COMMAND_TIMEOUT`), resolved against `declared`. A name that resolves to no variable fails.
fn named_in_security_md(declared: &[&'static str]) -> Vec<&'static str> {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md")).unwrap();
    let looks_like_var = |name: &str| {
        [
            "RUSTFORGE_",
            "REDIS_",
            "OTEL_",
            "PUSHER_",
            "AWS_",
            "DATABASE_",
            "RUST_LOG",
        ]
        .iter()
        .any(|p| name.starts_with(p))
    };
    // The limit tables: the fuzzing report after them names variables for other reasons.
    let tables = page.split("## Fuzzed parsers").next().unwrap();
    let mut named = Vec::new();
    for line in tables.lines().filter(|l| l.starts_with('|')) {
        let mut previous: Option<&str> = None;
        for (i, token) in line.split('`').enumerate() {
            if i % 2 == 0 || token.contains(' ') {
                continue;
            }
            if let Some(group) = token.strip_suffix('*').filter(|g| looks_like_var(g)) {
                let members: Vec<_> = declared.iter().filter(|v| v.starts_with(group)).collect();
                assert!(
                    !members.is_empty(),
                    "docs/security.md: {token} names nothing"
                );
                named.extend(members.into_iter().copied());
            } else if looks_like_var(token) {
                let var = declared.iter().find(|v| **v == token);
                named.push(*var.unwrap_or_else(|| panic!("docs/security.md: no {token}")));
                previous = Some(token);
            } else if let (Some(suffix), Some(full)) = (token.strip_prefix('_'), previous) {
                // The suffix replaces the full name's tail: same first two words.
                let stem: Vec<&str> = full.splitn(3, '_').take(2).collect();
                let stem = stem.join("_");
                let matches: Vec<_> = declared
                    .iter()
                    .filter(|v| v.starts_with(&stem) && v.ends_with(&format!("_{suffix}")))
                    .collect();
                assert_eq!(matches.len(), 1, "docs/security.md: {token} after {full}");
                named.push(*matches[0]);
            }
        }
    }
    named
}

/// docs/security.md lists every limit the code enforces: each declared variable is named in
/// it or is one of [`NOT_LIMITS`]; and it names no variable that does not exist.
#[test]
fn security_md_names_every_limit_the_settings_tables_declare() {
    let declared: Vec<&'static str> = config::env_vars().into_iter().map(|v| v.name).collect();
    let named = named_in_security_md(&declared);
    let missing: Vec<_> = declared
        .iter()
        .filter(|v| !named.contains(v) && !NOT_LIMITS.iter().any(|(n, _)| n == *v))
        .collect();
    assert!(
        missing.is_empty(),
        "limits without a row in docs/security.md (add one, or list the variable in NOT_LIMITS \
         with why it is not a limit): {missing:?}"
    );
    for (name, why) in NOT_LIMITS {
        assert!(declared.contains(name), "NOT_LIMITS: no variable {name}");
        assert!(
            !named.contains(name),
            "{name} is in docs/security.md and in NOT_LIMITS ({why}): which is it?"
        );
    }
}

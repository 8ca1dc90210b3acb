//! The shape of the crate, checked: modules are leaves, all cross-module wiring is in one place.
//!
//! Every `crate::<name>` path in the code of `src/` (comments and docs aside) is checked against
//! the allowed list below: a feature module uses only the shared primitives, never another
//! module; the shared primitives use only each other; only the wiring (`production/`,
//! `config.rs`, `lib.rs`) connects modules. And there is no circle among modules and
//! primitives.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Shared primitives: what every module may use.
const PRIMITIVES: &[&str] = &[
    "error",
    "env",
    "util",
    "shutdown",
    "telemetry",
    "problem",
    "redis",
    "backend",
    "breaker",
];
/// Feature modules: leaves.
const MODULES: &[&str] = &[
    "middleware",
    "ratelimit",
    "broadcast",
    "health",
    "metrics",
    "storage",
    "cache",
    "session",
    "database",
    "logging",
    "otlp",
    "server",
];
/// Where modules meet.
const WIRING: &[&str] = &["production", "config", "lib"];
/// The conformance suites of `testing/` exercise the modules whose traits they test.
const TESTING_MAY_USE: &[&str] = &["ratelimit", "storage", "broadcast", "cache"];

/// The top-level module a file of `src/` belongs to.
fn owner(path: &Path, src: &Path) -> String {
    let relative = path.strip_prefix(src).unwrap();
    let first = relative
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level modules a file's code names as `crate::<name>`, also in groups that span lines
/// and nest (`crate::{a, b::{C, D}}` names `a` and `b`). Line comments are left out.
fn references(code: &str) -> BTreeSet<String> {
    let code: String = code
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            names.insert(ident(rest));
            continue;
        };
        // The group's items at depth 0, up to its closing brace.
        let (mut depth, mut item_start) = (0usize, 0usize);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    names.insert(ident(&group[item_start..i]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    names.insert(ident(&group[item_start..i]));
                    item_start = i + 1;
                }
                _ => {}
            }
        }
    }
    names.remove("");
    names
}

#[test]
fn references_are_read_from_paths_and_groups_over_several_lines() {
    let code = "use crate::redis::RedisHandle;\n\
                use crate::{\n    cache::{Cache, Ttl},\n    // crate::ignored\n    session,\n};\n\
                let x = crate::util::cause(e);";
    let found: Vec<String> = references(code).into_iter().collect();
    assert_eq!(found, ["cache", "redis", "session", "util"]);
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module each item re-exported at the crate root comes from (`Config` → `config`), read
/// from the `pub use a::{B, C};` lines of `lib.rs`.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    for line in lib.lines() {
        let Some(path) = line
            .trim()
            .strip_prefix("pub use ")
            .and_then(|p| p.strip_suffix(';'))
        else {
            continue;
        };
        let Some((module, rest)) = path.split_once("::") else {
            continue;
        };
        let rest = rest.trim_start_matches('{').trim_end_matches('}');
        for item in rest.split(',') {
            let item = item.trim().rsplit("::").next().unwrap_or("").trim();
            if !item.is_empty() {
                items.insert(item.to_owned(), module.to_owned());
            }
        }
    }
    items
}

/// owner → (referenced module → first file that references it).
fn graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let roots = root_reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let from = owner(&file, &src);
        let code = std::fs::read_to_string(&file).unwrap();
        for to in references(&code) {
            // `crate::Config` is `crate::config::Config`.
            let to = roots.get(&to).cloned().unwrap_or(to);
            if to != from {
                let shown = file.strip_prefix(&src).unwrap().display().to_string();
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert(shown);
            }
        }
    }
    graph
}

fn allowed(from: &str, to: &str) -> bool {
    if WIRING.contains(&from) {
        return true;
    }
    if from == "testing" {
        return PRIMITIVES.contains(&to) || TESTING_MAY_USE.contains(&to);
    }
    PRIMITIVES.contains(&to)
}

#[test]
fn every_file_belongs_to_a_known_place() {
    for (from, edges) in graph() {
        let known = |name: &str| {
            PRIMITIVES.contains(&name)
                || MODULES.contains(&name)
                || WIRING.contains(&name)
                || name == "testing"
        };
        assert!(
            known(&from),
            "src/{from} is in no list of tests/architecture.rs: is it a module or a shared primitive?"
        );
        for to in edges.keys() {
            assert!(
                known(to),
                "src/{from} names crate::{to}, which is in no list of tests/architecture.rs"
            );
        }
    }
}

#[test]
fn modules_are_leaves_and_primitives_use_only_primitives() {
    let mut wrong = Vec::new();
    for (from, edges) in graph() {
        for (to, file) in edges {
            if !allowed(&from, &to) {
                wrong.push(format!("src/{file} ({from}) uses crate::{to}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "modules may use only the shared primitives {PRIMITIVES:?}; connect modules in src/production/:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_circle_outside_the_wiring() {
    let graph = graph();
    // Depth-first search for a back edge among everything but the wiring.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if WIRING.contains(&node) || !done.insert(node.to_owned()) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("import circle: {}", circle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_grouped_and_inline_paths() {
    let code = "use crate::{error::ConfigError, env::parse};\nlet x = crate::metrics::SCOPE;\n// crate::broadcast in a comment\n";
    let names: Vec<_> = references(code).into_iter().collect();
    assert_eq!(names, ["env", "error", "metrics"]);
}

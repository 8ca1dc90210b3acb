//! The deployment kit's settings (`examples/deploy`) are ones the crate reads, with values it
//! accepts: the environment files of Compose and Kubernetes, the Compose file's and the AWS
//! template's variables. The kit's files are validated against their own schemas by
//! scripts/check-deploy-kit.sh, and run for real by tests/fleet.rs.

use std::collections::BTreeSet;
use std::path::Path;

use rustforge_prod::ProductionLayer;

fn kit_file(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/deploy")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `KEY=value` lines of an env file.
fn env_file(path: &str) -> Vec<(String, String)> {
    kit_file(path)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{path}: {l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Variable names that look like the crate's (or object_store's, or the example's PORT) in a
/// YAML file: `NAME:` keys (Compose) and `Name: NAME` entries (CloudFormation).
fn yaml_names(path: &str) -> BTreeSet<String> {
    let looks_like_ours = |w: &str| {
        [
            "RUSTFORGE_",
            "PUSHER_",
            "AWS_",
            "REDIS_URL",
            "DATABASE_URL",
            "PORT",
        ]
        .iter()
        .any(|p| w.starts_with(p))
            && w.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    let mut names = BTreeSet::new();
    for line in kit_file(path).lines() {
        let line = line
            .trim_start()
            .trim_start_matches("- ")
            .trim_start_matches('{');
        let key = line.split(':').next().unwrap_or_default().trim();
        if let Some(name) = line.strip_prefix("Name:") {
            let name = name.split(',').next().unwrap().trim();
            if looks_like_ours(name) {
                names.insert(name.to_string());
            }
        } else if looks_like_ours(key) {
            names.insert(key.to_string());
        }
    }
    names
}

/// Every variable of docs/environment.md (kept equal to the code by tests/env_table.rs), and
/// PORT, which the example reads itself.
fn known() -> BTreeSet<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/environment.md"))
            .unwrap();
    let mut names: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| l.split('`').next().unwrap().to_string())
        .collect();
    names.insert("PORT".into());
    names
}

fn assert_known(source: &str, names: impl IntoIterator<Item = String>) {
    let known = known();
    let unknown: Vec<String> = names.into_iter().filter(|n| !known.contains(n)).collect();
    assert!(
        unknown.is_empty(),
        "{source} sets {unknown:?}, which the crate does not read"
    );
}

fn assert_accepted(source: &str, vars: &[(String, String)]) {
    let vars = vars
        .iter()
        .filter(|(k, _)| k != "PORT")
        .map(|(k, v)| (k.as_str(), v.as_str()));
    if let Err(err) = ProductionLayer::builder().from_vars(vars) {
        panic!("{source}: {err}");
    }
}

#[test]
fn the_environment_files_hold_known_variables_with_accepted_values() {
    let mut compose = env_file("app.env");
    assert_known("app.env", compose.iter().map(|(k, _)| k.clone()));
    // The secret comes from the secret store (compose.yaml's `environment`).
    compose.push(("PUSHER_APP_SECRET".into(), "a-secret".into()));
    assert_accepted("app.env", &compose);

    let mut kubernetes = env_file("kubernetes/app.env");
    kubernetes.extend(env_file("kubernetes/secrets.env"));
    assert_known(
        "kubernetes/*.env",
        kubernetes.iter().map(|(k, _)| k.clone()),
    );
    assert_accepted("kubernetes/*.env", &kubernetes);

    // Kubernetes and AWS set at least what the Compose fleet (the tested one) sets.
    let tested: BTreeSet<String> = compose.into_iter().map(|(k, _)| k).collect();
    let on_kubernetes: BTreeSet<String> = kubernetes.into_iter().map(|(k, _)| k).collect();
    let on_aws = yaml_names("aws/ecs-fargate.yaml");
    for (platform, names) in [("kubernetes", &on_kubernetes), ("aws", &on_aws)] {
        let missing: Vec<_> = tested.difference(names).collect();
        assert!(missing.is_empty(), "{platform} does not set {missing:?}");
    }
}

#[test]
fn the_compose_file_and_the_aws_template_set_only_known_variables() {
    let compose = yaml_names("compose/compose.yaml");
    assert!(compose.contains("PUSHER_APP_SECRET"), "{compose:?}");
    assert_known("compose/compose.yaml", compose);
    let aws = yaml_names("aws/ecs-fargate.yaml");
    assert!(
        aws.contains("REDIS_URL") && aws.contains("RUSTFORGE_SESSION_SECRET"),
        "{aws:?}"
    );
    assert_known("aws/ecs-fargate.yaml", aws);
}

/// The Compose fleet runs Redis with the kit's ACL file (the default user off) and the app
/// servers log in as its user, with the password the file sets: what docs/redis.md says.
#[test]
fn the_compose_fleet_uses_the_kit_redis_user() {
    let compose = kit_file("compose/compose.yaml");
    let acl = kit_file("redis/users.acl");
    assert!(acl.lines().any(|l| l == "user default off"), "{acl}");
    let password = acl
        .split_whitespace()
        .find_map(|w| w.strip_prefix('>'))
        .expect("users.acl sets a password");
    assert!(
        compose.contains("\"--aclfile\", \"/etc/redis/users.acl\"")
            && compose.contains("../redis/users.acl:/etc/redis/users.acl:ro"),
        "the redis service loads the kit's ACL file"
    );
    let url = format!("REDIS_URL: redis://rustforge:{password}@redis:6379");
    assert!(
        compose.contains(&url),
        "the app servers log in as the kit's user: {url}"
    );
    let health = format!("\"--user\", \"rustforge\", \"--pass\", \"{password}\", \"ping\"");
    assert!(compose.contains(&health), "the health check logs in too");
}

#[test]
fn the_compose_nginx_runs_the_kit_main_config_with_room_for_websockets() {
    let main = kit_file("nginx/nginx.conf");
    let connections: u32 = main
        .lines()
        .find_map(|l| l.trim().strip_prefix("worker_connections "))
        .and_then(|v| v.trim_end_matches(';').trim().parse().ok())
        .expect("worker_connections in the kit's nginx.conf");
    // Two connections per proxied WebSocket: the default 1,024 holds ~500.
    assert!(connections >= 8192, "worker_connections {connections}");
    assert!(
        main.contains("include /etc/nginx/conf.d/*.conf;"),
        "the site is included"
    );
    let compose = kit_file("compose/compose.yaml");
    assert!(
        compose.contains("../nginx/nginx.conf:/etc/nginx/nginx.conf:ro"),
        "Compose mounts the main config"
    );
}

//! The fuzz targets' committed corpora (`fuzz/corpus/<target>/`), replayed on stable Rust
//! through the same harness `cargo fuzz` runs (`fuzz/harness.rs`): every input the fuzzer kept
//! — the seeds from the tests and what it found interesting — still goes through without a
//! panic. Longer runs: `scripts/fuzz.sh`.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

/// Feeds every file of `fuzz/corpus/<target>/` to `run`; returns how many there were.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} panicked", path.display());
        count += 1;
    }
    count
}

#[test]
fn every_corpus_input_goes_through_without_a_panic() {
    for (target, run) in [
        ("client_frame", harness::client_frame as fn(&[u8])),
        ("api_request", harness::api_request),
        ("channel_auth", harness::channel_auth),
        ("config_env", harness::config_env),
    ] {
        let n = replay(target, run);
        assert!(n >= 3, "{target}: only {n} corpus inputs");
    }
}

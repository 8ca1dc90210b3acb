#!/usr/bin/env bash
# Runs each cargo-fuzz target (libFuzzer, nightly) for SECONDS seconds (default 600) on its
# committed corpus, which grows with what the fuzzer finds; a crash stops the run with the input
# in fuzz/artifacts/<target>/. Installs cargo-fuzz when it is missing.
#
#   scripts/fuzz.sh                 # every target, 10 minutes each
#   SECONDS_EACH=30 scripts/fuzz.sh client_frame api_request
#
# The test suite replays the corpora on stable Rust (tests/fuzz_corpus.rs); this is the real run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_EACH:-600}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(client_frame api_request channel_auth config_env)
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo +nightly install cargo-fuzz --locked --quiet
fi
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/rustforge-prod/fuzz-target}"
# Crash files in a target's artifact directory (absent until the first crash).
crashes() { if [ -d "fuzz/artifacts/$1" ]; then ls "fuzz/artifacts/$1" | wc -l; else echo 0; fi; }
for target in "${targets[@]}"; do
  echo "==> $target for ${seconds}s"
  # Crash files of earlier runs are not this run's: only new ones count.
  before=$(crashes "$target")
  # Fuzz the committed corpus in place; new interesting inputs are kept there.
  cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 -timeout=10 2>&1 |
    grep -E "^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)" || true
  if [ "$(crashes "$target")" -gt "$before" ]; then
    echo "$target: crash, see fuzz/artifacts/$target" >&2
    exit 1
  fi
done
echo "==> no crash"

#!/usr/bin/env bash
# The whole test suite, on a fresh Debian/Ubuntu machine with only the Rust toolchain:
# installs what is missing (redis-server, Chromium, promtool, Node.js and the npm test clients, cargo-hack; starts PostgreSQL), then runs fmt, clippy (all
# features and none), a check of every feature and every pair of features, every test with all features, the
# doctests and the docs build. Any failure stops the run with a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

install_debian_packages() {
  if ! have apt-get; then
    echo "missing: $* — install them with your package manager and run again" >&2
    exit 1
  fi
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  step "installing $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

packages=()
have redis-server || packages+=(redis-server)
have redis-cli || packages+=(redis-tools)
[ -x /usr/bin/chromium ] || packages+=(chromium)
have promtool || packages+=(prometheus)
have node || packages+=(nodejs npm)
if [ ${#packages[@]} -gt 0 ]; then install_debian_packages "${packages[@]}"; fi
# PostgreSQL for the database health check: use a running server (DATABASE_URL, or the local one
# with trust auth); otherwise install and start one with a password.
if [ -z "${DATABASE_URL:-}" ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  have pg_ctlcluster || install_debian_packages postgresql
  step "starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  export DATABASE_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
fi

# npm packages, pinned by their lock files: pusher-js and the pusher server SDK for
# tests/broadcast_js.rs (tests/js), the pusher-js browser build the chat example serves.
for dir in tests/js examples/chat; do
  if [ ! -d "$dir/node_modules" ]; then
    step "installing JavaScript packages (npm ci in $dir)"
    npm ci --prefix "$dir" --no-audit --no-fund --silent
  fi
done

if ! cargo hack --version >/dev/null 2>&1; then
  step "installing cargo-hack"
  cargo install cargo-hack --locked --quiet
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy, all features"
cargo clippy --all-features --all-targets -- -D warnings

step "clippy, no default features"
cargo clippy --no-default-features --lib -- -D warnings

step "every feature and every pair of features (cargo hack --feature-powerset --depth 2)"
cargo hack check --feature-powerset --depth 2 --no-dev-deps --lib --quiet

step "tests and doctests, all features"
cargo test --all-features

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --all-features --no-deps --quiet

step "all checks passed"

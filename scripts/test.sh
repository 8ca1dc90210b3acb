#!/usr/bin/env bash
# The whole test suite, on a fresh Debian/Ubuntu machine with only the Rust toolchain:
# installs what is missing (redis-server and redis-tools, openssl, Chromium, promtool, nginx, wrk,
# Node.js and npm, the npm test clients, PostgreSQL, cargo-hack), starts PostgreSQL, then runs fmt, the MSRV
# check, clippy (all features, the default features, none), a check of every feature and every pair
# of features, the deployment kit's offline validators (installed in a virtualenv), every test and
# doctest with all features and again with the default features, and the docs build.
# Any failure stops the run with a non-zero exit. It can run again on the same machine.
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
have openssl || packages+=(openssl)
[ -x /usr/bin/chromium ] || packages+=(chromium)
have promtool || packages+=(prometheus)
have ss || packages+=(iproute2)
[ -x /usr/sbin/nginx ] || packages+=(nginx-light)
have wrk || packages+=(wrk)
have node || packages+=(nodejs npm)
if [ -z "${DATABASE_URL:-}" ] && ! have pg_ctlcluster && ! have pg_isready; then packages+=(postgresql); fi
if [ ${#packages[@]} -gt 0 ]; then install_debian_packages "${packages[@]}"; fi

# The JavaScript test clients (pusher-js, the pusher server SDK) need Node.js 20 or newer;
# Debian 12's own nodejs is 18.
node_major=$(node --version | sed -E 's/^v([0-9]+).*/\1/')
if [ "$node_major" -lt 20 ]; then
  echo "Node.js $(node --version) is too old: the JavaScript tests need Node.js 20 or newer." >&2
  echo "Install it (for example from NodeSource's Debian packages) and run again." >&2
  exit 1
fi

# PostgreSQL for the database health check: DATABASE_URL when it is set; otherwise the local
# server, started when it is not running, with a known password for the postgres user (so the
# test connects the way an application would, whatever pg_hba.conf trusts).
if [ -z "${DATABASE_URL:-}" ]; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    step "starting PostgreSQL"
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  fi
  su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  export DATABASE_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
fi

# npm packages, pinned by their lock files: pusher-js and the pusher server SDK for
# tests/broadcast_js.rs (tests/js), the pusher-js browser build the chat example serves.
# Installed again whenever the lock file changed since the last install.
for dir in tests/js examples/chat; do
  lock_sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$dir/node_modules/.lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
    step "installing JavaScript packages (npm ci in $dir)"
    npm ci --prefix "$dir" --no-audit --no-fund --silent
    echo "$lock_sum" > "$dir/node_modules/.lock-sha256"
  fi
done

if ! cargo hack --version >/dev/null 2>&1; then
  step "installing cargo-hack"
  cargo install cargo-hack --locked --quiet
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "MSRV: the declared rust-version against the locked dependencies"
python3 scripts/check-msrv.py

step "clippy, all features"
cargo clippy --all-features --all-targets -- -D warnings

step "clippy, default features"
cargo clippy --all-targets -- -D warnings

step "clippy, no default features"
cargo clippy --no-default-features --lib -- -D warnings

step "every feature and every pair of features (cargo hack --feature-powerset --depth 2)"
# `default` and `full` are checked by the clippy passes above, `test-util` (the conformance
# suites) by the all-features pass: leaving them out of the pairs keeps this step to 88 checks.
cargo hack check --feature-powerset --depth 2 --no-dev-deps --lib --quiet \
  --exclude-features full,test-util,default

step "deployment kit: offline validators (scripts/check-deploy-kit.sh)"
scripts/check-deploy-kit.sh

step "tests and doctests, all features"
cargo test --all-features

step "tests and doctests, default features (what a user of the default build runs)"
cargo test

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --all-features --no-deps --quiet

step "all checks passed"

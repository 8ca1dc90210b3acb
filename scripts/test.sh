#!/usr/bin/env bash
# The whole test suite, on a fresh Debian/Ubuntu machine with only the Rust toolchain:
# installs what is missing (redis-server and redis-tools, openssl, Chromium, promtool, nginx, wrk,
# Node.js and npm, the npm test clients, PostgreSQL's server binaries, Python's venv, cargo-hack),
# without starting the daemons those packages ship, then runs fmt, the MSRV
# check, clippy (all features, the default features, none), a check of every feature and every pair
# of features, the deployment kit's offline validators (installed in a virtualenv), every test and
# doctest with all features and again with the default features, and the docs build.
# Any failure stops the run with a non-zero exit. It can run again on the same machine.
# Run it as root or as a user who may `sudo` (only the package installation needs it). The tests
# start their own Redis, PostgreSQL, nginx and browsers on free ports, as the user running them:
# the machine's services, ports and credentials are left as they were. The toolchain is the one
# rust-toolchain.toml pins.
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
  # Debian starts a package's daemon when it is installed (nginx on :80, Prometheus on :9090,
  # PostgreSQL on :5432): the tests need the programs, not the services, so a policy-rc.d that
  # refuses every start is in place for the installation (unless the machine has its own).
  local policy=/usr/sbin/policy-rc.d own_policy=""
  if [ ! -e "$policy" ]; then
    own_policy=1
    printf '#!/bin/sh\n# scripts/test.sh: no daemon starts while it installs packages\nexit 101\n' |
      $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
  fi
  local status=0
  $sudo apt-get update -qq || status=$?
  if [ "$status" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" \
      >/dev/null || status=$?
  fi
  if [ -n "$own_policy" ]; then $sudo rm -f "$policy"; fi
  return "$status"
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
# The database tests run servers of their own: they need initdb and postgres, not a running one.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || have initdb || packages+=(postgresql)
# Debian's python3 makes no virtualenv without ensurepip (the deploy kit's validators need one).
python3 -c 'import ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)
if [ ${#packages[@]} -gt 0 ]; then install_debian_packages "${packages[@]}"; fi

# The JavaScript test clients (pusher-js, the pusher server SDK) need Node.js 20 or newer;
# Debian 12's own nodejs is 18.
node_major=$(node --version | sed -E 's/^v([0-9]+).*/\1/')
if [ "$node_major" -lt 20 ]; then
  echo "Node.js $(node --version) is too old: the JavaScript tests need Node.js 20 or newer." >&2
  echo "Install it (for example from NodeSource's Debian packages) and run again." >&2
  exit 1
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

step "js/pusher-recovery: the plugin's own tests (node --test)"
node --test js/pusher-recovery/test/

step "tests and doctests, all features"
cargo test --all-features

step "tests and doctests, default features (what a user of the default build runs)"
cargo test

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --all-features --no-deps --quiet

step "all checks passed"

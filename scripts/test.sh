#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing (scripts/setup.sh), then
#   1. formatting and clippy (-D warnings), native and wasm32;
#   2. native tests of every crate (unit, property, statistical acceptance, learner + broker);
#   3. #[wasm_bindgen_test] tests of the Workers' glue under Node;
#   4. the Workers built with worker-build, and `wrangler deploy --dry-run` for both;
#   5. end-to-end tests through real `wrangler dev` (workerd) processes on loopback.
# CI runs exactly this (.ci/run). Idempotent; later runs reuse installs and build caches.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MAGNETAR_ROOT"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
WASM_CRATES=(-p magnetar-router -p magnetar-downstream)

step "setup"
bash scripts/setup.sh
. scripts/env.sh  # the toolchain choice may have just been recorded

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (native, all targets)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "clippy (wasm32: core and Workers)"
# The Workers with their glue tests; the core as the Workers compile it (its own tests and
# benchmarks are native).
RUSTUP_TOOLCHAIN="$MAGNETAR_WASM_TOOLCHAIN" cargo clippy --locked --target wasm32-unknown-unknown \
  --all-targets "${WASM_CRATES[@]}" -- -D warnings
RUSTUP_TOOLCHAIN="$MAGNETAR_WASM_TOOLCHAIN" cargo clippy --locked --target wasm32-unknown-unknown \
  -p magnetar-core -p magnetar-flaky -- -D warnings

step "the router's wasm compiles neither the simulator nor the flaky origin"
if cargo tree --locked -p magnetar-router -e normal --prefix none | grep -E '^magnetar-(sim|flaky) '; then
  echo "magnetar-router depends on the crates above; it must not" >&2
  exit 1
fi

step "native tests"
cargo test --workspace --locked --exclude magnetar-e2e

step "wasm-bindgen tests under Node"
RUSTUP_TOOLCHAIN="$MAGNETAR_WASM_TOOLCHAIN" cargo test --locked --target wasm32-unknown-unknown "${WASM_CRATES[@]}"
# The same tests the way wasm-pack users run them (it finds the pinned wasm-bindgen on PATH).
for crate in router downstream-worker; do
  RUSTUP_TOOLCHAIN="$MAGNETAR_WASM_TOOLCHAIN" wasm-pack test --node "$crate"
done

step "build Workers"
bash scripts/build-workers.sh

step "wrangler deploy --dry-run"
dry="$MAGNETAR_STATE/dry-run"
magnetar_fleet gen-local --out "$dry/configs" >/dev/null
# The deployment template with its service bindings, as it would sit in router/ (its [build]
# step is what the Workers were just built with).
mkdir -p "$dry/configs/example"
sed -e '/^\[build\]/,/^$/d' -e "s|^main = .*|main = \"$MAGNETAR_ROOT/router/build/index.js\"|" \
  wrangler-example.toml >"$dry/configs/example/wrangler.toml"
for worker in router downstream-1 example; do
  rm -rf "${dry:?}/out-$worker"
  wrangler deploy --dry-run --config "$dry/configs/$worker/wrangler.toml" --outdir "$dry/out-$worker" 2>&1 \
    | grep -E "Total Upload|dry-run" || { echo "dry run of $worker failed" >&2; exit 1; }
done

step "end-to-end tests (wrangler dev on loopback)"
# The tests start these binaries as processes: build them now so they are never stale.
cargo build --locked -p magnetar-learner -p magnetar-lab
cargo test --locked -p magnetar-e2e -- --test-threads=2

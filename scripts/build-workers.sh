#!/usr/bin/env bash
# Builds the Workers to WebAssembly with worker-build (release, LTO; wasm-opt skipped because it
# cannot be downloaded here). Incremental: cargo rebuilds only what changed.
#
#   scripts/build-workers.sh [router|downstream-worker ...]     default: both
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MAGNETAR_ROOT"
mkdir -p "$MAGNETAR_STATE"
magnetar_fleet validate >/dev/null
crates=("$@")
[ ${#crates[@]} -eq 0 ] && crates=(downstream-worker router)
# worker-build runs cargo and then wasm-bindgen on cargo's output: two builds sharing one target
# directory (worktrees with one CARGO_TARGET_DIR) would overwrite each other's .wasm in between.
target_dir="${CARGO_TARGET_DIR:-$MAGNETAR_ROOT/target}"
mkdir -p "$target_dir"
exec 9>"$target_dir/.build-workers.lock"
flock 9
for crate in "${crates[@]}"; do
  start=$(date +%s)
  (cd "$crate" && RUSTUP_TOOLCHAIN="$MAGNETAR_WASM_TOOLCHAIN" worker-build --release --no-opt >"$MAGNETAR_STATE/build-$crate.log" 2>&1) || {
    cat "$MAGNETAR_STATE/build-$crate.log" >&2
    echo "build of $crate failed (log above)" >&2
    exit 1
  }
  wasm=$(ls "$crate"/build/*.wasm 2>/dev/null | head -1)
  printf '%-18s built in %3ss  %s %s bytes (gzip %s)\n' "$crate" "$(($(date +%s) - start))" \
    "$wasm" "$(stat -c %s "$wasm")" "$(gzip -9c "$wasm" | wc -c)"
done

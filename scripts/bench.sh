#!/usr/bin/env bash
# Measures the figures README.md reports and writes them, one Markdown file each, to
# results/bench/ (a measurement, not a test: nothing here passes or fails on a number).
#
#   scripts/bench.sh [all|builds|latency|core|wasm|learner|sim ...]      default: all
#
#   builds   each Worker built from clean and warm (worker-build --release), .wasm raw and gzip
#   latency  1,000 requests to a 0%-fail downstream directly and through the router (magnetar-lab)
#   core     criterion: select + update per strategy for 3, 10 and 100 downstreams (native)
#   wasm     the same loop compiled to wasm32 and run under Node (tools/wasm-bench)
#   learner  ingest throughput, /recommendation and /params p50/p99, memory at 10/1,000 downstreams
#   sim      magnetar-sim: every strategy on every scenario, 20 seeds x 20,000 requests; the
#            fleet-scale table (1 to 1,000 isolates, with and without the learner); simulated
#            attempts per second on one thread and on every core
#
# Run scripts/setup.sh first (scripts/test.sh does). `latency` uses the stack on the router port
# of config/workers.json when one runs, and starts its own otherwise.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MAGNETAR_ROOT"

OUT=results/bench
mkdir -p "$OUT"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
machine() { echo "Machine: $(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"), $(date -u +%Y-%m-%d)."; }

builds() {
  step "Worker builds (clean, then warm)"
  local file=$OUT/builds.md
  {
    machine
    echo
    echo "| Worker | clean build s | warm build s (one source file touched) | .wasm bytes | gzip -9 bytes |"
    echo "|---|---|---|---|---|"
  } >"$file"
  # Validate the fleet file now, so its (native) build is not timed below.
  magnetar_fleet validate >/dev/null
  for crate in downstream-worker router; do
    # From clean: an empty target directory (no compiled dependency, no build script or
    # proc-macro of the host), no previous bundle. Warm: the same directory, one file touched.
    local clean t0 t1 t2 wasm
    clean=$(mktemp -d)
    rm -rf "$crate/build"
    t0=$(date +%s.%N)
    CARGO_TARGET_DIR="$clean" bash scripts/build-workers.sh "$crate" >/dev/null
    t1=$(date +%s.%N)
    touch "$crate/src/lib.rs"
    CARGO_TARGET_DIR="$clean" bash scripts/build-workers.sh "$crate" >/dev/null
    t2=$(date +%s.%N)
    rm -rf "$clean"
    wasm=$(ls "$crate"/build/*.wasm | head -1)
    printf '| %s | %.1f | %.1f | %s | %s |\n' "$crate" "$(awk "BEGIN { print $t1 - $t0 }")" \
      "$(awk "BEGIN { print $t2 - $t1 }")" "$(stat -c %s "$wasm")" "$(gzip -9c "$wasm" | wc -c)" >>"$file"
  done
  cat "$file"
}

latency() {
  step "router added latency (1,000 requests each)"
  [ -f router/build/index.js ] || bash scripts/build-workers.sh
  cargo build --release --locked -q -p magnetar-lab -p magnetar-learner
  { machine; echo; } >"$OUT/latency.md"
  target/release/magnetar-lab latency --requests 1000 --json "$OUT/latency.json" | tee -a "$OUT/latency.md"
}

core_bench() {
  step "criterion: select + update (native)"
  local raw=$OUT/core-criterion.txt
  cargo bench --locked -q -p magnetar-core --bench strategies -- --output-format bencher | tee "$raw"
  {
    machine
    echo
    echo "CPU time of one select + update, warm (\`cargo bench -p magnetar-core --bench strategies\`)."
    echo
    echo "| strategy | 3 downstreams (ns) | 10 downstreams (ns) | 100 downstreams (ns) |"
    echo "|---|---|---|---|"
    awk '$1 == "test" && $2 ~ /\/(3|10|100)$/ {
           split($2, p, "/"); v[p[1], p[2]] = $5; if (!(p[1] in seen)) { seen[p[1]] = 1; order[++n] = p[1] } }
         END { for (i = 1; i <= n; i++) { s = order[i]; printf "| %s | %s | %s | %s |\n", s, v[s, 3], v[s, 10], v[s, 100] } }' "$raw"
  } >"$OUT/core.md"
  cat "$OUT/core.md"
}

wasm_bench() {
  step "select + update compiled to wasm32, under Node"
  local pkg=target/wasm-bench
  RUSTUP_TOOLCHAIN="$MAGNETAR_WASM_TOOLCHAIN" cargo build --locked -q --release \
    --target wasm32-unknown-unknown -p magnetar-wasm-bench
  wasm-bindgen --target nodejs --out-dir "$pkg" \
    target/wasm32-unknown-unknown/release/magnetar_wasm_bench.wasm
  {
    machine
    echo
    echo "Wall time of one select + update under Node $(node --version), best of three runs of 200,000."
    echo
    node tools/wasm-bench/run.mjs "$pkg" \
      round_robin,random,ucb1,kl_ucb,thompson,thompson_attempt,thompson_masked,thompson_discounted,thompson_window,blocking_bandit,envoy_outlier
  } >"$OUT/wasm.md"
  cat "$OUT/wasm.md"
}

learner() {
  step "learner figures"
  { machine; echo; echo '```'; } >"$OUT/learner.md"
  cargo run --locked -q --release -p magnetar-learner --example bench | tee -a "$OUT/learner.md"
  echo '```' >>"$OUT/learner.md"
}

sim() {
  step "simulator: every strategy on every scenario"
  cargo build --locked -q --release -p magnetar-sim-cli
  local bin="${CARGO_TARGET_DIR:-target}/release/magnetar-sim"
  { machine; echo; } >"$OUT/sim.md"
  "$bin" --scenarios all --strategies all --seeds 20 --requests 20000 \
    --out "$OUT/sim" | tee -a "$OUT/sim.md"
  echo
  echo "with the 3-attempt budget:" | tee -a "$OUT/sim.md"
  "$bin" --scenarios prototype,spread,retries --strategies all --seeds 20 \
    --requests 20000 --max-attempts 3 --out "$OUT/sim-3-attempts" | tee -a "$OUT/sim.md"
  echo
  echo "fleet scale: 1 to 1,000 router isolates, without and with the learner:" | tee -a "$OUT/sim.md"
  "$bin" --scenarios constant,random_outages,abrupt --strategies thompson,magnetar,round_robin \
    --seeds 10 --requests 20000 --max-attempts 3 --isolates 1,10,100,1000 | tee -a "$OUT/sim.md"
  # Throughput: simulated attempts per second of wall time, on one thread and on every core
  # (the CLI's stderr summary line), every strategy on every scenario, 2 seeds x 20,000 requests.
  echo
  echo "simulator throughput (every strategy on every scenario, 2 seeds x 20,000 requests, 3 attempts):" \
    | tee -a "$OUT/sim.md"
  local threads
  for threads in 1 "$(nproc)"; do
    "$bin" --scenarios all --strategies all --seeds 2 --requests 20000 --max-attempts 3 \
      --threads "$threads" 2>&1 >/dev/null | grep '^all scenarios:' | tee -a "$OUT/sim.md"
  done
}

what=("$@")
[ ${#what[@]} -eq 0 ] && what=(all)
for w in "${what[@]}"; do
  case "$w" in
    all) builds; core_bench; wasm_bench; sim; learner; latency ;;
    builds) builds ;;
    latency) latency ;;
    core) core_bench ;;
    wasm) wasm_bench ;;
    learner) learner ;;
    sim) sim ;;
    *) echo "unknown benchmark $w (all, builds, latency, core, wasm, learner, sim)" >&2; exit 2 ;;
  esac
done
echo
echo "figures in $OUT/"

#!/usr/bin/env bash
# Starts the whole local Magnetar stack and prints where to look; Ctrl-C stops everything it
# started (each process runs in its own process group, so no workerd is left behind).
#
#   scripts/stack.sh            embedded mode: the learner answers the REST proxy API itself
#   scripts/stack.sh --kafka    Kafka mode: tansu broker + learner bridge (REST → Kafka) +
#                               learner consumer group (Kafka → posteriors)
#
#   MAGNETAR_ADMIN_TOKEN=...    the router's ADMIN_TOKEN and the learner's token (default: new
#   MAGNETAR_LEARNER_TOKEN=...  random ones on every start, printed; a script may set its own)
#   MAGNETAR_PROFILE=debug      use debug builds of the learner and the page server (the tests do:
#                               they are built already); default release.
#
# What runs (ports from config/workers.json):
#   - one `wrangler dev` (workerd) per downstream in config/workers.json, with its failure settings;
#   - the router (`wrangler dev`), posting telemetry to and asking the learner;
#   - the learner (native), and the test-bed page.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MAGNETAR_ROOT"

KAFKA=0
for arg in "$@"; do
  case "$arg" in
    --kafka) KAFKA=1 ;;
    -h | --help) sed -n '2,/^set /p' "$0" | grep '^#'; exit 0 ;;
    *) echo "unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

STACK="$MAGNETAR_STATE/stack"
LOGS="$STACK/logs"
mkdir -p "$LOGS"
PGIDS=()

alive() { # any of the started process groups still has a process
  for pgid in "${PGIDS[@]}"; do kill -0 -- "-$pgid" 2>/dev/null && return 0; done
  return 1
}

stop_all() {
  trap - INT TERM EXIT
  echo
  echo "stopping ${#PGIDS[@]} processes"
  for pgid in "${PGIDS[@]}"; do kill -TERM -- "-$pgid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do alive || break; sleep 0.1; done
  for pgid in "${PGIDS[@]}"; do kill -KILL -- "-$pgid" 2>/dev/null || true; done
}
# On Ctrl-C or TERM: stop everything, then exit here and now (not by returning into `wait`).
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap stop_all EXIT

start() { # name command...
  local name=$1
  shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 < /dev/null &
  PGIDS+=("$!")
}

wait_ready() { # name url
  for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null "$2" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "$1 did not come up at $2; last log lines:" >&2
  tail -n 30 "$LOGS/$1.log" >&2
  exit 1
}

[ -x "$HOME/.cargo/bin/worker-build" ] && [ -d node_modules ] || bash scripts/setup.sh
# The native programs in one profile (the fleet tool too, so that its dependencies are not
# compiled a second time in another profile just to read the fleet file).
PROFILE=${MAGNETAR_PROFILE:-release}
echo "building the fleet tool, the learner and the page server (incremental)..."
case "$PROFILE" in
  release) cargo build --release --quiet -p magnetar-fleet -p magnetar-learner -p magnetar-lab ;;
  debug) cargo build --quiet -p magnetar-fleet -p magnetar-learner -p magnetar-lab ;;
  *) echo "MAGNETAR_PROFILE must be release or debug, not $PROFILE" >&2; exit 2 ;;
esac
BIN="$MAGNETAR_ROOT/target/$PROFILE"
export MAGNETAR_FLEET_BIN="$BIN/magnetar-fleet"
# The fleet file, checked with the Workers' own parsers; its ports as ROUTER_PORT=... etc.
ports=$(magnetar_fleet ports)
eval "$ports"
router_port=$ROUTER_PORT

# Refuse to start on top of another stack (ports would clash).
if curl -fsS -o /dev/null "http://127.0.0.1:$router_port/_magnetar/health" 2>/dev/null; then
  echo "a router already answers on port $router_port: stop that stack first" >&2
  trap - EXIT
  exit 1
fi

echo "building Workers (incremental)..."
bash scripts/build-workers.sh

learner_port=$LEARNER_PORT
half_life=$HALF_LIFE_MS
testbed_port=$TEST_BED_PORT
learner_url="http://127.0.0.1:$learner_port"
LEARNER_BIN="$BIN/magnetar-learner"

if [ "$KAFKA" -eq 1 ]; then
  kafka_port=$KAFKA_PORT
  bridge_port=$BRIDGE_PORT
  rest_url="http://127.0.0.1:$bridge_port"
else
  rest_url="$learner_url"
fi

# Credentials of this run, new on every start: the router's admin endpoints need ADMIN_TOKEN; the
# learner refuses unauthenticated calls, so the router gets its token (bearer on /params and
# /recommendation, basic auth magnetar:<token> on telemetry).
random_token() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
admin_token=${MAGNETAR_ADMIN_TOKEN:-$(random_token)}
learner_token=${MAGNETAR_LEARNER_TOKEN:-$(random_token)}
learner_auth=(--token "$learner_token")
ingest_auth=(--rest-basic-auth "magnetar:$learner_token")
router_secrets=(--secret "ADMIN_TOKEN=$admin_token" --secret "LEARNER_TOKEN=$learner_token"
  --secret "KAFKA_REST_USERNAME=magnetar" --secret "KAFKA_REST_PASSWORD=$learner_token")

# One wrangler config per process; fails when a port (HTTP or inspector) is taken, since workerd
# would then fail obscurely. Secrets go to .dev.vars beside the router's config.
manifest=$(magnetar_fleet gen-local --out "$STACK/configs" --tsv --check-ports \
  --var "KAFKA_REST_URL=$rest_url" --var "LEARNER_URL=$learner_url" "${router_secrets[@]}")
if [ "$KAFKA" -eq 1 ]; then
  start tansu tansu broker --listener-url "tcp://127.0.0.1:$kafka_port" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka_port" --storage-engine memory://tansu/
  sleep 1
  start learner-bridge "$LEARNER_BIN" --mode bridge --http-addr "127.0.0.1:$bridge_port" \
    --kafka-brokers "127.0.0.1:$kafka_port" "${learner_auth[@]}" "${ingest_auth[@]}"
  start learner "$LEARNER_BIN" --mode kafka --http-addr "127.0.0.1:$learner_port" \
    --kafka-brokers "127.0.0.1:$kafka_port" --half-life-ms "$half_life" "${learner_auth[@]}"
  wait_ready learner-bridge "$rest_url/healthz"
else
  start learner "$LEARNER_BIN" --mode embedded --http-addr "127.0.0.1:$learner_port" \
    --half-life-ms "$half_life" "${learner_auth[@]}" "${ingest_auth[@]}"
fi

while IFS=$'\t' read -r name port inspector config; do
  start "$name" wrangler dev --config "$config" --ip 127.0.0.1 --port "$port" \
    --inspector-port "$inspector" --persist-to "$STACK/state-$name" --log-level warn
done <<<"$manifest"

# The page reads the fleet and the learner's posteriors through its server, which holds the
# tokens (given in its environment, not on its command line).
MAGNETAR_ADMIN_TOKEN=$admin_token MAGNETAR_LEARNER_TOKEN=$learner_token \
  start test-bed "$BIN/magnetar-lab" serve --port "$testbed_port" \
  --router "http://127.0.0.1:$router_port" --learner "$learner_url"

wait_ready learner "$learner_url/healthz"
while IFS=$'\t' read -r name port _ _; do
  [ "$name" = magnetar-router ] || wait_ready "$name" "http://127.0.0.1:$port/ping"
done <<<"$manifest"
wait_ready magnetar-router "http://127.0.0.1:$router_port/_magnetar/health"
wait_ready test-bed "http://127.0.0.1:$testbed_port/"

cat <<EOF

Magnetar is running$([ "$KAFKA" -eq 1 ] && echo " (Kafka path: router -> bridge -> tansu -> learner)").
  test-bed page   http://127.0.0.1:$testbed_port/
  router          http://127.0.0.1:$router_port/service   (try: curl -i 'http://127.0.0.1:$router_port/service?algo=thompson')
  router state    http://127.0.0.1:$router_port/_magnetar/fleet  /_magnetar/state
                  (curl -H 'Authorization: Bearer $admin_token' ...)
  admin token     $admin_token   (ADMIN_TOKEN of this run)
  learner         $learner_url/recommendation?route=/service   /params  /stats  /metrics
  telemetry to    $rest_url/topics/magnetar-telemetry
$(while IFS=$'\t' read -r name port _ _; do
  [ "$name" = magnetar-router ] || printf '  %-15s http://127.0.0.1:%s/\n' "$name" "$port"
done <<<"$manifest")
  logs            $LOGS/
Press Ctrl-C to stop everything.
EOF
wait

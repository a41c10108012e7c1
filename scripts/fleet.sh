#!/usr/bin/env bash
# config/workers.json for people and scripts: `scripts/fleet.sh validate`, `router-fleet`,
# `ports`, `gen-local --out DIR ...` (see `scripts/fleet.sh --help`). Runs tools/fleet
# (magnetar-fleet), which checks the file with the router's and the downstream Worker's own parsers.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
magnetar_fleet "$@"

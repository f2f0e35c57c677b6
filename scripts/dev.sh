#!/usr/bin/env bash
# Builds reef and starts a whole local cluster (its own nats-server, a
# coordinator and two agents) with a demo job. Ctrl-C stops everything.
# Extra arguments go to `reef dev` (e.g. --nodes 3).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_nats_server

cargo build --bin reef
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/debug/reef" dev --demo "$@"

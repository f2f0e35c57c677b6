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
# The sandbox runs work as other users, so it needs root; as anyone else the
# local cluster runs its work unconfined, and says so.
if [ "$(id -u)" = 0 ]; then
    ensure_sandbox_tools
    exec "$target_dir/debug/reef" dev --demo "$@"
fi
echo "not root: jobs and apps run without the sandbox (reef dev --sandbox off)" >&2
exec "$target_dir/debug/reef" dev --demo --sandbox off "$@"

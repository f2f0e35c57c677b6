#!/usr/bin/env bash
# Runs the benchmarks (release build). They print their numbers and ratios
# against baselines measured in the same run; docs/benchmarks.md records them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_nats_server
ensure_proxy_bench_tools

cargo build --release --bin reef
cargo bench -p reef-tests --bench dispatch
cargo bench -p reef-tests --bench deploy
cargo bench -p reef-tests --bench recovery
cargo bench -p reef-tests --bench scale
cargo bench -p reef-tests --bench history
cargo bench -p reef-coordinator --bench scheduler
cargo bench -p reef-proxy --bench vs_nginx
cargo bench -p reef-tests --bench deployed

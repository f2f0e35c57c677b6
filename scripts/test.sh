#!/usr/bin/env bash
# Runs every check reef has: formatting, lints, unit tests and the end-to-end
# tests against real nats-server, coordinator and agent processes.
# Installs nats-server when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_nats_server
ensure_test_tools
ensure_sandbox_tools
ensure_beam_tools
ensure_browser_tools
ensure_postgres

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests run the real binary, so build it first.
cargo build --bin reef
cargo test --workspace

#!/usr/bin/env bash
# ci/soak.sh — the soak tests (tests-integration/tests/soak.rs): 1,000 pipe
# clients x 10,000 messages on one server, and 64 channel connections x
# 1,000,000 messages. Every echo is checked (nothing lost or reordered) and the
# server's resident memory and open descriptors must stay flat; the figures
# are printed. Release build, one test at a time, bounded by `timeout`
# (SOAK_TIMEOUT seconds, default 3600). Extra arguments go to the test binary
# (e.g. a test name). NIPC_SOAK_DIVIDE=N divides the message counts by N.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
timeout "${SOAK_TIMEOUT:-3600}" \
  cargo test --release -p tests-integration --test soak -- --ignored --test-threads=1 "$@"
echo "soak: $(( $(date +%s) - start )) s in all (build included)"

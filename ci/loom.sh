#!/usr/bin/env bash
# ci/loom.sh — model-checks the shared-memory ring protocol with loom: every
# interleaving of a producer and a consumer (publication order, wrap-around
# padding, and the sleep/wake handshake: no lost wake-up). Seconds to run.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release --locked -p named-ipc --lib channel:: "$@"

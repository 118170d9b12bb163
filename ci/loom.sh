#!/usr/bin/env bash
# ci/loom.sh — model-checks the shared-memory ring protocol with loom: every
# interleaving of a producer and a consumer (publication order, wrap-around
# padding, and the sleep/wake handshake: no lost wake-up). Seconds to run.
set -euo pipefail
cd "$(dirname "$0")/.."
# loom must never reach a user's dependency graph: it is a dev-dependency.
if cargo tree --locked -p named-ipc -e normal --target all --prefix none | grep -q '^loom '; then
  echo "ci/loom.sh: loom is a normal dependency of named-ipc; keep it under [target.'cfg(loom)'.dev-dependencies]" >&2
  exit 1
fi
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release --locked -p named-ipc --lib channel:: "$@"

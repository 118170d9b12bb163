#!/usr/bin/env bash
# ci/loom.sh — model-checks the shared-memory channel with loom: the ring's
# publication order and wrap-around padding, and the production send/receive
# paths (channel/flow.rs) with both sides sleeping, lazy position publication,
# multi-record messages and the close wake-ups in both directions (no lost
# wake-up, no hang). Interleavings with up to LOOM_MAX_PREEMPTIONS (default 2)
# preemptions are explored; a few minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# loom must never reach a user's dependency graph: it is a dev-dependency.
if cargo tree --locked -p named-ipc -e normal --target all --prefix none | grep -q '^loom '; then
  echo "ci/loom.sh: loom is a normal dependency of named-ipc; keep it under [target.'cfg(loom)'.dev-dependencies]" >&2
  exit 1
fi
LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}" RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release --locked -p named-ipc --lib channel:: "$@"

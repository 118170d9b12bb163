#!/usr/bin/env bash
# ci/fuzz.sh [SECONDS] — runs every cargo-fuzz target for SECONDS each (default 60).
# Installs cargo-fuzz if missing. Uses the nightly toolchain with AddressSanitizer
# when one is installed; otherwise stable with RUSTC_BOOTSTRAP=1 and no sanitizer
# (coverage-guided, Rust's own checks only). Exit status non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
if rustup run nightly rustc -V >/dev/null 2>&1; then
  run=(cargo +nightly fuzz run)
else
  echo "[fuzz] no nightly toolchain: stable, no sanitizer" >&2
  export RUSTC_BOOTSTRAP=1
  run=(cargo fuzz run --sanitizer none)
fi
for target in $(cargo fuzz list); do
  echo "[fuzz] $target for ${secs}s" >&2
  mkdir -p "corpus/$target"
  "${run[@]}" "$target" "corpus/$target" -- -max_total_time="$secs" -print_final_stats=1 2>&1 | tail -n 12
done

#!/usr/bin/env bash
# ci/cross-check.sh — type-checks and lints the library and CLI for Unix targets we
# cannot run here (macOS, FreeBSD), so their cfg branches (SO_NOSIGPIPE,
# LOCAL_PEERPID, getpeereid, accept without accept4, ...) at least compile clean.
# Uses Debian's rustc-web with -Zbuild-std (installed by ci/windows.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/cargo-clippy ]; then
  echo "[cross-check] needs Debian's rustc-web and rust-web-clippy: run ci/windows.sh first" >&2
  exit 2
fi
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/cross-check
unset RUSTUP_TOOLCHAIN
for target in ${CROSS_TARGETS:-x86_64-apple-darwin x86_64-unknown-freebsd}; do
  echo "[cross-check] $target" >&2
  PATH="/usr/bin:$PATH" /usr/bin/cargo clippy -Zbuild-std=std --target "$target" \
    -p named-ipc --locked -- -D warnings
  # The async transports (feature tokio, which nipc turns on) have their own
  # Unix code paths.
  PATH="/usr/bin:$PATH" /usr/bin/cargo clippy -Zbuild-std=std --target "$target" \
    -p named-ipc -p nipc --features named-ipc/tokio --locked -- -D warnings
done

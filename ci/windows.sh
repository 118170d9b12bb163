#!/usr/bin/env bash
# ci/windows.sh — build named-ipc for x86_64-pc-windows-gnu and run its tests under Wine.
#
#   ci/windows.sh [cargo args] [-- test-binary args]
#   WIN_CARGO=build ci/windows.sh --release      # build only; .exe under target/windows-gnu/...
#   WIN_CARGO=clippy ci/windows.sh --all-targets -- -D warnings
#
# rustup cannot download the Windows std here, so this uses Debian's rustc-web (>= 1.96)
# with its std source (rust-web-src) and rebuilds std with -Zbuild-std. mingw-w64 links;
# Wine 8 runs the tests in a private, headless prefix. Rust >= 1.78 imports ProcessPrng
# from bcryptprimitives.dll, which Wine 8 lacks, so a small shim DLL goes into the prefix.
#
# Differences from ../shared/tools/windows-test.sh: refreshes apt lists before installing
# (stale lists install rustc-web 1.85, whose -Zbuild-std link step fails for lack of
# rsbegin.o), checks the version, and exports the mingw C/C++ compilers for tests that
# build plain Win32 peer programs (NIPC_MINGW_CC, NIPC_MINGW_CXX).
#
# Knobs: WINEPREFIX (default $HOME/.cache/named-ipc-wine), WIN_TARGET_DIR
# (default target/windows-gnu), WIN_CARGO (default test), WIN_KEEP_WINESERVER=1.
set -euo pipefail

TARGET=x86_64-pc-windows-gnu
PKGS=(gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64-win32 wine wine64 rustc-web cargo-web rust-web-src rust-web-clippy)
MIN_RUSTC_MINOR=96
DEB_CARGO=/usr/bin/cargo
DEB_RUSTC=/usr/bin/rustc
DEB_RUSTDOC=/usr/bin/rustdoc

log() { printf '[windows] %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi
export DEBIAN_FRONTEND=noninteractive

pkg_version() { { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null || true; } | awk '$3=="installed"{print $4}'; }
rustc_minor() { "$DEB_RUSTC" -V 2>/dev/null | awk '{split($2, v, "."); print v[2]+0}'; }

need_install=0
for p in "${PKGS[@]}"; do [ -n "$(pkg_version "$p")" ] || need_install=1; done
if [ -x "$DEB_RUSTC" ] && [ "$(rustc_minor)" -lt "$MIN_RUSTC_MINOR" ]; then need_install=1; fi
if [ "$(for p in rustc-web cargo-web rust-web-src rust-web-clippy; do pkg_version "$p"; done | sort -u | wc -l)" -gt 1 ]; then need_install=1; fi
if [ "$need_install" = 1 ]; then
  log "refreshing apt lists and installing ${PKGS[*]}"
  "${SUDO[@]}" apt-get update -qq
  sim=$("${SUDO[@]}" apt-get install -s --no-install-recommends "${PKGS[@]}" 2>&1)
  if grep -q '^Remv ' <<<"$sim"; then
    log "error: installing would remove packages:"; grep '^Remv ' <<<"$sim" >&2; exit 2
  fi
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
fi
if [ "$(rustc_minor)" -lt "$MIN_RUSTC_MINOR" ]; then
  log "error: $("$DEB_RUSTC" -V) is older than 1.$MIN_RUSTC_MINOR; -Zbuild-std for windows-gnu needs it"
  exit 2
fi

sysroot=$("$DEB_RUSTC" --print sysroot)
if [ ! -f "$sysroot/lib/rustlib/src/rust/library/Cargo.lock" ]; then
  src=/usr/src/rustc-$("$DEB_RUSTC" -V | awk '{print $2}')
  [ -f "$src/library/Cargo.lock" ] || { log "error: std source missing (rust-web-src)"; exit 2; }
  "${SUDO[@]}" mkdir -p "$sysroot/lib/rustlib/src"
  "${SUDO[@]}" ln -sfn "$src" "$sysroot/lib/rustlib/src/rust"
fi

export WINEPREFIX="${WINEPREFIX:-$HOME/.cache/named-ipc-wine}"
export WINEARCH=win64
export WINEDEBUG="${WINEDEBUG:--all}"
export WINEDLLOVERRIDES="${WINEDLLOVERRIDES:-mscoree,mshtml=}"
unset DISPLAY WAYLAND_DISPLAY

if [ ! -f "$WINEPREFIX/system.reg" ]; then
  log "creating wine prefix $WINEPREFIX"
  mkdir -p "$WINEPREFIX"
  wineboot -i >/dev/null 2>&1 || true
  wineserver -w || true
  [ -f "$WINEPREFIX/system.reg" ] || { log "error: wineboot failed"; exit 2; }
fi

wine_dlls=/usr/lib/x86_64-linux-gnu/wine/x86_64-windows
shim="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if [ ! -e "$wine_dlls/bcryptprimitives.dll" ] && [ ! -s "$shim" ]; then
  log "building bcryptprimitives.dll shim (ProcessPrng -> RtlGenRandom)"
  tmp=$(mktemp -d)
  cat >"$tmp/shim.c" <<'EOF'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n; len -= n;
    }
    return TRUE;
}
EOF
  x86_64-w64-mingw32-gcc -shared -O2 -s -o "$tmp/bcryptprimitives.dll" "$tmp/shim.c" -ladvapi32
  cp "$tmp/bcryptprimitives.dll" "$shim"
  rm -rf "$tmp"
fi

stop_wine() { [ "${WIN_KEEP_WINESERVER:-0}" = 1 ] || wineserver -k >/dev/null 2>&1 || true; }
trap stop_wine EXIT

export CARGO_TARGET_DIR="${WIN_TARGET_DIR:-target/windows-gnu}"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
# wine, through a wrapper that re-runs a binary once if Wine failed to start it
# (it exited non-zero before printing anything; see ci/wine-run.sh).
CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$(cd "$(dirname "$0")" && pwd)/wine-run.sh"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER
export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc
export AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar
export NIPC_MINGW_CC=x86_64-w64-mingw32-gcc
export NIPC_MINGW_CXX=x86_64-w64-mingw32-g++
export RUSTC="$DEB_RUSTC" RUSTDOC="$DEB_RUSTDOC" RUSTC_BOOTSTRAP=1
unset RUSTUP_TOOLCHAIN

log "$("$DEB_RUSTC" -V) -> $TARGET, target dir $CARGO_TARGET_DIR, wine prefix $WINEPREFIX"
set +e
# /usr/bin first so that `cargo clippy` finds Debian's cargo-clippy, not rustup's proxy.
PATH="/usr/bin:$PATH" "$DEB_CARGO" "${WIN_CARGO:-test}" "-Zbuild-std=std,panic_unwind" --target "$TARGET" "$@"
rc=$?
set -e
exit "$rc"

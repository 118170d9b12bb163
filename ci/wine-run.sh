#!/usr/bin/env bash
# ci/wine-run.sh EXE [ARGS...] — cargo's runner for Windows binaries under Wine
# (ci/windows.sh sets it). Runs EXE under wine with its stdout passed through.
#
# One retry, for one case only: EXE failed without writing a single byte to
# stdout. A Rust test binary prints "running N tests" before anything else, so
# such a run never reached its main: Wine's process start failed. A CI
# rehearsal saw it once (async_pipes.exe: exit status 1, nothing printed; the
# same binary passed right after), and a helper process once failed to start
# the same way (see spawn_retrying_wine_startup in tests-integration). A
# binary that printed anything is never re-run: its status is the result. The
# retry is announced on stderr.
set -uo pipefail
out=$(mktemp)
trap 'rm -f "$out"' EXIT
wine "$@" | tee "$out"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ] && [ ! -s "$out" ]; then
  printf '[wine-run] %s exited with status %s before printing anything (Wine did not start it?): running it once more\n' "$1" "$rc" >&2
  wine "$@"
  rc=$?
fi
exit "$rc"

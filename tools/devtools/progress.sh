#!/usr/bin/env bash
# progress.sh PHASE DIR CMD...: runs CMD in DIR and says what runs and for
# how long, so that no phase of `make test` is silent for minutes: a line
# when it starts, one a minute while it runs, and one with its result and
# duration. Times in brackets count from the start of the make run
# (KS_START, seconds since the epoch, set by the Makefile).
set -euo pipefail
phase=$1 dir=$2
shift 2
start=${KS_START:-$(date +%s)}
stamp() { local s=$(($(date +%s) - start)); printf '%d:%02d' $((s / 60)) $((s % 60)); }

echo "==> [$(stamp)] $phase: $dir"
t0=$(date +%s)
(
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  while :; do
    sleep 60 &
    sp=$!
    wait "$sp"
    echo "    [$(stamp)] $phase: $dir still running ($((($(date +%s) - t0) / 60)) min)"
  done
) &
beat=$!
rc=0
(cd "$dir" && "$@") || rc=$?
kill "$beat" 2>/dev/null || true
wait "$beat" 2>/dev/null || true
result=ok
[ "$rc" -eq 0 ] || result="FAILED (exit $rc)"
echo "    [$(stamp)] $phase: $dir $result in $(($(date +%s) - t0))s"
exit "$rc"

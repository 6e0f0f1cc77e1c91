#!/usr/bin/env bash
# Runs libFuzzer targets for a fixed time each, from the source root:
#   bash fuzz/run.sh SECONDS TARGET...      (TARGET: avro, json, config, expr)
# Each build/fuzz/fuzz_TARGET runs on fuzz/corpus/TARGET (read only: inputs
# it finds go to a temporary directory, removed afterwards) with
# fuzz/TARGET.dict when there is one.  The full log is kept in
# build/fuzz/logs/TARGET.log.  A crash, a leak, a timeout (10 s per input)
# or running out of memory (2 GB) fails the target: the reproducer is saved
# under build/fuzz/artifacts/ and its path printed with the command that
# replays it.  Exit status 0 iff every target ran clean.
set -u
if [ $# -lt 2 ]; then
  echo "usage: $0 SECONDS TARGET..." >&2
  exit 2
fi
secs=$1
shift
build=${FUZZ_BUILD:-build/fuzz}
mkdir -p "$build/artifacts" "$build/logs"
work=$(mktemp -d "${TMPDIR:-/tmp}/tailor-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=()
for t in "$@"; do
  bin=$build/fuzz_$t
  log=$build/logs/$t.log
  if [ ! -x "$bin" ]; then
    echo "fuzz_$t: $bin is missing (make fuzz-build)"
    failed+=("$t")
    continue
  fi
  mkdir -p "$work/$t"
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=("-dict=fuzz/$t.dict")
  echo "=== fuzz_$t: ${secs}s on fuzz/corpus/$t"
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
    "${dict[@]}" "$work/$t" "fuzz/corpus/$t" </dev/null >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
  found=$(find "$work/$t" -type f | wc -l)
  if [ $rc -eq 0 ]; then
    echo "fuzz_$t: ok, ${execs:-?} executions, ${cov:-cov: ?}, $found new inputs"
    continue
  fi
  failed+=("$t")
  # The sanitizer report or the failed check, then where the input is.
  sed -n '/^==[0-9]*==\(ERROR\|WARNING\)\|fuzz check failed\|^ALARM\|runtime error\|out-of-memory\|deadly signal/,$p' \
    "$log" | head -n 120
  repro=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | tail -n 1)
  echo "fuzz_$t: FAILED (exit $rc) after ${execs:-?} executions; log $log"
  if [ -n "$repro" ]; then
    echo "fuzz_$t: reproducer $repro"
    echo "fuzz_$t: replay with: $bin $repro"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failing targets: ${failed[*]}"
  exit 1
fi
echo "fuzz: all targets ran clean"

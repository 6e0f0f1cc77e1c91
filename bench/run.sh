#!/usr/bin/env bash
# make bench: runs the benchmark driver (bench/bench.c) bounded in time and
# keeps its output in build/bench/last.txt.  Environment: BENCH_EVENTS
# (1000000), BENCH_RATE (20000), BENCH_PACED_SECONDS (15), BENCH_CONFIG
# (bench/bench.yaml), BENCH_DATA
# (../shared/data), BENCH_BOOTSTRAP (a real broker instead of the mock).
set -euo pipefail
driver=$1
data=${BENCH_DATA:-../shared/data}
for f in online_retail_uci.jsonl.gz complete_journey_sample.jsonl.gz; do
  [ -r "$data/$f" ] || { echo "bench: $data/$f not found (set BENCH_DATA)" >&2; exit 1; }
done
out=$(dirname "$driver")/last.txt
# The driver stops what it started by pid; the bound is for a hung broker.
timeout --signal=TERM --kill-after=30 900 "$driver" | tee "$out"
echo "(kept in $out)"

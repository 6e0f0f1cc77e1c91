#!/usr/bin/env bash
# Throughput with one and with N tailord instances in one consumer group, on
# a real Apache Kafka broker (tests/kafka/kafka-up.sh) and one redis-server,
# all on this machine (docs/scaling.md has the figures it printed here).
#
#   scripts/scale-bench.sh [ROUNDS] [MAX_INSTANCES]     (defaults: 20, 2)
#
# Produces the data slice ROUNDS times (19,303 events each) to a
# 12-partition topic, then for n = 1..MAX_INSTANCES: a fresh consumer group
# and Redis prefix, n instances started together, timed until the group has
# committed the end of every partition.  Everything it starts is stopped by
# pid.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20}
max=${2:-2}
bin=${TAILOR_BIN_DIR:-daemon}
tmp=$(mktemp -d /tmp/tailor-bench-XXXXXX)
kdir=$tmp/kafka
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  bash tests/kafka/kafka-down.sh "$kdir" >/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

bash tests/kafka/kafka-up.sh "$kdir" --partitions 12
brokers=$(sed -n 's/^bootstrap=//p' "$kdir/state")
rport=$((20000 + RANDOM % 10000))
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$tmp" --daemonize no --loglevel warning >"$tmp/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.1; done
export TAILOR_KAFKA_BROKERS=$brokers TAILOR_REDIS_URL=redis://127.0.0.1:$rport/0

files=()
for _ in $(seq "$rounds"); do files+=(tests/data/complete_journey_slice.jsonl.gz); done
"$bin/tailorctl" produce -b "$brokers" -t bench "${files[@]}"

lag() { "$bin/tailorctl" lag -b "$brokers" -g "$1" -t bench 2>/dev/null | sed -n 's/^lag //p'; }
for n in $(seq "$max"); do
  cat > "$tmp/bench-$n.yaml" <<YAML
kafka: { group: bench-$n, input: [bench], output: bench-triggers, dead_letter: bench-dlq,
         batch_size: 2000, batch_timeout: 20ms }
redis: { prefix: 'bench$n:' }
log: { level: warn }
features:
  - { name: purchases, kind: count, where: 'type == "purchase"' }
  - { name: spend, kind: sum, field: amount }
  - { name: week, kind: window_count, window: 7d }
  - { name: usual_dept, kind: top_k, field: 'attrs["department"]', k: 3, half_life: 30d }
  - { name: heat, kind: decayed_sum, field: amount, half_life: 14d }
  - { name: recent, kind: last_n, field: item, n: 3 }
  - { name: stores, kind: distinct, field: store }
triggers:
  - { name: busy_week, if: 'week >= 8', cooldown: 3d, emit: { message: '{{week}}' } }
  - { name: big_spender, if: 'spend >= 300', mode: edge, emit: { message: '{{spend}}' } }
YAML
  t0=$(date +%s.%N)
  inst=()
  for i in $(seq "$n"); do
    "$bin/tailord" -c "$tmp/bench-$n.yaml" 2>"$tmp/tailord-$n-$i.log" &
    inst+=($!); pids+=($!)
  done
  until [ "$(lag bench-$n)" = 0 ]; do sleep 0.2; done
  t1=$(date +%s.%N)
  for p in "${inst[@]}"; do kill -TERM "$p"; wait "$p" || true; done
  awk -v n="$n" -v e="$((rounds * 19303))" -v a="$t0" -v b="$t1" \
    'BEGIN { printf "%d instance(s): %d events in %.1f s = %.0f events/s\n", n, e, b - a, e / (b - a) }'
done

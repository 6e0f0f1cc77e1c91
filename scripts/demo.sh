#!/usr/bin/env bash
# make demo: a private redis-server, tailord on its embedded Kafka with
# config/demo.yaml, a replay of real grocery events, the triggers as they
# arrive, one customer's vector and the throughput.  Everything started here is
# stopped here, by pid, within two minutes.
set -euo pipefail
bin=${1:-daemon}
data=tests/data/complete_journey_slice.jsonl.gz
tmp=$(mktemp -d /tmp/tailor-demo-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
deadline=$((SECONDS + 110))
wait_for() { # wait_for DESCRIPTION COMMAND...
  local what=$1; shift
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "demo: timed out waiting for $what" >&2
      tail -n 20 "$tmp/tailord.log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}

echo "== starting a private redis-server on $tmp/redis.sock"
redis-server --port 0 --unixsocket "$tmp/redis.sock" --save "" --appendonly no \
  --dir "$tmp" --daemonize no --loglevel warning >"$tmp/redis.log" 2>&1 &
pids+=($!)
wait_for redis redis-cli -s "$tmp/redis.sock" ping
export TAILOR_REDIS_URL="unix://$tmp/redis.sock"

echo "== starting tailord --embedded -c config/demo.yaml"
"$bin/tailord" --embedded -c config/demo.yaml >"$tmp/tailord.out" 2>"$tmp/tailord.log" &
tailord_pid=$!
pids+=($tailord_pid)
wait_for "the embedded kafka" grep -q '^embedded kafka: ' "$tmp/tailord.out"
brokers=$(sed -n 's/^embedded kafka: //p' "$tmp/tailord.out" | head -n 1)
echo "   embedded kafka: $brokers"

"$bin/tailorctl" tail -b "$brokers" -t triggers >"$tmp/triggers.jsonl" 2>"$tmp/tail.log" &
pids+=($!)

events=$(zcat "$data" | wc -l)
echo "== replaying $events real events ($data)"
"$bin/tailorctl" produce -b "$brokers" -t interactions "$data"

echo "== waiting for tailord to process and commit everything"
drained() { "$bin/tailorctl" lag -b "$brokers" -g tailord -t interactions | tail -n 1 | grep -qx 'lag 0'; }
wait_for "tailord to drain the topic" drained
sleep 1

n=$(wc -l <"$tmp/triggers.jsonl")
echo "== $n triggers so far; the first ones:"
head -n 5 "$tmp/triggers.jsonl"
for rule in regular_at_the_till coupon_fan big_ticket; do
  printf '   %-20s %s\n' "$rule" "$(grep -c "\"rule\":\"$rule\"" "$tmp/triggers.jsonl" || true)"
done

cust=$(head -n 1 "$tmp/triggers.jsonl" | sed 's/.*"customer_id":"\([^"]*\)".*/\1/')
echo "== the vector of customer $cust"
"$bin/tailorctl" show -c config/demo.yaml "$cust"

echo "== stopping tailord (SIGTERM)"
kill -TERM "$tailord_pid"
wait "$tailord_pid" || { echo "demo: tailord exited with $?" >&2; exit 1; }
grep 'stopping:' "$tmp/tailord.log" | sed 's/.*\[tailord\] /   /'
echo "== demo done"

#!/usr/bin/env bash
# tailorctl against a redis-server and tailord's embedded Kafka of its own
# (loopback, unix socket): produce --skip-bad reports and counts the bad lines
# it skips, show prints times in ISO 8601 beside epoch ms, and a missing
# vector read without -c points at the key prefix, show -r with -c reads
# under the file's redis.prefix, and forget without any Kafka brokers fails
# at once, erasing nothing, instead of waiting for localhost:9092.  Run from the source root
# after `make all` (tests/run.sh does).
set -u
. tests/install/check.sh
bin=${TAILOR_BIN_DIR:-daemon}
tmp=$(mktemp -d)
redis_pid=
tailord_pid=
cleanup() {
  [ -n "$tailord_pid" ] && kill "$tailord_pid" 2>/dev/null && wait "$tailord_pid" 2>/dev/null
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
unset TAILOR_REDIS_URL TAILOR_KAFKA_BROKERS
redis-server --port 0 --unixsocket "$tmp/r.sock" --save "" --appendonly no >"$tmp/redis.log" 2>&1 &
redis_pid=$!
cat >"$tmp/t.yaml" <<YAML
kafka: { batch_timeout: 50ms }
redis: { url: "unix://$tmp/r.sock", prefix: "shop:" }
features:
  - { name: buys, kind: count }
  - { name: first_buy, kind: first_seen }
YAML
cat >"$tmp/ev.jsonl" <<'JSONL'
{"event_id":"e1","customer_id":"42","ts":1506209159000,"channel":"store","type":"purchase"}
this is not json
{"event_id":"e2","customer_id":"42","ts":1506209259000,"channel":"store","type":"purchase"}
{"event_id":"e3","ts":1506209359000,"channel":"store","type":"purchase"}
JSONL
for _ in $(seq 50); do [ -S "$tmp/r.sock" ] && break; sleep 0.1; done
"$bin/tailord" --embedded --partitions 1 -c "$tmp/t.yaml" >"$tmp/tailord.log" 2>&1 &
tailord_pid=$!
brokers=
for _ in $(seq 100); do
  brokers=$(sed -n 's/^embedded kafka: //p' "$tmp/tailord.log")
  [ -n "$brokers" ] && break
  sleep 0.1
done

stops_at_bad_line() {
  ! "$bin/tailorctl" produce -b "$brokers" -t interactions "$tmp/ev.jsonl" >/dev/null 2>"$tmp/err" &&
    grep -q "ev.jsonl:2: invalid JSON" "$tmp/err" || { cat "$tmp/err"; return 1; }
}
skips_bad_lines() {
  "$bin/tailorctl" produce -b "$brokers" -t interactions --skip-bad "$tmp/ev.jsonl" >"$tmp/out" 2>"$tmp/err" &&
    grep -q "^produced 2 events" "$tmp/out" &&
    grep -q "ev.jsonl:2: skipped: invalid JSON" "$tmp/err" &&
    grep -q "ev.jsonl:4: skipped: customer_id is missing" "$tmp/err" &&
    grep -q "skipped 2 bad lines" "$tmp/err" || { cat "$tmp/out" "$tmp/err"; return 1; }
}
shows_iso_times() {
  local i
  for i in $(seq 100); do # until tailord has flushed both events
    "$bin/tailorctl" show -c "$tmp/t.yaml" 42 >"$tmp/show" 2>&1 && grep -q "buys  *[2-9]" "$tmp/show" && break
    sleep 0.1
  done
  grep -q "(as of)  *1506209259000 (2017-09-23T23:27:39Z)$" "$tmp/show" &&
    grep -q "first_buy  *1506209159000 (2017-09-23T23:25:59Z)$" "$tmp/show" &&
    grep -q "buys  *[0-9]*$" "$tmp/show" || { cat "$tmp/show"; return 1; }
}
names_the_prefix() {
  ! "$bin/tailorctl" show -r "unix://$tmp/r.sock" 42 2>"$tmp/err" &&
    grep -q "key tailor:cx:{42}.*--prefix P or -c CONFIG" "$tmp/err" &&
    "$bin/tailorctl" show -r "unix://$tmp/r.sock" --prefix shop: 42 >/dev/null || { cat "$tmp/err"; return 1; }
}
brace_id_found() {
  # The pipeline writes, tailorctl show reads, redis-cli finds the documented
  # escaped key: all through the same tl_vec_key.
  printf '%s\n' '{"event_id":"b1","customer_id":"v}1","ts":1506209159000,"channel":"store","type":"purchase"}' >"$tmp/brace.jsonl"
  "$bin/tailorctl" produce -b "$brokers" -t interactions "$tmp/brace.jsonl" >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; return 1; }
  local i
  for i in $(seq 100); do
    "$bin/tailorctl" show -c "$tmp/t.yaml" 'v}1' >"$tmp/show" 2>&1 && grep -q "buys  *1$" "$tmp/show" && break
    sleep 0.1
  done
  grep -q "buys  *1$" "$tmp/show" &&
    [ "$(redis-cli -s "$tmp/r.sock" HGET 'shop:cx:%{v%7D1}' buys)" = 1 ] &&
    ! "$bin/tailorctl" show -r "unix://$tmp/r.sock" --prefix shop: 'v}2' 2>"$tmp/err" &&
    grep -q "(key shop:cx:%{v%7D2})" "$tmp/err" || { cat "$tmp/show" "$tmp/err"; return 1; }
}
show_r_uses_config_prefix() {
  "$bin/tailorctl" show -c "$tmp/t.yaml" -r "unix://$tmp/r.sock" 42 >"$tmp/show" 2>&1 &&
    grep -q "buys  *[1-9]" "$tmp/show" || { cat "$tmp/show"; return 1; }
}
forget_needs_brokers() {
  ! "$bin/tailorctl" forget -c "$tmp/t.yaml" 42 >/dev/null 2>"$tmp/err" &&
    grep -q "no Kafka brokers for the audit record: give -b BROKERS" "$tmp/err" &&
    "$bin/tailorctl" show -c "$tmp/t.yaml" 42 >/dev/null || { cat "$tmp/err"; return 1; }
}

if [ -z "$brokers" ]; then
  cat "$tmp/tailord.log"
  check "tailord --embedded starts" false
else
  check "produce stops at the first bad line" stops_at_bad_line
  check "produce --skip-bad reports each bad line and the count" skips_bad_lines
  check "show prints epoch ms with ISO 8601 UTC" shows_iso_times
  check "show without -c names the prefix it used" names_the_prefix
  check "an id with braces: written, shown, under its escaped key" brace_id_found
  check "show -r with -c reads under the file's redis.prefix" show_r_uses_config_prefix
  check "forget without brokers fails at once, erasing nothing" forget_needs_brokers
fi
finish tailorctl

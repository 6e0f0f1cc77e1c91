#!/usr/bin/env bash
# make bench-peer: tailord next to a peer, in the same run, on the same
# broker, Redis and topic (docs/benchmarks.md, "The Kafka Streams peer").
#
#   bench/peer.sh [--kafka-dir DIR | --bootstrap HOST:PORT]
#
# --kafka-dir: a broker tests/kafka/kafka-up.sh started in DIR (its state
# file gives the address and the pid, for the broker's CPU).  --bootstrap: any
# broker (its CPU is then not measured, unless PEER_BROKER_PID is set).
# Neither: this script starts one with kafka-up.sh in build/bench-peer/kafka
# and stops it (kafka-down.sh --purge) when it ends.
#
# It starts its own redis-server on a free loopback port, creates a
# 12-partition topic (PEER_PARTITIONS) with a name of this run, produces the
# Online Retail events as JSON lines (tailorctl produce --format json), then
# runs tailord on bench/peer.yaml, the Kafka Streams peer (bench/streams)
# at_least_once and exactly_once_v2, one after the other, each in a fresh
# group / application id and Redis key prefix; verifies the three results in
# Redis against a recomputation from the file; prints one table.
#
# Environment: PEER_DATA (../shared/data), PEER_EVENTS (all 272,875: the first
# N lines only), PEER_THREADS (1: the peer's stream threads; tailord has one
# pipeline thread), PEER_STORE (rocksdb | memory), PEER_TIMEOUT (600 s per
# run), TAILOR_BIN_DIR (daemon).  Everything is stopped by its pid.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bindir=${TAILOR_BIN_DIR:-daemon}
data=${PEER_DATA:-../shared/data}/online_retail_uci.jsonl.gz
parts=${PEER_PARTITIONS:-12}
threads=${PEER_THREADS:-1}
store=${PEER_STORE:-rocksdb}
run_timeout=${PEER_TIMEOUT:-600}
work=$root/build/bench-peer
jar=bench/streams/target/peer.jar
cp_file=bench/streams/target/classpath.txt

kafka_dir="" bootstrap="" own_kafka=""
while [ $# -gt 0 ]; do
  case $1 in
    --kafka-dir) kafka_dir=${2:?--kafka-dir needs DIR}; shift 2 ;;
    --bootstrap) bootstrap=${2:?--bootstrap needs HOST:PORT}; shift 2 ;;
    *) echo "peer: unknown argument $1 (usage: bench/peer.sh [--kafka-dir DIR | --bootstrap HOST:PORT])" >&2; exit 1 ;;
  esac
done
say() { echo "peer: $*" >&2; }
die() { echo "peer: $*" >&2; exit 1; }
[ -r "$data" ] || die "$data not found (set PEER_DATA to the folder of online_retail_uci.jsonl.gz)"
for b in tailord tailorctl; do
  [ -x "$bindir/$b" ] || die "$bindir/$b not built (make all)"
done
[ -s "$jar" ] && [ -s "$cp_file" ] || die "$jar not built (make bench-peer builds it)"
command -v redis-server >/dev/null || die "redis-server not found"

rm -rf "$work/state-"* "$work/redis"
mkdir -p "$work/redis"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$own_kafka" ]; then bash tests/kafka/kafka-down.sh "$own_kafka" --purge >&2 || true; fi
}
trap cleanup EXIT

if [ -z "$bootstrap" ] && [ -z "$kafka_dir" ]; then
  own_kafka=$work/kafka
  nice -n 19 bash tests/kafka/kafka-up.sh "$own_kafka" >&2 || die "no broker"
  kafka_dir=$own_kafka
fi
broker_pid=${PEER_BROKER_PID:-}
if [ -n "$kafka_dir" ]; then
  bootstrap=$(sed -n 's/^bootstrap=//p' "$kafka_dir/state")
  broker_pid=$(sed -n 's/^pid=//p' "$kafka_dir/state")
fi
case $bootstrap in 127.*|localhost:*) ;; *) die "bootstrap $bootstrap is not on loopback" ;; esac

java_cp="$jar:$(cat "$cp_file")"
jvm=(nice -n 19 java -Xms256m -Xmx1g -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$java_cp" tailor.peer.PeerApp)
peer() { timeout --signal=TERM --kill-after=30 $((run_timeout + 90)) "${jvm[@]}" "$@"; }

# CPU seconds (user + system) of a pid, from /proc/PID/stat.
hz=$(getconf CLK_TCK)
cpu_of() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 0; return; }
  sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$hz" '{printf "%.3f", ($12 + $13) / hz}'
}

# Redis, on a free loopback port, no persistence.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nice -n 19 redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$work/redis" >"$work/redis/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
rcli() { redis-cli -p "$port" "$@"; }
for _ in $(seq 100); do rcli PING >/dev/null 2>&1 && break; sleep 0.1; done
rcli PING >/dev/null || die "redis-server did not start (see $work/redis/redis.log)"
redis_cpu() { rcli INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.3f", s}'; }

# The input: all of the file, or its first PEER_EVENTS lines.
if [ -n "${PEER_EVENTS:-}" ]; then
  { zcat "$data" || true; } | head -n "$PEER_EVENTS" >"$work/events.jsonl"  # zcat: SIGPIPE
  input=$work/events.jsonl
  nev=$(wc -l <"$input")
else
  input=$data
  nev=$(zcat "$data" | wc -l)
fi
run=$(date +%s)
topic=peer.events.$run
say "broker $bootstrap (pid ${broker_pid:-?}), Redis 127.0.0.1:$port (pid $redis_pid), $nev events, topic $topic ($parts partitions)"
peer topics --bootstrap "$bootstrap" --partitions "$parts" "$topic" "peer.dlq.$run" \
  "peer.triggers.tailord.$run" "peer.triggers.alos.$run" "peer.triggers.eos.$run" \
  || die "could not create the topics"
t=$SECONDS
nice -n 19 "$bindir/tailorctl" produce -b "$bootstrap" -t "$topic" --format json "$input" >&2 \
  || die "tailorctl produce failed"
say "produced $nev events in $((SECONDS - t)) s"

declare -A EV RATE WALL CPU CPU1 RCPU BCPU TRIG
now_ms() { date +%s%3N; }

# tailord: until its group's lag is 0 (tailorctl lag), then SIGTERM; its own
# rate is its stop line's (first poll to last commit).
cfg=$work/peer.yaml
sed -e "s/^  group: .*/  group: peer-tailord-$run/" -e "s/^  input: .*/  input: [$topic]/" \
    -e "s/^  output: .*/  output: peer.triggers.tailord.$run/" \
    -e "s/^  dead_letter: .*/  dead_letter: peer.dlq.$run/" bench/peer.yaml >"$cfg"
r0=$(redis_cpu) b0=$(cpu_of "$broker_pid") w0=$(now_ms)
TAILOR_KAFKA_BROKERS=$bootstrap TAILOR_REDIS_URL=redis://127.0.0.1:$port/0 \
  nice -n 19 "$bindir/tailord" -c "$cfg" >"$work/tailord.log" 2>&1 &
td=$!
pids+=("$td")
deadline=$((SECONDS + run_timeout))
while :; do
  kill -0 "$td" 2>/dev/null || die "tailord exited; see $work/tailord.log"
  lag=$("$bindir/tailorctl" lag -b "$bootstrap" -g "peer-tailord-$run" -t "$topic" 2>/dev/null || true)
  # Nothing left, and every partition that has events committed (an
  # uncommitted one reads "committed -1001").
  if [ "$(tail -n1 <<<"$lag")" = "lag 0" ] &&
     awk '/ committed / && $4 < 0 && $6 > 0 {bad = 1} END {exit bad}' <<<"$lag"; then
    break
  fi
  [ $SECONDS -lt $deadline ] || die "tailord not drained within $run_timeout s"
  sleep 0.5
done
CPU[tailord]=$(cpu_of "$td")
CPU1[tailord]=${CPU[tailord]}
RCPU[tailord]=$(awk -v a="$(redis_cpu)" -v b="$r0" 'BEGIN{print a-b}')
BCPU[tailord]=$(awk -v a="$(cpu_of "$broker_pid")" -v b="$b0" 'BEGIN{print a-b}')
WALL[tailord]=$(awk -v a="$(now_ms)" -v b="$w0" 'BEGIN{printf "%.2f", (a-b)/1000}')
kill -TERM "$td"
wait "$td" || say "tailord exited with $? (see $work/tailord.log)"
stop=$(grep -o 'stopping: .*' "$work/tailord.log" | tail -n1)
EV[tailord]=$(sed -n 's/^stopping: \([0-9]*\) events.*/\1/p' <<<"$stop")
RATE[tailord]=$(sed -n 's/.*(\([0-9]*\) events\/s).*/\1/p' <<<"$stop")
TRIG[tailord]=$(sed -n 's/.*), \([0-9]*\) triggers.*/\1/p' <<<"$stop")
say "tailord: $stop"

# The peer: the JVM stops itself once it has processed every event, after
# closing its tasks (each flushes its vectors to Redis and commits); its
# rate is first record to closed, its CPU its own (OperatingSystemMXBean).
for mode in alos eos; do
  r0=$(redis_cpu) b0=$(cpu_of "$broker_pid") w0=$(now_ms)
  line=$(peer run --bootstrap "$bootstrap" --input "$topic" --output "peer.triggers.$mode.$run" \
           --app-id "peer-$mode-$run" --guarantee "$mode" --redis "127.0.0.1:$port" \
           --prefix "peer:$mode:" --events "$nev" --threads "$threads" --store "$store" \
           --state-dir "$work/state-$mode" --timeout-seconds "$run_timeout" \
           2>"$work/peer-$mode.log" | tee -a "$work/peer-$mode.log" | grep '^peer:') \
    || die "the $mode peer failed; see $work/peer-$mode.log"
  RCPU[$mode]=$(awk -v a="$(redis_cpu)" -v b="$r0" 'BEGIN{print a-b}')
  BCPU[$mode]=$(awk -v a="$(cpu_of "$broker_pid")" -v b="$b0" 'BEGIN{print a-b}')
  WALL[$mode]=$(awk -v a="$(now_ms)" -v b="$w0" 'BEGIN{printf "%.2f", (a-b)/1000}')
  EV[$mode]=$(sed -n 's/.* events=\([0-9]*\) .*/\1/p' <<<"$line")
  RATE[$mode]=$(sed -n 's/.* events_per_s=\([0-9]*\) .*/\1/p' <<<"$line")
  CPU[$mode]=$(sed -n 's/.* cpu_s=\([0-9.]*\) .*/\1/p' <<<"$line")
  CPU1[$mode]=$(sed -n 's/.* cpu_from_first_s=\([0-9.]*\) .*/\1/p' <<<"$line")
  TRIG[$mode]=$(sed -n 's/.* triggers=\([0-9]*\) .*/\1/p' <<<"$line")
  say "$line"
done

say "verifying every customer's vector in Redis against a recomputation from the file"
verify_rc=0
peer verify --redis "127.0.0.1:$port" --data "$input" \
  --prefixes "peer:tailord:,peer:alos:,peer:eos:" >"$work/verify.txt" 2>&1 || verify_rc=1
sed 's/^/  /' "$work/verify.txt"

per_m() { awk -v c="$1" -v n="$2" 'BEGIN{ if (n > 0) printf "%.2f", c / n * 1e6; else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "Online Retail as JSON, $nev events, $parts partitions; peer: Kafka Streams 3.9.1, $threads stream thread(s), $store store"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %12s %12s %12s\n' figure tailord "peer ALOS" "peer EOS v2"
row() { printf '%-44s %12s %12s %12s\n' "$1" "$2" "$3" "$4"; }
row "events processed" "${EV[tailord]}" "${EV[alos]}" "${EV[eos]}"
row "events/s (own: first record to last commit)" "${RATE[tailord]}" "${RATE[alos]}" "${RATE[eos]}"
row "wall s, process start to drained" "${WALL[tailord]}" "${WALL[alos]}" "${WALL[eos]}"
row "CPU s per M events, the processor" "$(per_m "${CPU[tailord]}" "$nev")" "$(per_m "${CPU[alos]}" "$nev")" "$(per_m "${CPU[eos]}" "$nev")"
row "  of which from its first event (*)" "$(per_m "${CPU1[tailord]}" "$nev")" "$(per_m "${CPU1[alos]}" "$nev")" "$(per_m "${CPU1[eos]}" "$nev")"
row "CPU s per M events, Redis" "$(per_m "${RCPU[tailord]}" "$nev")" "$(per_m "${RCPU[alos]}" "$nev")" "$(per_m "${RCPU[eos]}" "$nev")"
if [ -n "$broker_pid" ]; then
  row "CPU s per M events, the broker" "$(per_m "${BCPU[tailord]}" "$nev")" "$(per_m "${BCPU[alos]}" "$nev")" "$(per_m "${BCPU[eos]}" "$nev")"
fi
row "triggers produced" "${TRIG[tailord]}" "${TRIG[alos]}" "${TRIG[eos]}"
echo
printf '%-44s %12s %12s\n' "tailord / peer" "ALOS" "EOS v2"
printf '%-44s %12s %12s\n' "events/s (higher: tailord faster)" \
  "$(ratio "${RATE[tailord]}" "${RATE[alos]}")" "$(ratio "${RATE[tailord]}" "${RATE[eos]}")"
printf '%-44s %12s %12s\n' "processor CPU per event (lower: tailord cheaper)" \
  "$(ratio "${CPU[tailord]}" "${CPU[alos]}")" "$(ratio "${CPU[tailord]}" "${CPU[eos]}")"
tot() { awk -v a="${CPU[$1]}" -v b="${RCPU[$1]}" -v c="${BCPU[$1]:-0}" 'BEGIN{print a+b+c}'; }
printf '%-44s %12s %12s\n' "  the same, from the peer's first event (*)" \
  "$(ratio "${CPU1[tailord]}" "${CPU1[alos]}")" "$(ratio "${CPU1[tailord]}" "${CPU1[eos]}")"
printf '%-44s %12s %12s\n' "processor+Redis+broker CPU per event" \
  "$(ratio "$(tot tailord)" "$(tot alos)")" "$(ratio "$(tot tailord)" "$(tot eos)")"
echo "(*) the JVM's start (class loading, JIT, joining the group) left out; tailord's start is a"
echo "    few milliseconds of CPU and is counted in both rows"
echo "verification: $(grep -c 'fields differ' "$work/verify.txt") prefixes compared, $([ $verify_rc = 0 ] && echo 'all equal' || echo 'MISMATCHES (above)')"
echo "(logs in $work)"
exit $verify_rc

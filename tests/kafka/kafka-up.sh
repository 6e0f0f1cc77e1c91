#!/usr/bin/env bash
# Starts a single-node Apache Kafka (KRaft, combined broker + controller) on
# free loopback ports for the real-broker tests, and waits until it serves
# metadata.
#
#   tests/kafka/kafka-up.sh DIR [--scram USER:PASSWORD] [--partitions N]
#
# DIR holds the broker's configuration, data, log (DIR/kafka.log) and its
# state file DIR/state (shell syntax):
#   pid=…  bootstrap=127.0.0.1:P  sasl_bootstrap=127.0.0.1:S (with --scram)
#   sasl_user=…  sasl_password=…
# Run again on the same DIR (after kafka-down or a kill -9), it restarts the
# same broker on the same ports with the data it had; tests use that to
# restart the broker mid-stream.  --scram adds a SASL_PLAINTEXT listener
# with SCRAM-SHA-256 and creates USER's credential when the storage is
# formatted.
# --partitions N lets producers create topics, with N partitions (benchmarks;
# the tests create theirs).
#
# The broker and its runtime dependencies come from Maven Central
# (tests/kafka/pom.xml pins the version), cached in ~/.m2; the classpath is
# kept in build/kafka/classpath.txt.  Exit 0 once the broker serves
# metadata; 1 with the reason (and the log's tail) otherwise.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${1:?usage: kafka-up.sh DIR [--scram USER:PASSWORD]}
shift
scram=""
auto_parts=""
while [ $# -gt 0 ]; do
  case $1 in
    --scram) scram=${2:?--scram needs USER:PASSWORD}; shift 2 ;;
    --partitions) auto_parts=${2:?--partitions needs N}; shift 2 ;;
    *) echo "kafka-up: unknown argument $1" >&2; exit 1 ;;
  esac
done
start_timeout=${KAFKA_START_TIMEOUT:-90}

for tool in java mvn; do
  command -v $tool >/dev/null 2>&1 || { echo "kafka-up: $tool not found (Debian: openjdk-17-jre-headless, maven)" >&2; exit 1; }
done

cp_file=$root/build/kafka/classpath.txt
if [ ! -s "$cp_file" ] || [ "$cp_file" -ot "$here/pom.xml" ] ||
   ! tr ':' '\n' < "$cp_file" | while read -r j; do [ -f "$j" ] || exit 1; done; then
  version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
  echo "kafka-up: fetching Apache Kafka $version (org.apache.kafka:kafka_2.13) and its dependencies from Maven Central (first time only; cached in ~/.m2)"
  mkdir -p "$(dirname "$cp_file")"
  if ! mvn -B -q -f "$here/pom.xml" dependency:build-classpath \
        -Dmdep.outputFile="$cp_file.tmp" >"$root/build/kafka/mvn.log" 2>&1; then
    echo "kafka-up: Maven could not fetch Kafka; see $root/build/kafka/mvn.log:" >&2
    tail -20 "$root/build/kafka/mvn.log" >&2
    exit 1
  fi
  mv "$cp_file.tmp" "$cp_file"
fi
cp=$(cat "$cp_file")

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
state=$dir/state
if [ -f "$state" ]; then
  pid=$(sed -n 's/^pid=//p' "$state")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "kafka-up: already running (pid $pid, $dir)"; exit 0
  fi
fi

# A port nobody listens on, from a range clear of the ephemeral one
# (32768-60999), so an outgoing connection does not take it meanwhile.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    ss -Htln "sport = :$p" | grep -q . || { echo $p; return; }
  done
}

props=$dir/server.properties
if [ ! -f "$dir/formatted" ]; then
  rm -rf "$dir/data"
  port=$(free_port); cport=$(free_port); sport=""
  while [ "$cport" = "$port" ]; do cport=$(free_port); done
  listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
  advertised="PLAINTEXT://127.0.0.1:$port"
  if [ -n "$scram" ]; then
    sport=$(free_port)
    while [ "$sport" = "$port" ] || [ "$sport" = "$cport" ]; do sport=$(free_port); done
    listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$sport"
    advertised="$advertised,SASL_PLAINTEXT://127.0.0.1:$sport"
  fi
  # Small and quick: one partition for the internal topics, no initial
  # rebalance delay, short minimum session timeout (the tests pause an
  # instance past it), messages up to 16 MiB (the poison suite's big one).
  cat > "$props" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
controller.listener.names=CONTROLLER
listeners=$listeners
advertised.listeners=$advertised
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-256
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$dir/data
num.partitions=${auto_parts:-1}
auto.create.topics.enable=$([ -n "$auto_parts" ] && echo true || echo false)
delete.topic.enable=true
offsets.topic.num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
log.flush.interval.messages=9223372036854775807
PROPS
  cat > "$dir/log4j.properties" <<'LOG'
log4j.rootLogger=WARN, f
log4j.appender.f=org.apache.log4j.FileAppender
log4j.appender.f.File=${kafka.logs.dir}/kafka.log
log4j.appender.f.layout=org.apache.log4j.PatternLayout
log4j.appender.f.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
LOG
  # A Kafka Uuid (16 random bytes, URL-safe base64), drawn again while it
  # starts with '-' as Kafka's own Uuid.randomUuid does: kafka-storage takes
  # "-t -abc" for an option, and the format failed once in 64 starts.
  cluster_id=-
  while [ "${cluster_id#-}" != "$cluster_id" ]; do
    cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  done
  format_args=(format -t "$cluster_id" -c "$props")
  if [ -n "$scram" ]; then
    format_args+=(--add-scram "SCRAM-SHA-256=[name=\"${scram%%:*}\",password=\"${scram#*:}\"]")
  fi
  if ! java -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j.configuration=file:$dir/log4j.properties \
        -Dkafka.logs.dir="$dir" -cp "$cp" kafka.tools.StorageTool "${format_args[@]}" \
        >"$dir/format.log" 2>&1; then
    echo "kafka-up: formatting the KRaft storage failed:" >&2
    cat "$dir/format.log" >&2
    exit 1
  fi
  touch "$dir/formatted"
  {
    echo "bootstrap=127.0.0.1:$port"
    if [ -n "$scram" ]; then
      echo "sasl_bootstrap=127.0.0.1:$sport"
      echo "sasl_user=${scram%%:*}"
      echo "sasl_password=${scram#*:}"
    fi
  } > "$dir/addresses"
fi

bootstrap=$(sed -n 's/^bootstrap=//p' "$dir/addresses")
port=${bootstrap##*:}
: > "$dir/kafka.log"
# Small heap, C1 only and no JIT warm-up cost worth paying for a short test
# run on two cores.
setsid java -Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
  -Djava.awt.headless=true -Dlog4j.configuration=file:$dir/log4j.properties \
  -Dkafka.logs.dir="$dir" -cp "$cp" kafka.Kafka "$props" \
  >"$dir/kafka.out" 2>&1 < /dev/null &
pid=$!
{ echo "pid=$pid"; cat "$dir/addresses"; } > "$state"

# "Kafka Server started" comes once the broker has caught up with the
# metadata log and opened its listeners: from then on it answers Metadata.
deadline=$((SECONDS + start_timeout))
while :; do
  if grep -q "Kafka Server started" "$dir/kafka.log" 2>/dev/null &&
     (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "kafka-up: Apache Kafka serving at $bootstrap (pid $pid, $dir)"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "kafka-up: the broker exited during start; $dir/kafka.out and kafka.log end with:" >&2
    tail -20 "$dir/kafka.out" "$dir/kafka.log" >&2
    exit 1
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "kafka-up: the broker did not serve within $start_timeout s; stopping it (pid $pid). Log tail:" >&2
    tail -20 "$dir/kafka.log" >&2
    kill -9 "$pid" 2>/dev/null || true
    exit 1
  fi
  sleep 0.3
done

#!/usr/bin/env bash
# Stops the broker kafka-up.sh started in DIR, by the pid in DIR/state:
# SIGTERM (a controlled shutdown), SIGKILL after 20 s.  --purge then removes
# DIR (data and all).  Exit 0 when nothing is left running.
#   tests/kafka/kafka-down.sh DIR [--purge]
set -uo pipefail
dir=${1:?usage: kafka-down.sh DIR [--purge]}
pid=$(sed -n 's/^pid=//p' "$dir/state" 2>/dev/null)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka-down: pid $pid still running after 20 s; SIGKILL" >&2
    kill -KILL "$pid"
  fi
  echo "kafka-down: stopped pid $pid ($dir)"
fi
[ "${2:-}" = --purge ] && rm -rf "$dir"
exit 0

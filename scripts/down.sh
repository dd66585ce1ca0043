#!/usr/bin/env bash
# Stops every process `make up` started, by the pid it recorded, and waits for each to exit.
set -uo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
for pidfile in var/run/*.pid; do
  name=$(basename "$pidfile" .pid)
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then echo "$name (pid $pid) did not stop; killing it"; kill -KILL "$pid"; fi
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
done

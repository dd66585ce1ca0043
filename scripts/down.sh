#!/usr/bin/env bash
# Stops every process `make up` started, by the pid it recorded (and its process group), and waits for each.
set -uo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
for pidfile in "${PLATFORM_VAR:-var}"/run/*.pid; do
  name=$(basename "$pidfile" .pid)
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    # Each process leads its own group (up.sh starts it with setsid): stop the group, children too.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 -- "-$pid" 2>/dev/null; then
      echo "$name (pid $pid) did not stop in 30 s; killing its process group"
      kill -KILL -- "-$pid" 2>/dev/null
    fi
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
done

#!/usr/bin/env bash
# Starts COMMAND in the background as `make up` starts each of its processes (scripts/up.sh): in its
# own session, so `make down` stops its process group, children included (Airflow's workers), with
# its pid in $PLATFORM_VAR/run/NAME.pid and its output in $PLATFORM_VAR/log/NAME.log, rotated at
# 10 MB with 5 kept (scripts/rotate_log.py, which ends after the process, keeping its last words).
# Usage: start.sh NAME COMMAND...
set -euo pipefail
name=$1; shift
run=$PLATFORM_VAR/run logs=$(cd "$PLATFORM_VAR" && pwd)/log  # absolute: make down finds its rotations by it
pidfile=$run/$name.pid
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "$name already running (pid $(cat "$pidfile"))"; exit 0
fi
# The rotation's own output goes to a file of its own, never to ours: a caller reading ours to its end
# (`make up | tee`, ssh) would otherwise wait for every process to stop.
rotate=("${PYTHON:-python}" "$(dirname "$0")/rotate_log.py" "$logs/$name.log")
nohup setsid "$@" > >(exec "${rotate[@]}" >>"$logs/rotate.log" 2>&1) 2>&1 &
echo $! >"$pidfile"
echo "started $name (pid $!), log $logs/$name.log"

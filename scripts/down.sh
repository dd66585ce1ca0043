#!/usr/bin/env bash
# Stops every process `make up` started, by the pid it recorded (and its process group), and waits for each.
# Airflow's task runners first, while the servers their running tasks talk to are still up (a task
# whose api-server is gone retries for half a minute before the scheduler can exit), then the rest.
# Within a stage every process is asked at once and waited for together.
set -uo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
run="${PLATFORM_VAR:-var}/run"
logs=$(cd "${PLATFORM_VAR:-var}" 2>/dev/null && pwd)/log
FIRST=(airflow-scheduler airflow-triggerer airflow-dag-processor event-maker)

# The groups that descendants of the given groups' processes made and lead: Airflow's task supervisor
# puts each task in a group of its own (setpgid), which a group kill missed: running tasks outlived
# `make down`, old code beside the new after an upgrade (found from outside). Only groups they lead:
# a log rotation is a service's child in the group of whoever ran `make up` (its shell, a test).
groups_below() {
  ps -e -o pid=,ppid=,pgid= | awk -v roots=" $* " -v own="$(ps -o pgid= $$ | tr -d ' ')" '
    { ppid[$1] = $2; pgid[$1] = $3 }
    END {
      for (p in ppid) {
        if (pgid[p] != p || p == own || index(roots, " " p " ")) continue
        for (q = ppid[p]; q > 1 && (q in ppid); q = ppid[q])
          if (index(roots, " " pgid[q] " ")) { print p; break }
      }
    }'
}

stop_together() {
  local pidfile name pid group waiting=() groups=() detached=()
  for pidfile in "$@"; do groups+=("$(cat "$pidfile")"); done
  for group in $(groups_below "${groups[@]}"); do
    kill -TERM -- "-$group" 2>/dev/null && detached+=("$group")
  done
  for pidfile in "$@"; do
    pid=$(cat "$pidfile")
    # Each process leads its own group (up.sh starts it with setsid): stop the group, children too,
    # also when its leader died and left them (a killed scheduler's workers).
    if kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
      waiting+=("$pidfile")
    else
      rm -f "$pidfile"
    fi
  done
  for _ in $(seq 1 60); do
    local left=() still=()
    for pidfile in "${waiting[@]}"; do
      if kill -0 -- "-$(cat "$pidfile")" 2>/dev/null; then left+=("$pidfile"); else
        echo "stopped $(basename "$pidfile" .pid) (pid $(cat "$pidfile"))"
        rm -f "$pidfile"
      fi
    done
    for group in "${detached[@]}"; do
      if kill -0 -- "-$group" 2>/dev/null; then still+=("$group"); fi
    done
    waiting=("${left[@]}") detached=("${still[@]}")
    [ ${#waiting[@]} -eq 0 ] && [ ${#detached[@]} -eq 0 ] && return
    sleep 0.5
  done
  for pidfile in "${waiting[@]}"; do
    name=$(basename "$pidfile" .pid) pid=$(cat "$pidfile")
    echo "$name (pid $pid) did not stop in 30 s; killing its process group"
    kill -KILL -- "-$pid" 2>/dev/null
    rm -f "$pidfile"
  done
  for group in "${detached[@]}"; do
    echo "a task's process group $group did not stop in 30 s; killing it"
    kill -KILL -- "-$group" 2>/dev/null
  done
}

first=() rest=()
for pidfile in "$run"/*.pid; do
  if [[ " ${FIRST[*]} " == *" $(basename "$pidfile" .pid) "* ]]; then first+=("$pidfile"); else rest+=("$pidfile"); fi
done
[ ${#first[@]} -gt 0 ] && stop_together "${first[@]}"
[ ${#rest[@]} -gt 0 ] && stop_together "${rest[@]}"
# The log rotations end by themselves once their process has (scripts/rotate_log.py): wait for them.
for _ in $(seq 1 20); do
  pgrep -f "rotate_log.py $logs/" >/dev/null || break
  sleep 0.25
done
exit 0

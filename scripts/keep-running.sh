#!/usr/bin/env bash
# Runs a command, and again after a pause whenever it exits (a crashed Airflow scheduler would leave
# the platform without runs, with only an alert to say so). `make down` stops the whole process group.
# A command that exits within QUICK seconds of its start three times in a row cannot start (a setting
# it refuses): it gives up with its status, instead of writing the same error every 5 s for ever and
# holding its pid file (a `make up` run again after the fix found it "already running").
set -u
quick=10 failed=0
while :; do
  started=$SECONDS
  "$@"
  status=$?
  if (( SECONDS - started < quick )); then failed=$((failed + 1)); else failed=0; fi
  if (( failed >= 3 )); then
    echo "$(date -u +%FT%TZ) keep-running: '$*' exited with status $status within ${quick} s of its start 3 times in a row; giving up (the lines above say why)" >&2
    exit "$status"
  fi
  echo "$(date -u +%FT%TZ) keep-running: '$*' exited with status $status; starting it again in 5 s" >&2
  sleep 5
done

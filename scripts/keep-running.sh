#!/usr/bin/env bash
# Runs a command, and again after a pause whenever it exits (a crashed Airflow scheduler would leave
# the platform without runs, with only an alert to say so). `make down` stops the whole process group.
set -u
while :; do
  "$@"
  status=$?
  echo "$(date -u +%FT%TZ) keep-running: '$*' exited with status $status; starting it again in 5 s" >&2
  sleep 5
done

#!/usr/bin/env bash
# The daily housekeeping round, for a container or host that runs it for ever (compose's
# `housekeeping` service): Airflow's runs, XComs and task logs older than KEEP_DAYS days
# (scripts/airflow-housekeeping.sh) and Base B's tombstones and closed rejections older than
# PURGE_DAYS days (`flask --app api_service purge`). README, "Housekeeping".
# Needs Airflow's environment and API_DATABASE_URL. A failed round is logged and tried again after
# HOUSEKEEPING_RETRY_SECONDS: never a tight loop, and never an exit (a restart policy would run it
# again at once, and a wrong setting would loop). Settings that cannot work are refused at the start.
set -uo pipefail
keep_days=${KEEP_DAYS:-7}
purge_days=${PURGE_DAYS:-90}
every=${HOUSEKEEPING_EVERY_SECONDS:-86400}
retry=${HOUSEKEEPING_RETRY_SECONDS:-3600}
here=$(dirname "$0")

refuse() { echo "daily-housekeeping: $1" >&2; exit 2; }
[[ $keep_days =~ ^[1-9][0-9]*$ ]] || refuse "KEEP_DAYS=$keep_days: a whole number of days, at least 1 (runs in flight are kept)"
[[ $purge_days =~ ^[1-9][0-9]*$ ]] || refuse "PURGE_DAYS=$purge_days: a whole number of days, at least 1 (keep more than any replay reaches back)"
[[ $every =~ ^[1-9][0-9]*$ ]] || refuse "HOUSEKEEPING_EVERY_SECONDS=$every: a whole number of seconds, at least 1"
[[ $retry =~ ^[1-9][0-9]*$ ]] || refuse "HOUSEKEEPING_RETRY_SECONDS=$retry: a whole number of seconds, at least 1"
[ -n "${API_DATABASE_URL:-}" ] || refuse "API_DATABASE_URL is not set: the purge needs Base B's database"

# As PID 1 in a container bash ignores SIGTERM unless trapped: `docker compose stop` ends the wait at once.
trap 'exit 0' TERM INT
while :; do
  failed=()
  bash "$here/airflow-housekeeping.sh" "$keep_days" || failed+=("Airflow's housekeeping")
  flask --app api_service purge --older-than "$purge_days" || failed+=("Base B's purge")
  if [ ${#failed[@]} -eq 0 ]; then
    wait_seconds=$every
    echo "daily-housekeeping: done; next round in ${wait_seconds}s"
  else
    wait_seconds=$retry
    echo "daily-housekeeping: $(IFS=,; echo "${failed[*]}" | sed 's/,/ and /') failed (above); next round in ${wait_seconds}s" >&2
  fi
  sleep "$wait_seconds" &
  wait $!
done

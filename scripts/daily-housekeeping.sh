#!/usr/bin/env bash
# The daily housekeeping round, for a container or host that runs it for ever (compose's
# `housekeeping` service): Airflow's runs, XComs and task logs older than KEEP_DAYS days
# (scripts/airflow-housekeeping.sh) and Base B's tombstones and closed rejections older than
# PURGE_DAYS days (`flask --app api_service purge`). README, "Housekeeping".
# Needs Airflow's environment and API_DATABASE_URL. A failed round is logged and tried again after
# HOUSEKEEPING_RETRY_SECONDS: never a tight loop, and never an exit (a restart policy would run it
# again at once). HOUSEKEEPING_STATUS_FILE (compose's health check reads it) holds the last outcome:
# `starting <time>` (the first round runs), `ok <time>` (when the last round ended), `failed: ...` or
# `refused: ...`. Settings that cannot work are refused at the start: exit
# 2, or with a status file (a container under a restart policy) the reason there and a wait for
# SIGTERM, so that the container shows unhealthy instead of restarting for ever (not with --once:
# a CronJob's Job has no restart policy to wait out, and a wait would keep the Job running).
# `daily-housekeeping.sh --health` is compose's health check: it reads the status file (below, health).
# `daily-housekeeping.sh --once` runs one round and exits with its outcome (0, or 1 if a part failed;
# 2 a setting refused; 143 stopped by SIGTERM, 130 by SIGINT, before the round ended), for a scheduler
# that runs it daily itself (deploy/helm/housekeeping-cronjob.yaml, a Kubernetes CronJob).
set -uo pipefail
keep_days=${KEEP_DAYS:-7}
purge_days=${PURGE_DAYS:-90}
every=${HOUSEKEEPING_EVERY_SECONDS:-86400}
retry=${HOUSEKEEPING_RETRY_SECONDS:-3600}
# The longest a round may take: an `ok` older than `every` plus this is a round that hangs (or a loop
# gone). Compose's start_period is the same: "starting" until the first round ends, within it.
round=${HOUSEKEEPING_ROUND_SECONDS:-7200}
status=${HOUSEKEEPING_STATUS_FILE:-}

# Healthy only after a round that succeeded, and not longer ago than a round's wait and length: the
# `ok` line alone stayed healthy for ever behind a hung round. The first round in flight (`starting`)
# fails the check, which Docker shows as "starting" within the start period.
health() {
  local line when age
  [[ $every =~ ^[1-9][0-9]*$ && $round =~ ^[1-9][0-9]*$ ]] || { echo "unhealthy: a setting is refused (the log says which)"; exit 1; }
  line=$(head -n 1 "$status" 2>/dev/null) || { echo "unhealthy: no status in ${status:-HOUSEKEEPING_STATUS_FILE (unset)}"; exit 1; }
  case $line in
    "ok "*)
      when=$(date -u -d "${line#ok }" +%s 2>/dev/null) || { echo "unhealthy: unreadable status: $line"; exit 1; }
      age=$(( $(date -u +%s) - when ))
      if (( age > every + round )); then
        echo "unhealthy: the last round ended ${age}s ago, past the ${every}s wait and ${round}s a round may take (HOUSEKEEPING_ROUND_SECONDS): a round hangs"
        exit 1
      fi
      echo "healthy: the last round ended ${age}s ago"
      exit 0 ;;
    "starting "*) echo "starting: the first round runs since ${line#starting }"; exit 1 ;;
    *) echo "unhealthy: $line"; exit 1 ;;
  esac
}
[ "${1:-}" != --health ] || health
once=
[ "${1:-}" != --once ] || once=1
here=$(dirname "$0")
child=
stopping=

# As PID 1 in a container bash ignores SIGTERM unless trapped: `docker compose stop` ends a wait at
# once, and a step in flight is stopped with its whole process group (each batch of a step is its
# own transaction: nothing is left half done). `stopping` is the exit status of a signal's death.
trap 'stopping=143; [ -z "$child" ] || kill -TERM -- "-$child" 2>/dev/null' TERM
trap 'stopping=130; [ -z "$child" ] || kill -TERM -- "-$child" 2>/dev/null' INT
say() { [ -z "$status" ] || printf '%s\n' "$1" > "$status"; }
# A stop ends the loop with 0 (compose's `stop`, the loop's normal end); one round (--once) stopped
# before it ended did not do its work: a CronJob's Job must not count it done.
stopped() {
  [ -z "$once" ] || exit "$stopping"
  exit 0
}
# A step (or a wait) in a process group of its own, which the trap can stop.
run() {
  [ -z "$stopping" ] || stopped  # a stop between steps: no next one
  setsid "$@" &
  child=$!
  [ -z "$stopping" ] || kill -TERM -- "-$child" 2>/dev/null  # a stop before `child` was set
  wait "$child"
  local rc=$?
  [ -z "$stopping" ] || wait "$child" 2>/dev/null
  child=
  [ -z "$stopping" ] || stopped
  return $rc
}
refuse() {
  echo "daily-housekeeping: $1" >&2
  say "refused: $1"
  [ -n "$status" ] && [ -z "$once" ] || exit 2
  run sleep infinity
}

[[ $keep_days =~ ^[1-9][0-9]*$ ]] || refuse "KEEP_DAYS=$keep_days: a whole number of days, at least 1 (runs in flight are kept)"
[[ $purge_days =~ ^[1-9][0-9]*$ ]] || refuse "PURGE_DAYS=$purge_days: a whole number of days, at least 1 (keep more than any replay reaches back)"
[[ $every =~ ^[1-9][0-9]*$ ]] || refuse "HOUSEKEEPING_EVERY_SECONDS=$every: a whole number of seconds, at least 1"
[[ $retry =~ ^[1-9][0-9]*$ ]] || refuse "HOUSEKEEPING_RETRY_SECONDS=$retry: a whole number of seconds, at least 1"
[[ $round =~ ^[1-9][0-9]*$ ]] || refuse "HOUSEKEEPING_ROUND_SECONDS=$round: a whole number of seconds, at least 1 (the longest a round may take)"
[ -n "${API_DATABASE_URL:-}" ] || refuse "API_DATABASE_URL is not set: the purge needs Base B's database"

say "starting $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
while :; do
  failed=()
  run bash "$here/airflow-housekeeping.sh" "$keep_days" || failed+=("Airflow's housekeeping")
  run flask --app api_service purge --older-than "$purge_days" || failed+=("Base B's purge")
  if [ ${#failed[@]} -eq 0 ]; then
    wait_seconds=$every
    say "ok $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
    [ -z "$once" ] || { echo "daily-housekeeping: done"; exit 0; }
    echo "daily-housekeeping: done; next round in ${wait_seconds}s"
  else
    wait_seconds=$retry
    what=$(IFS=,; echo "${failed[*]}" | sed 's/,/ and /')
    say "failed: $what"
    [ -z "$once" ] || { echo "daily-housekeeping: $what failed (above)" >&2; exit 1; }
    echo "daily-housekeeping: $what failed (above); next round in ${wait_seconds}s" >&2
  fi
  run sleep "$wait_seconds"
done

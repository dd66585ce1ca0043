#!/usr/bin/env bash
# Airflow's housekeeping (README, "Housekeeping"): delete the runs, task instances, XComs, audit log
# rows, asset events and task log files older than DAYS days (default 7). Airflow keeps them all
# forever, and tasks may not touch its metadata database, so no DAG can do this: run it daily, in the
# Airflow environment (`make housekeeping` for `make up`, which sources scripts/airflow-env.sh). Safe
# while Airflow runs: no task reads an earlier run's XCom, and the sync state (watermarks, held
# deletes) lives in Variables, which `airflow db clean` never deletes.
set -euo pipefail
days=${1:-7}
# At least a day: `airflow db clean` deletes a run by its start, running or not (with its task
# instances and a mass-delete approval still waiting), and a run may last 12 h of approval plus
# its tasks' 6 h (review: DAYS=0 deleted the runs in flight).
if ! [[ $days =~ ^[0-9]+$ ]] || [ "$days" -lt 1 ]; then
  echo "usage: $0 [DAYS]   keep the last DAYS whole days, at least 1 (default 7)" >&2
  exit 2
fi
before=$(date -u -d "$days days ago" '+%Y-%m-%d %H:%M:%S+00:00' 2>/dev/null ||
  python3 -c 'import datetime as d, sys; print((d.datetime.now(d.timezone.utc) - d.timedelta(days=int(sys.argv[1]))).isoformat(" ", "seconds"))' "$days")
# --skip-archive: without it the rows are moved to _airflow_deleted__* tables, and the database keeps growing.
airflow db clean --clean-before-timestamp "$before" \
  --tables dag_run,task_instance,task_instance_history,task_reschedule,xcom,log,job,asset_event,callback,celery_taskmeta,celery_tasksetmeta \
  --skip-archive --error-on-cleanup-failure --yes
logs=$(airflow config get-value logging base_log_folder | tail -n 1)
if [ -d "$logs" ]; then
  find "$logs" -mindepth 1 -type f -mmin +$((days * 1440)) -delete
  find "$logs" -mindepth 1 -type d -empty -mmin +60 -delete  # emptied today: gone in tomorrow's round
else
  echo "no task log folder at '$logs' (airflow config get-value logging base_log_folder): task logs not cleaned" >&2
fi
echo "Airflow's runs and task logs before $before deleted"

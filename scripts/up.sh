#!/usr/bin/env bash
# Starts the platform on embedded defaults (no external servers): Base B on SQLite, migrated,
# and the REST API under gunicorn. Every process runs in the background with its pid in var/run
# and its log in var/log; `make down` stops them. Set API_DATABASE_URL to use PostgreSQL instead.
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
  nohup "$@" >"var/log/$name.log" 2>&1 &
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
for _ in $(seq 1 60); do
  if "$VENV/bin/python" -c "import sys, urllib.request; [urllib.request.urlopen(u, timeout=1) for u in sys.argv[1:]]" \
      "$url/ready" "$gql/ready" 2>/dev/null; then
    cat <<MSG

The platform is up.
  REST API        $url            (docs: $url/docs, metrics: $url/metrics)
  GraphQL         $gql/graphql    (GraphiQL explorer in a browser; metrics: $gql/metrics)
  write token     $(if [ -s var/api-token ]; then echo "in var/api-token"; else echo "from API_TOKENS"; fi)
  Base B          $API_DATABASE_URL
Stop everything with: make down
MSG
    exit 0
  fi
  sleep 0.5
done
echo "the services did not become ready; see var/log/" >&2
exit 1

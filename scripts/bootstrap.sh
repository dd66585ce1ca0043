#!/usr/bin/env bash
# Installs what the project needs into .venv: system headers (when root and missing), then the
# locked Python dependencies. Safe to run again; `make` runs it when the inputs change.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

# System packages: headers that mysqlclient compiles against.
need_apt=()
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
pkg-config --exists libmariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null || need_apt+=(libmariadb-dev)
# Optional: Prometheus and promtool for the monitoring tests, Chromium for the browser test, nginx for
# the gateway test, hey for the load test (the tests skip without them, and fail under CI).
want_apt=()
command -v promtool >/dev/null || want_apt+=(prometheus)
command -v chromium >/dev/null || want_apt+=(chromium)
command -v hey >/dev/null || want_apt+=(hey)  # the load generator of the load test and `make bench`
command -v nginx >/dev/null || want_apt+=(nginx-light)  # runs the compose gateway's config (tests/deploy/test_gateway.py)
if ((${#need_apt[@]} + ${#want_apt[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing system packages: ${need_apt[*]} ${want_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" "${want_apt[@]}" >/dev/null
  elif ((${#need_apt[@]})); then
    echo "bootstrap: missing ${need_apt[*]}; install them (e.g. sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  else
    echo "bootstrap: ${want_apt[*]} not installed: the tests that need them will skip" >&2
  fi
fi

# Python 3.11+.
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3 python3.11 python3.12 python3.13; do
    if "$candidate" -c "import sys; sys.exit(sys.version_info < (3, 11))" 2>/dev/null; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "bootstrap: Python 3.11 or newer is required" >&2; exit 1; }

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv>=0.5,<1"
# Bytecode compiled once here: uv does not by default, and where PYTHONDONTWRITEBYTECODE is set (as on
# the CI machines) every process would compile Airflow and the rest again (an airflow CLI call 7 s -> 3 s).
"$VENV/bin/uv" pip install -q --compile-bytecode --python "$VENV/bin/python" -r requirements.lock
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps -e .
# Optional: the outside checkers some tests run (graphql-http's audit, Redocly's OpenAPI lint), from
# npm with the machine's Node.js (those tests skip without it, and fail under CI).
if command -v npm >/dev/null; then
  npm ci --prefix tests/tools --no-audit --no-fund --loglevel=error >/dev/null \
    || echo "bootstrap: npm ci in tests/tools failed: the tests that run npm's checkers will skip" >&2
else
  echo "bootstrap: npm not installed: the tests that run npm's checkers will skip" >&2
fi
echo "bootstrap: $("$VENV/bin/python" --version) ready in $VENV"

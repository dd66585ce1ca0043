# The two commands a user needs are in README.md; the rest are for working on the project.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up down housekeeping purge install test test-fast lock api api-dev graphql-dev migrate bench bench-batch bench-first-load bench-bulk bench-events bench-graphql bench-load bench-footprint clean

## up: start the platform on embedded defaults, in the background (see README)
up: $(STAMP)
	VENV=$(VENV) bash scripts/up.sh

## down: stop every process `make up` started
down:
	bash scripts/down.sh

## housekeeping: delete Airflow's runs, XComs and task logs older than KEEP_DAYS days (default 7) from
## `make up`'s Airflow; run it daily (README, Housekeeping)
KEEP_DAYS ?= 7
housekeeping: $(STAMP)
	bash -c 'source scripts/airflow-env.sh && bash scripts/airflow-housekeeping.sh "$$1"' _ $(KEEP_DAYS)

## purge: remove Base B's tombstones and closed rejections older than PURGE_DAYS days (default 90), of
## `make up`'s Base B or API_DATABASE_URL's (README, Housekeeping)
PURGE_DAYS ?= 90
purge: $(STAMP)
	API_DATABASE_URL="$${API_DATABASE_URL:-sqlite:///$${PLATFORM_VAR:-$$PWD/var}/base_b.sqlite}" \
	  $(VENV)/bin/flask --app api_service purge --older-than $(PURGE_DAYS)

$(STAMP): pyproject.toml requirements.lock scripts/bootstrap.sh tests/tools/package-lock.json
	VENV=$(VENV) bash scripts/bootstrap.sh
	touch $@

install: $(STAMP)

## test: install everything, lint, then run the whole suite
## (TEST_WORKERS test files at a time: most tests wait on servers, so more workers than cores pay)
TEST_WORKERS ?= 3
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

## test-fast: the tests that need no server and start no process of ours (under a minute); the
## markers in tests/conftest.py say what each test needs
FAST_TESTS := not (slow or postgres or mariadb or kafka or airflow or browser or prometheus or docker)
test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "$(FAST_TESTS)"

## lock: re-pin requirements.lock (and the image's requirements-image.lock) from the ranges in pyproject.toml
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra celery --extra kubernetes -c requirements.lock --python-version 3.11 -o requirements-image.lock

## migrate: create or upgrade Base B (API_DATABASE_URL)
migrate: $(STAMP)
	@mkdir -p var
	$(VENV)/bin/flask --app api_service migrate

## api-dev: the API on Flask's dev server, port 5000
api-dev: migrate
	$(VENV)/bin/flask --app api_service.wsgi run --port 5000

## api: the API under gunicorn (API_WORKERS, API_BIND)
api: migrate
	$(VENV)/bin/gunicorn -c api_service/gunicorn.conf.py api_service.wsgi:app

## graphql-dev: the GraphQL service on Flask's dev server, port 5001 (REST_API_URL)
graphql-dev: $(STAMP)
	$(VENV)/bin/flask --app graphql_service run --port 5001

## bench: every benchmark in turn (with the anchors' own dependencies), then one summary table
## (bench/results/summary.json and the top of docs/benchmarks.md); run it on an otherwise idle machine
bench: $(STAMP)
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[bench]'
	$(PY) bench/all.py

## bench-load: REST and GraphQL under hey, a fixed number of requests at fixed concurrency
bench-load: $(STAMP)
	$(PY) bench/load.py

## bench-footprint: memory of every component of `make up`, Airflow idle among them
bench-footprint: $(STAMP)
	$(PY) bench/footprint.py

## bench-graphql: GraphQL overhead over REST, p50/p99 side by side
bench-graphql: $(STAMP)
	$(PY) bench/graphql_overhead.py

## bench-batch: the batch sync, 1,000,000 employees MariaDB → API → PostgreSQL, beside a direct anchor
bench-batch: $(STAMP)
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[bench]'
	$(PY) bench/batch_sync.py

## bench-first-load: a first load of 1,000,000 employees against dlt and the bulk API, by partitions (1, 2, 4)
bench-first-load: $(STAMP)
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[bench]'
	$(PY) bench/first_load.py

## bench-events: relay rate, backlog drain and commit-to-visible latency of the event path
bench-events: $(STAMP)
	$(PY) bench/events.py

## bench-bulk: bulk upsert throughput into PostgreSQL (1,000,000 employees)
bench-bulk: $(STAMP)
	$(PY) bench/bulk_upsert.py

clean: down
	rm -rf $(VENV) var .pytest_cache .hypothesis

"""Fixtures shared by every suite: throwaway databases on the real servers; markers saying what each
test needs, derived from the fixtures it uses, so `make test-fast` can select the tests that need none."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from testbed.airflow import Airflow
from testbed.servers import (
    MARIADB_HOST,
    MARIADB_PORT,
    MARIADB_USER,
    PG_HOST,
    PG_PORT,
    PG_USER,
    recreate_postgres_database,
    require,
)


@pytest.fixture(scope="session")
def make_postgres_database() -> Iterator[Callable[[], str]]:
    """Creates fresh PostgreSQL databases on demand (SQLAlchemy URLs); drops them at the end."""
    require("PostgreSQL", PG_HOST, PG_PORT)
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"
    made: list[str] = []

    def make() -> str:
        name = f"baseab_test_{uuid.uuid4().hex[:10]}"
        made.append(name)
        return recreate_postgres_database(name)

    yield make
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_database(make_postgres_database) -> str:
    """One fresh PostgreSQL database for this test session; its SQLAlchemy URL."""
    return make_postgres_database()


@pytest.fixture(scope="session")
def make_mariadb_database() -> Iterator[Callable[[], str]]:
    """Creates fresh MariaDB databases on demand (SQLAlchemy URLs); drops them at the end."""
    require("MariaDB", MARIADB_HOST, MARIADB_PORT)
    import MySQLdb

    made: list[str] = []

    def admin(statement: str) -> None:
        conn = MySQLdb.connect(host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER)
        try:
            conn.cursor().execute(statement)
        finally:
            conn.close()

    def make() -> str:
        name = f"base_a_test_{uuid.uuid4().hex[:10]}"
        admin(f"CREATE DATABASE `{name}`")
        made.append(name)
        return f"mysql+mysqldb://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{name}"

    yield make
    for name in made:
        admin(f"DROP DATABASE IF EXISTS `{name}`")


# What a test needs, from the fixtures it uses (directly or through other fixtures). A fixture that
# starts a server process also makes the test `slow`. Keep this in step with the fixtures.
NEEDS: dict[str, frozenset[str]] = {
    "postgres": frozenset({"make_postgres_database", "postgres_database"}),
    "mariadb": frozenset({"make_mariadb_database", "binlog_port", "private_mariadb_port", "folding_mariadb_port"}),
    "kafka": frozenset({"kafka_bootstrap", "broker"}),
    "airflow": frozenset({"airflow", "platform"}),
    "browser": frozenset({"browser", "page"}),
    "prometheus": frozenset({"prometheus", "promtool"}),
    "docker": frozenset({"stack"}),
    "slow": frozenset(
        {
            "api_process",
            "rest_api",
            "killable_api",
            "api_and_proxy",
            "gunicorn_api",
            "servers",
            "server",
            "graphql_api",
            "graphql_api_with_service_token",
            "relay",
            "airflow",
            "platform",
            "kafka_bootstrap",
            "broker",
            "binlog_port",
            "private_mariadb_port",
            "folding_mariadb_port",
            "prometheus",
        }
    ),
}
# Fixtures parametrised over Base B's backends: their "postgresql" instance needs the server.
BACKEND_FIXTURES = ("database_url", "base_b")
# Fixtures that start the API under gunicorn whatever the backend.
SERVER_FIXTURES_ANY_BACKEND = {"base_b": "tests/security/"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        needs = {marker for marker, fixtures in NEEDS.items() if used & fixtures}
        if _starts_airflow(item):
            needs |= {"airflow", "slow"}
        if any(params.get(name) == "postgresql" for name in BACKEND_FIXTURES):
            needs |= {"postgres", "slow"}
        for fixture, where in SERVER_FIXTURES_ANY_BACKEND.items():
            if fixture in used and item.nodeid.startswith(where):
                needs.add("slow")
        for marker in sorted(needs - {m.name for m in item.iter_markers()}):
            item.add_marker(marker)
    items[:] = heaviest_files_first(items)


def _starts_airflow(item: pytest.Item) -> bool:
    """A test in a module that starts Airflow through a fixture of its own (not one of NEEDS'): its
    file weighs as Airflow's. CI ran such a file (3.5 minutes) last and alone, by a name NEEDS lacked."""
    module = getattr(item, "module", None)
    return module is not None and any(value is Airflow for value in vars(module).values())


# `make test` hands whole files to parallel workers (pytest-xdist, --dist loadfile) in collection
# order: a Docker or Airflow file started last would run on alone at the end.
WEIGHT = {"docker": 3, "airflow": 2, "browser": 2, "slow": 1}
# Seconds each longer file took in a CI run (setup included; a file missing counts 0): within a
# weight the longest start first, so none is left to run on alone at the end (CI's limit is 30
# minutes). Refresh after big changes from a run's `--junitxml` (by file, the sum of the times).
FILE_SECONDS: dict[str, float] = json.loads((Path(__file__).parent / "file_seconds.json").read_text())


def heaviest_files_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """The items regrouped so that files needing Docker, then Airflow or a browser, then a server
    come first, the longest first within each; else the order of the files and of the tests within
    a file is kept."""
    weight: dict[Path, int] = {}  # by file
    for item in items:
        here = max((WEIGHT.get(marker.name, 0) for marker in item.iter_markers()), default=0)
        weight[item.path] = max(weight.get(item.path, 0), here)
    root = Path(__file__).parent.parent
    seconds = {path: FILE_SECONDS.get(path.relative_to(root).as_posix(), 0) for path in weight}
    return sorted(items, key=lambda item: (-weight[item.path], -seconds[item.path]))

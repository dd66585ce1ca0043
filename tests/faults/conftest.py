"""Fixtures of the fault suite: the sync suite's, re-exported (pytest sees a conftest's names only), and its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from api_service import migrate
from tests.faults.helpers import ApiProcess, PacedBaseA
from tests.sync.conftest import (  # noqa: F401  (pytest fixtures, found by name)
    api_process,
    base_a_engine,
    base_a_url,
    base_b,
    binlog_port,
    kafka_bootstrap,
    relay,
)


@pytest.fixture
def killable_api(make_postgres_database, tmp_path) -> Iterator[ApiProcess]:
    """The API (gunicorn, 2 workers) over a fresh, migrated PostgreSQL database; not started yet."""
    database_url = make_postgres_database()
    migrate.upgrade(database_url)
    api = ApiProcess(database_url, tmp_path / "api.log")
    yield api
    api.stop()


@pytest.fixture
def paced_base_a(base_a_engine) -> Iterator[Callable[[float], PacedBaseA]]:  # noqa: F811  (the imported fixture)
    """Makes Base A readers that pause between chunks; ends their abandoned reads at teardown."""
    made: list[PacedBaseA] = []

    def make(pause: float) -> PacedBaseA:
        made.append(PacedBaseA(base_a_engine, pause))
        return made[-1]

    yield make
    for reader in made:
        reader.close()

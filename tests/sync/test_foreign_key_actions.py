"""Foreign keys whose actions change mapped rows unseen (`mapping.cascades`), on the real MariaDB.

Found from outside: InnoDB ran ON DELETE CASCADE and ON UPDATE CASCADE / SET NULL inside the
engine; no trigger fired (the delete log missed the deleted rows) and updated_at stayed (no window
read the changed ones), and nothing said so: Base B kept stale rows until a key comparison or a
full refresh."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import text

from base_sync.backends import backend_named
from base_sync.demo import generate
from base_sync.mapping import SourceMapping
from base_sync.mapping.cascades import cascade_warnings
from base_sync.source import source_engine
from base_sync.state import MemoryStateStore
from tests.sync.conftest import source_rows, synced_rows
from tests.sync.test_sync_steps import run_once

pytestmark = [pytest.mark.mariadb]

PARENTS = [
    "CREATE TABLE dept (name VARCHAR(100) PRIMARY KEY) ENGINE=InnoDB",
    "INSERT INTO dept SELECT DISTINCT department FROM employees WHERE department IS NOT NULL",
    "CREATE TABLE authors (name VARCHAR(255) PRIMARY KEY) ENGINE=InnoDB",
    "INSERT INTO authors SELECT DISTINCT author FROM articles WHERE author IS NOT NULL",
]


def _sql(engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def _warnings(engine) -> list[str]:
    return cascade_warnings(engine, SourceMapping.from_settings(), backend_named("mysql"))


def test_cascading_deletes_and_updates_are_named_with_their_cost_and_remedy(base_a_engine):
    generate.seed(base_a_engine, "employees", 30, seed_value=71)
    generate.seed(base_a_engine, "articles", 30, seed_value=72)
    _sql(base_a_engine, *PARENTS)
    assert _warnings(base_a_engine) == []
    _sql(
        base_a_engine,
        "ALTER TABLE employees ADD CONSTRAINT fk_dept FOREIGN KEY (department) REFERENCES dept(name) "
        "ON DELETE CASCADE ON UPDATE CASCADE",
        "ALTER TABLE articles ADD CONSTRAINT fk_author FOREIGN KEY (author) REFERENCES authors(name) "
        "ON DELETE SET NULL ON UPDATE RESTRICT",
    )
    author_updates, deletes, dept_updates = sorted(_warnings(base_a_engine))
    assert deletes.startswith("employees: employees(department) references dept (fk_dept, ON DELETE CASCADE): ")
    assert "the delete log (and the binlog) miss them" in deletes and "SYNC_KEY_CHECK_HOURS" in deletes
    assert "compare_keys after deleting dept rows" in deletes
    assert dept_updates.startswith("employees: employees(department) references dept (fk_dept, ON UPDATE CASCADE): ")
    assert "Base B keeps the old values until a full_refresh" in dept_updates
    assert author_updates.startswith("articles: articles(author) references authors (fk_author, ON DELETE SET NULL): ")


def test_restrict_keys_and_actions_on_columns_the_mapping_does_not_read_are_not_named(base_a_engine):
    _sql(
        base_a_engine,
        *PARENTS,
        "CREATE TABLE tags (tag VARCHAR(20) PRIMARY KEY) ENGINE=InnoDB",
        "ALTER TABLE articles ADD COLUMN tag VARCHAR(20) NULL",
        "ALTER TABLE articles ADD CONSTRAINT fk_tag FOREIGN KEY (tag) REFERENCES tags(tag) ON DELETE SET NULL",
        "ALTER TABLE employees ADD CONSTRAINT fk_dept FOREIGN KEY (department) REFERENCES dept(name)",
    )
    assert _warnings(base_a_engine) == []
    _sql(
        base_a_engine,
        "ALTER TABLE articles ADD CONSTRAINT fk_tag_gone FOREIGN KEY (tag) REFERENCES tags(tag) ON DELETE CASCADE",
    )
    (deletes,) = _warnings(base_a_engine)  # a cascaded delete takes the whole row, whatever the columns
    assert deletes.startswith("articles: articles(tag) references tags (fk_tag_gone, ON DELETE CASCADE)")


def test_what_the_warnings_describe_happens(base_a, base_a_engine, base_b):
    """The cost the warnings state, as found: the cascaded delete stays live in Base B, the cascaded
    update stale, after an incremental run."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 40, seed_value=73)
    _sql(
        base_a_engine,
        *PARENTS,
        "ALTER TABLE employees ADD CONSTRAINT fk_dept FOREIGN KEY (department) REFERENCES dept(name) "
        "ON DELETE CASCADE ON UPDATE CASCADE",
    )
    run_once("employees", base_a, api, store)
    with base_a_engine.connect() as conn:
        gone, renamed = conn.execute(text("SELECT name FROM dept ORDER BY name LIMIT 2")).scalars().all()
    _sql(
        base_a_engine,
        f"DELETE FROM dept WHERE name = '{gone}'",
        f"UPDATE dept SET name = 'Renamed' WHERE name = '{renamed}'",
    )
    run_once("employees", base_a, api, store)
    ours, theirs = source_rows(base_a_engine, "employees"), synced_rows(base_b.database_url, "employees")
    assert set(theirs) - set(ours), "the cascaded deletes stay live in Base B"
    assert [k for k in ours if ours[k] != theirs[k]], "the cascaded update stays stale in Base B"


def test_base_a_check_prints_them_as_warnings(base_a_engine):
    _sql(
        base_a_engine,
        *PARENTS,
        "ALTER TABLE employees ADD CONSTRAINT fk_dept FOREIGN KEY (department) REFERENCES dept(name) ON DELETE CASCADE",
    )
    env = {**os.environ, "BASE_A_URL": base_a_engine.url.render_as_string(hide_password=False)}
    env.pop("BASE_A_MAPPING_FILE", None)
    checked = subprocess.run(
        [sys.executable, "-m", "base_sync.demo.cli", "check"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr  # a warning: the sync runs on
    assert "base-a check: warning: employees: employees(department) references dept (fk_dept, ON DELETE CASCADE)" in (
        checked.stderr
    )


def test_an_account_with_select_on_the_mapped_table_alone_sees_them(base_a_engine):
    """information_schema.referential_constraints lists nothing to such an account (MariaDB 10.11):
    the keys are read from SHOW CREATE TABLE, which SELECT allows."""
    _sql(
        base_a_engine,
        *PARENTS,
        "ALTER TABLE employees ADD CONSTRAINT fk_dept FOREIGN KEY (department) REFERENCES dept(name) ON DELETE CASCADE",
    )
    url = base_a_engine.url
    user, password = f"ro_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    hosts = ("localhost", "127.0.0.1")
    _sql(base_a_engine, *(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'" for host in hosts))
    _sql(base_a_engine, *(f"GRANT SELECT ON `{url.database}`.employees TO '{user}'@'{host}'" for host in hosts))
    reader = source_engine(url.set(username=user, password=password).render_as_string(hide_password=False))
    try:
        mapping = SourceMapping.from_settings()
        (warning,) = cascade_warnings(reader, mapping, backend_named("mysql"), ["employees"])
        assert warning.startswith("employees: employees(department) references dept (fk_dept, ON DELETE CASCADE)")
    finally:
        reader.dispose()
        _sql(base_a_engine, *(f"DROP USER '{user}'@'{host}'" for host in hosts))


def test_a_mapped_table_not_there_has_no_keys_and_stops_nothing(base_a_engine):
    """Review: the relay read every mapped table's SHOW CREATE TABLE at start, and one dropped (1146)
    stopped it; the schema check is what names a missing table."""
    with base_a_engine.connect() as conn:
        assert backend_named("mysql").cascading_keys(conn, ["no_such_table", "employees"]) == []

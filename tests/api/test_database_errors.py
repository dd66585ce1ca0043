"""Database errors: only what can succeed when sent again is a 503 with Retry-After; a
deterministic failure is a 4xx when the request caused it, else a 500 that says not to retry."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError

from api_service import create_app, migrate
from api_service.db import get_connection
from api_service.db_errors import Kind, classify, refusal
from testbed.servers import free_port
from tests.api.conftest import AUTH, make_settings

MAX_KEY = 2**63 - 1


def test_buckets_of_keys_near_2_to_the_63_add_up(client):
    keys = [MAX_KEY, MAX_KEY - 1, MAX_KEY - 2, 1, 2]
    records = [{"source_id": k, "source_updated_at": "2024-01-01T00:00:00Z", "title": "t"} for k in keys]
    assert client.post("/articles/bulk", json=records, headers=AUTH).json["inserted"] == len(keys)
    for size in (10_000, MAX_KEY):
        response = client.get(f"/articles/sync/buckets?size={size}")
        assert response.status_code == 200, response.json
        expected: dict[int, list[int]] = {}
        for key in keys:
            expected.setdefault(key // size, []).append(key)
        assert response.json["items"] == [
            {"bucket": b, "count": len(ks), "key_sum": sum(ks)} for b, ks in sorted(expected.items())
        ]


def _overflowing_sum(conn) -> None:
    """An aggregate that overflows a 64-bit integer, each database in its own way."""
    if conn.dialect.name == "sqlite":
        conn.execute(text("SELECT sum(x) FROM (SELECT 9223372036854775807 AS x UNION ALL SELECT 5)")).all()
    else:
        conn.execute(text("SELECT 9223372036854775807::bigint + 1")).all()


@pytest.fixture
def probe_app(app):
    """The real app with two extra routes that run real failing statements against Base B."""

    def overflow():
        _overflowing_sum(get_connection())
        return "unreachable"

    def wait_for_lock():
        conn = get_connection()
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA busy_timeout = 50")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            with conn.begin():
                conn.exec_driver_sql("SET LOCAL lock_timeout = '50ms'")
                conn.exec_driver_sql("LOCK TABLE articles IN ACCESS EXCLUSIVE MODE")
        return "unreachable"

    app.add_url_rule("/probe/overflow", view_func=overflow, methods=["GET", "POST"])
    app.add_url_rule("/probe/lock", view_func=wait_for_lock)
    return app


def test_a_deterministic_error_is_not_a_retryable_503(probe_app):
    client = probe_app.test_client()
    read = client.get("/probe/overflow")
    assert read.status_code == 500 and read.mimetype == "application/problem+json"
    assert "Retry-After" not in read.headers
    write = client.post("/probe/overflow")
    if probe_app.extensions["base_b_engine"].dialect.name == "postgresql":
        assert write.status_code == 422  # a data error in a write: the request's values
    else:
        assert write.status_code == 500  # SQLite reports overflow as a plain OperationalError
    assert "Retry-After" not in write.headers


def test_a_lock_wait_that_times_out_is_a_503_with_retry_after(probe_app, database_url):
    holder = create_engine(database_url)
    with holder.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.begin()
            conn.exec_driver_sql("LOCK TABLE articles IN ACCESS EXCLUSIVE MODE")
        response = probe_app.test_client().get("/probe/lock")
        conn.rollback()
    holder.dispose()
    assert response.status_code == 503, response.data
    assert response.headers["Retry-After"] == "1"
    assert response.mimetype == "application/problem+json"


RECORD = {"source_id": 1, "source_updated_at": "2024-01-01T00:00:00Z", "title": "t"}


def test_a_row_lock_held_elsewhere_is_a_503_after_the_lock_timeout_not_a_wait_without_end(postgres_database):
    """Found from outside: a row held by another session's SELECT ... FOR UPDATE held every bulk
    request that met it (and with them every gunicorn thread, /health too) until it was released,
    with no 503: nothing set PostgreSQL's lock_timeout."""
    migrate.upgrade(postgres_database)
    app = create_app(make_settings(postgres_database, db_lock_timeout=0.5))
    client = app.test_client()
    assert client.post("/articles/bulk", json=[RECORD], headers=AUTH).status_code == 200
    holder = create_engine(postgres_database)
    held = holder.raw_connection()
    held.cursor().execute("SELECT * FROM articles WHERE source_id = 1 FOR UPDATE")
    release = threading.Timer(8, held.rollback)  # without a lock timeout the request waits until then
    release.start()
    newer = {**RECORD, "source_updated_at": "2024-01-02T00:00:00Z", "title": "newer"}
    started = time.monotonic()
    response = client.post("/articles/bulk", json=[newer], headers=AUTH)
    waited = time.monotonic() - started
    release.cancel()
    held.rollback()
    held.close()
    holder.dispose()
    assert response.status_code == 503 and response.headers["Retry-After"] == "1", response.data
    assert waited < 5, waited
    assert client.post("/articles/bulk", json=[newer], headers=AUTH).json["updated"] == 1  # once it is free
    with app.extensions["base_b_engine"].begin() as conn:
        conn.execute(text("DELETE FROM articles"))
    app.extensions["base_b_engine"].dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_unmigrated_base_b_is_a_503_that_says_to_migrate(backend, request, tmp_path):
    """The document promises 503 for a Base B that is not migrated; a missing table is not a bug."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/empty.sqlite"
    else:
        url = request.getfixturevalue("make_postgres_database")()
    app = create_app(make_settings(url))
    client = app.test_client()
    for response in (client.get("/articles"), client.post("/articles/bulk", json=[RECORD], headers=AUTH)):
        assert response.status_code == 503, response.json
        assert "not migrated" in response.json["detail"] and response.headers["Retry-After"]
    app.extensions["base_b_engine"].dispose()


def test_a_password_base_b_refuses_is_a_503_that_says_so_not_an_outage(password_base_b, caplog):
    """Found from outside (a changed POSTGRES_PASSWORD): a refused password was told as Base B not
    reachable, "retry shortly". An operator's fix ends it (ALTER ROLE), which the log names."""
    app = create_app(make_settings(password_base_b.wrong_password_url))
    client = app.test_client()
    for response in (client.get("/articles"), client.post("/articles/bulk", json=[RECORD], headers=AUTH)):
        assert response.status_code == 503 and response.headers["Retry-After"] == "30", response.json
        assert "Base B refused the API" in response.json["detail"] and "retrying alone" in response.json["detail"]
        assert password_base_b.wrong_password not in response.get_data(as_text=True)
    app.extensions["base_b_engine"].dispose()
    logged = [r.getMessage() for r in caplog.records if "Base B refused the API" in r.getMessage()]
    assert logged and "password authentication failed" in logged[0] and "ALTER ROLE" in logged[0]
    assert password_base_b.wrong_password not in caplog.text


def test_a_base_b_that_is_down_stays_a_503_to_retry_shortly():
    app = create_app(make_settings(f"postgresql+psycopg://base_b@127.0.0.1:{free_port()}/base_b"))
    response = app.test_client().get("/articles")
    app.extensions["base_b_engine"].dispose()
    assert response.status_code == 503 and response.headers["Retry-After"] == "1", response.json
    assert response.json["detail"] == "Base B is not reachable; retry shortly"


def test_a_privilege_the_apis_role_lacks_is_a_503_that_says_so_not_a_bug(make_postgres_database, caplog):
    """insufficient_privilege (42501) on a table: the same each time until a GRANT, not a 500 bug."""
    url = make_url(make_postgres_database())
    migrate.upgrade(url.render_as_string(hide_password=False))
    role = f"{url.database}_reader"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
    app = create_app(make_settings(url.set(username=role).render_as_string(hide_password=False)))
    try:
        response = app.test_client().get("/articles")
    finally:
        app.extensions["base_b_engine"].dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
        admin.dispose()
    assert response.status_code == 503 and response.headers["Retry-After"] == "30", response.json
    assert "Base B refused the API" in response.json["detail"]
    assert "permission denied for table" in caplog.text and "GRANT" in caplog.text


def test_a_row_security_refusal_is_no_refused_connection(make_postgres_database):
    """Review: insufficient_privilege (42501) also names a row security policy's refusal of one row,
    which no GRANT or password mends: not Kind.REFUSED with its operator's 503."""
    url = make_url(make_postgres_database())
    role = f"{url.database}_writer"  # a superuser passes every policy
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
        conn.exec_driver_sql("CREATE TABLE guarded (x int)")
        conn.exec_driver_sql(f'GRANT INSERT, SELECT ON guarded TO "{role}"')
        conn.exec_driver_sql("ALTER TABLE guarded ENABLE ROW LEVEL SECURITY")
        conn.exec_driver_sql(f'CREATE POLICY positive ON guarded TO "{role}" WITH CHECK (x > 0)')
    engine = create_engine(url.set(username=role))
    try:
        with pytest.raises(DBAPIError) as raised, engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO guarded VALUES (-1)")
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql("DROP TABLE guarded")
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
        admin.dispose()
    assert raised.value.orig.sqlstate == "42501" and "row-level security" in str(raised.value.orig)
    assert refusal(raised.value) is None and classify(raised.value) is not Kind.REFUSED


def test_a_sqlite_file_read_only_for_a_moment_is_no_refusal():
    """Review: SQLITE_READONLY_RECOVERY (another connection recovering the write-ahead log) passes by
    itself; the other read-only codes (a file the API's user may not write) are an operator's."""
    passing = sqlite3.OperationalError("attempt to write a readonly database")
    passing.sqlite_errorcode = sqlite3.SQLITE_READONLY_RECOVERY
    lasting = sqlite3.OperationalError("attempt to write a readonly database")
    lasting.sqlite_errorcode = sqlite3.SQLITE_READONLY
    assert refusal(OperationalError("INSERT", {}, passing)) is None
    assert refusal(OperationalError("INSERT", {}, lasting)) is not None

"""What a DBA sets on Base B's database does not turn the API's answers into 500s or send its writes
elsewhere (found from outside by an operator's probe): the URL's own options are kept, dates are
read whatever the DateStyle, a read-only database is not ready and its writes are retried, and a
lock met inside COPY is a 503 like any other."""

from __future__ import annotations

import threading
import time

import psycopg
from sqlalchemy import make_url, text

from api_service import create_app, migrate
from tests.api.conftest import AUTH, make_settings

ROWS = [{"source_id": i, "source_updated_at": "2024-01-01T00:00:00Z", "title": f"t{i}"} for i in (1, 2)]


def _admin(url: str, *statements: str) -> None:
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _app(url: str, **overrides):
    app = create_app(make_settings(url, **overrides))
    return app, app.test_client()


def test_a_search_path_in_the_urls_options_is_where_the_api_reads_and_writes(make_postgres_database):
    """The lock timeout was given as the startup `options`, replacing the URL's: the migrations made
    Base B in schema baseb, the API looked in public (503 'run the migrations', or writes to an older
    Base B there)."""
    url = make_postgres_database()
    _admin(url, "CREATE SCHEMA baseb")
    in_baseb = f"{url}?options=-csearch_path%3Dbaseb"
    migrate.upgrade(in_baseb)
    app, client = _app(in_baseb)
    assert client.get("/ready").status_code == 200, client.get("/ready").json
    assert client.post("/articles/bulk", json=ROWS, headers=AUTH).json["inserted"] == 2
    app.extensions["base_b_engine"].dispose()
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False)) as conn:
        assert conn.execute("SELECT count(*) FROM baseb.articles").fetchone() == (2,)


def test_a_session_idle_in_a_transaction_is_ended_after_the_idle_timeout(make_postgres_database):
    """Found in review: a streamed page whose client stopped reading held its transaction, and its
    table's lock, for as long as the client stayed."""
    url = make_postgres_database()
    migrate.upgrade(url)
    app = create_app(make_settings(url, db_idle_timeout=42))
    with app.extensions["base_b_engine"].connect() as conn:
        assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar_one() == "42s"
    app.extensions["base_b_engine"].dispose()


def test_dates_are_read_whatever_datestyle_the_database_sets(make_postgres_database):
    url = make_postgres_database()
    migrate.upgrade(url)
    _admin(url, f"ALTER DATABASE {make_url(url).database} SET DateStyle = 'SQL, DMY'")
    app, client = _app(url)
    assert client.post("/articles/bulk", json=ROWS, headers=AUTH).status_code == 200
    listed = client.get("/articles")
    assert listed.status_code == 200 and listed.json["items"][0]["source_updated_at"].startswith("2024-01-01")
    app.extensions["base_b_engine"].dispose()


def test_text_is_exchanged_in_utf8_whatever_client_encoding_the_database_sets(make_postgres_database):
    url = make_postgres_database()
    migrate.upgrade(url)
    _admin(url, f"ALTER DATABASE {make_url(url).database} SET client_encoding = 'LATIN1'")
    app, client = _app(url)
    greek = [{**ROWS[0], "title": "Ωμέγα"}, {**ROWS[1], "title": "Zoë"}]
    assert client.post("/articles/bulk", json=greek, headers=AUTH).json["inserted"] == 2
    assert sorted(item["title"] for item in client.get("/articles").json["items"]) == ["Zoë", "Ωμέγα"]
    app.extensions["base_b_engine"].dispose()


def test_a_read_only_base_b_is_not_ready_and_its_writes_are_retried(make_postgres_database):
    """A standby (or default_transaction_read_only): /ready said 200 and every write was a 500, which
    the pipelines take as terminal."""
    url = make_postgres_database()
    migrate.upgrade(url)
    _admin(url, f"ALTER DATABASE {make_url(url).database} SET default_transaction_read_only = on")
    app, client = _app(url)
    ready = client.get("/ready")
    assert ready.status_code == 503 and "accepts no writes" in ready.json["detail"], ready.json
    for path in ("/articles/bulk", "/articles"):
        written = client.post(path, json=ROWS if path.endswith("bulk") else {"title": "x"}, headers=AUTH)
        assert written.status_code == 503 and written.headers["Retry-After"], (path, written.json)
    app.extensions["base_b_engine"].dispose()


def test_a_lock_met_inside_copy_is_a_503_not_an_internal_error(make_postgres_database):
    """New keys are staged by COPY, whose errors escaped the classifier: a lock timeout (a plain
    CREATE INDEX holds SHARE) or a serialization failure was a 500 'internal error'."""
    url = make_postgres_database()
    migrate.upgrade(url)
    app, client = _app(url, db_lock_timeout=0.5)
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False)) as holder:
        holder.execute("LOCK TABLE articles IN SHARE MODE")
        release = threading.Timer(8, holder.rollback)
        release.start()
        started = time.monotonic()
        answer = client.post("/articles/bulk", json=ROWS, headers=AUTH)
        waited = time.monotonic() - started
        release.cancel()
        holder.rollback()
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1", answer.json
    assert waited < 5
    assert client.post("/articles/bulk", json=ROWS, headers=AUTH).json["inserted"] == 2
    app.extensions["base_b_engine"].dispose()


def _probe_routes(app) -> None:
    """Two routes that run real statements the DBA's limits cut: a long one, one needing temporary files."""
    from api_service.db import get_connection

    def slow():
        get_connection().exec_driver_sql("SELECT pg_sleep(2)").all()
        return "unreachable"

    def spills():
        conn = get_connection()
        conn.exec_driver_sql("SET work_mem = '64kB'")
        conn.exec_driver_sql("SELECT g FROM generate_series(1, 200000) g ORDER BY random()").all()
        return "unreachable"

    app.add_url_rule("/probe/slow", view_func=slow)
    app.add_url_rule("/probe/spills", view_func=spills)


def test_a_statement_cut_by_the_dbas_statement_timeout_or_temp_file_limit_is_named(
    make_postgres_database,
):
    """Found from outside: a role's statement_timeout (57014) and temp_file_limit (53400) came back as
    503 "Base B is not reachable; retry shortly" with Retry-After: 1. Both are named now; a
    temp_file_limit is no retry's (500), a statement_timeout stays a 503 to retry (a lock wait past a
    short statement_timeout ends as 57014 too, and passes once the lock is free)."""
    url = make_postgres_database()
    migrate.upgrade(url)
    database = make_url(url).database
    _admin(
        url,
        f"ALTER DATABASE {database} SET statement_timeout = '300ms'",
        f"ALTER DATABASE {database} SET temp_file_limit = 0",
    )
    app, client = _app(url)
    _probe_routes(app)
    for path, setting, status in (("/probe/slow", "statement_timeout", 503), ("/probe/spills", "temp_file_limit", 500)):
        answer = client.get(path)
        assert answer.status_code == status and ("Retry-After" in answer.headers) == (status == 503), answer.json
        assert setting in answer.json["detail"] and "role or database" in answer.json["detail"], answer.json
        assert "not reachable" not in answer.json["detail"], answer.json
    assert client.get("/articles").status_code == 200  # the other requests go on
    app.extensions["base_b_engine"].dispose()


def test_a_lock_not_granted_in_time_is_a_503_that_says_so(make_postgres_database):
    url = make_postgres_database()
    migrate.upgrade(url)
    app, client = _app(url, db_lock_timeout=0.2)
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False)) as holder:
        holder.execute("LOCK TABLE articles IN ACCESS EXCLUSIVE MODE")
        answer = client.get("/articles")
        holder.rollback()
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1", answer.json
    assert "lock_timeout" in answer.json["detail"], answer.json
    app.extensions["base_b_engine"].dispose()


def test_writes_and_ready_recover_once_the_dba_lifts_default_transaction_read_only(make_postgres_database):
    """Found from outside: sessions opened while default_transaction_read_only was on kept it after the
    DBA lifted it (pool_pre_ping keeps live sessions): /ready and every write stayed 503 until a restart."""
    url = make_postgres_database()
    migrate.upgrade(url)
    database = make_url(url).database
    app, client = _app(url, db_pool_size=2)

    def read_only(on: bool) -> None:
        if on:
            _admin(url, f"ALTER DATABASE {database} SET default_transaction_read_only = on")
            app.extensions["base_b_engine"].dispose()  # the next sessions are opened read-only
        else:
            _admin(
                url,
                "SET default_transaction_read_only = off",
                f"ALTER DATABASE {database} RESET default_transaction_read_only",
            )

    # A write through SQLAlchemy (an INSERT), one through the driver's COPY (a bulk), and /ready,
    # each on a session opened read-only, then the same once the DBA lifted it.
    writes = {
        "/articles": lambda n: client.post("/articles", json={"title": f"t{n}"}, headers=AUTH),
        "/articles/bulk": lambda n: client.post("/articles/bulk", json=[{**ROWS[0], "source_id": n}], headers=AUTH),
        "/ready": lambda n: client.get("/ready"),
    }
    for n, (path, write) in enumerate(writes.items()):
        read_only(True)
        refused = write(n)
        assert refused.status_code == 503 and refused.headers["Retry-After"], (path, refused.json)
        assert "accepts no writes" in refused.json["detail"], (path, refused.json)
        read_only(False)
        answer = write(n)
        assert answer.status_code in (200, 201), (path, answer.json)
    app.extensions["base_b_engine"].dispose()

"""The Alembic migrations build exactly the schema the models declare, on each backend."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from api_service import create_app, migrate
from api_service.models import metadata
from testbed.servers import free_port, venv_bin
from tests.api.conftest import make_settings


def test_migrated_schema_matches_the_models(database_url):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        assert migrate.current_revision(conn) == migrate.head_revision()
    engine.dispose()


def test_downgrade_and_upgrade_again(tmp_path):
    url = f"sqlite:///{tmp_path}/roundtrip.sqlite"
    migrate.upgrade(url)
    migrate.upgrade(url)  # a second run finds nothing to do
    from alembic import command

    command.downgrade(migrate.alembic_config(url), "base")
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    migrate.upgrade(url)
    assert {"articles", "employees"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_the_migrate_command_says_the_revision_reached_without_the_password(tmp_path):
    """Found from outside: `migrate --revision 0001` on a Base B at head printed "Base B at 0001" and
    changed nothing; a password given in the URL's query was printed."""
    url = f"sqlite:///{tmp_path}/cli.sqlite?password=secret-word"
    app = create_app(make_settings(url))
    runner = app.test_cli_runner()
    first = runner.invoke(args=["migrate"])
    assert first.exit_code == 0 and f"Base B at {migrate.head_revision()}" in first.output, first.output
    older = runner.invoke(args=["migrate", "--revision", "0001"])
    assert f"Base B at {migrate.head_revision()}" in older.output and "asked for 0001" in older.output
    assert "secret-word" not in first.output + older.output
    app.extensions["base_b_engine"].dispose()


def test_replicas_migrating_at_once_take_turns(make_postgres_database):
    """Found from outside: several replicas running `flask migrate` at once: one won, the others
    failed with a traceback (and their deploys with them). Here both replicas are made to meet:
    the first waits for a writer holding a table it alters, the second arrives meanwhile."""
    url = make_postgres_database()
    migrate.upgrade(url, "0001")
    engine = create_engine(url)
    holder = engine.connect()
    holder.execute(text("UPDATE articles SET title = title WHERE false"))  # holds articles until it ends
    env = {**os.environ, "API_DATABASE_URL": url, "API_TOKENS": "token", "API_MIGRATE_LOCK_TIMEOUT": "60"}
    command = [venv_bin("flask"), "--app", "api_service", "migrate"]
    replicas = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    try:
        deadline = time.monotonic() + 30
        while _waiting_for_locks(engine) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _waiting_for_locks(engine) == 2, "both replicas should be waiting"
    finally:
        holder.rollback()
        holder.close()
        said = [replica.communicate(timeout=120)[0].decode() for replica in replicas]
        engine.dispose()
    assert [replica.returncode for replica in replicas] == [0, 0], said
    assert all(f"Base B at {migrate.head_revision()}" in output for output in said), said


def _waiting_for_locks(engine) -> int:
    with engine.connect() as conn:  # a new transaction: pg_stat_activity is read once per transaction
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()


def test_a_migration_behind_a_session_idle_in_transaction_gives_up_and_says_why(make_postgres_database):
    """Found from outside: an upgrade whose ALTER met a table another session had read in a
    transaction it left open waited for ever (and every query of the table queued behind it)."""
    url = make_postgres_database()
    migrate.upgrade(url, "0001")
    app = create_app(make_settings(url, migrate_lock_timeout=0.5))
    holder = create_engine(url).connect()
    # A writer whose transaction stays open (idle in transaction) holds articles against the index 0002 builds.
    holder.execute(text("UPDATE articles SET title = title WHERE false"))
    outcome = []
    try:
        runner = threading.Thread(target=lambda: outcome.append(app.test_cli_runner().invoke(args=["migrate"])))
        runner.start()
        runner.join(30)
        assert outcome, "the migration still waits for the lock"
    finally:
        holder.rollback()
        holder.close()
        runner.join(30)
        app.extensions["base_b_engine"].dispose()
    assert outcome[0].exit_code == 1
    assert "Base B was not migrated, nothing changed: canceling statement due to lock timeout" in outcome[0].output
    assert "idle in transaction" in outcome[0].output and "API_MIGRATE_LOCK_TIMEOUT is 0.5 s" in outcome[0].output
    engine = create_engine(url)
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == "0001"
    engine.dispose()


def test_a_migration_cut_by_a_statement_timeout_says_so_not_lock_waits(make_postgres_database):
    """Found from outside: under a role's statement_timeout, migrate exited 1 with the hint for a lock
    wait (a session idle in transaction, API_MIGRATE_LOCK_TIMEOUT), though no lock was waited on."""
    url = make_postgres_database()
    migrate.upgrade(url, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:  # rows enough that 0002's index takes longer than the timeout
        conn.execute(
            text(
                "INSERT INTO articles (source_id, title, created_at, updated_at) "
                "SELECT g, 't', now(), now() FROM generate_series(1, 100000) g"
            )
        )
        database = conn.exec_driver_sql("SELECT current_database()").scalar_one()
        conn.exec_driver_sql(f"ALTER DATABASE {database} SET statement_timeout = '1ms'")
    app = create_app(make_settings(url))
    try:
        result = app.test_cli_runner().invoke(args=["migrate"])
    finally:
        app.extensions["base_b_engine"].dispose()
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER DATABASE {database} RESET statement_timeout")
    assert result.exit_code == 1, result.output
    assert "canceling statement due to statement timeout" in result.output, result.output
    assert "The statement_timeout the DBA set" in result.output and "RESET statement_timeout" in result.output
    assert "idle in transaction" not in result.output and "API_MIGRATE_LOCK_TIMEOUT" not in result.output
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == "0001"
    engine.dispose()


def test_the_migrate_command_prints_the_sql_from_base_bs_revision_without_running_it(make_postgres_database):
    """Found from outside: a DBA asking Alembic for the SQL (`alembic upgrade --sql`) got an error:
    the environment read no URL. `flask migrate --sql` prints it from the revision Base B is at."""
    url = make_postgres_database()
    migrate.upgrade(url, "0001")
    app = create_app(make_settings(url))
    result = app.test_cli_runner().invoke(args=["migrate", "--sql"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("BEGIN;") and "SET lock_timeout = '10000ms';" in result.output
    assert "CREATE TABLE sync_rejections" in result.output and "CREATE TABLE articles" not in result.output
    assert "UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';" in result.output
    with app.extensions["base_b_engine"].connect() as conn:
        assert migrate.current_revision(conn) == "0001"  # nothing ran
    app.extensions["base_b_engine"].dispose()


def test_the_migrate_command_on_a_schema_a_newer_version_migrated_does_nothing_and_succeeds(tmp_path):
    """Found in review: on an image rolled back, `flask migrate` failed with Alembic's "Can't locate
    revision" traceback (exit 1), so compose, whose API waits for the migration to succeed, never
    started the API, while /ready serves such a Base B."""
    url = f"sqlite:///{tmp_path}/newer.sqlite"
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed0099'"))  # a revision of tomorrow
    engine.dispose()
    app = create_app(make_settings(url))
    runner = app.test_cli_runner()
    said = f"Base B at f00dfeed0099, newer than this version's head {migrate.head_revision()}: nothing to do"
    for args in (["migrate"], ["migrate", "--sql"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0 and said in result.output, (args, result.output)
        assert "Traceback" not in result.output
    with app.extensions["base_b_engine"].connect() as conn:
        assert migrate.current_revision(conn) == "f00dfeed0099"
    app.extensions["base_b_engine"].dispose()


def test_the_migrate_command_turns_an_alembic_error_into_one_line(tmp_path):
    """Found in review: any other error of Alembic's (here a revision asked for that does not exist)
    ended in a traceback."""
    app = create_app(make_settings(f"sqlite:///{tmp_path}/unknown.sqlite"))
    result = app.test_cli_runner().invoke(args=["migrate", "--revision", "nosuchrev"])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        "Error: Base B was not migrated: Can't locate revision identified by 'nosuchrev'"
    ]
    app.extensions["base_b_engine"].dispose()


def test_a_restore_of_a_dump_from_before_the_sync_marks_migrates_and_drops_their_tokens(tmp_path):
    """Found in review: pg_restore --clean of a dump made before 0003 sets alembic_version back to
    0002 and leaves sync_marks, with tokens newer than the data: migrating failed ("already
    exists"), and the restore went unseen (the token matched)."""
    url = f"sqlite:///{tmp_path}/restored.sqlite"
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sync_marks VALUES ('employees', 'newer-than-the-data', '2026-12-06')"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    migrate.upgrade(url)
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()
        assert conn.execute(text("SELECT count(*) FROM sync_marks")).scalar_one() == 0
    engine.dispose()


def test_a_migration_refused_its_password_says_so_not_lock_waits(password_base_b):
    """Found from outside: POSTGRES_PASSWORD changed in .env while the database volume kept the old
    one; migrate exited 1 with the server's "password authentication failed" and the hint for a lock
    wait ("run migrate again"), which no run mends."""
    app = create_app(make_settings(password_base_b.wrong_password_url))
    result = app.test_cli_runner().invoke(args=["migrate"])
    app.extensions["base_b_engine"].dispose()
    assert result.exit_code == 1, result.output
    assert "Base B was not migrated, nothing changed" in result.output
    assert 'password authentication failed for user "base_b"' in result.output, result.output
    assert "POSTGRES_PASSWORD" in result.output and "ALTER ROLE" in result.output
    assert "lock" not in result.output and "again" not in result.output
    assert password_base_b.wrong_password not in result.output


@pytest.mark.parametrize(
    ("url", "said", "remedy"),
    [
        ("postgresql+psycopg://no_such_role_here@127.0.0.1:5432/postgres", "does not exist", "CREATE ROLE"),
        ("postgresql+psycopg://postgres@127.0.0.1:5432/no_such_database_here", "does not exist", "CREATE DATABASE"),
    ],
    ids=["unknown role", "unknown database"],
)
def test_a_migration_refused_its_role_or_database_says_what_to_fix(url, said, remedy):
    app = create_app(make_settings(url))
    result = app.test_cli_runner().invoke(args=["migrate"])
    app.extensions["base_b_engine"].dispose()
    assert result.exit_code == 1 and said in result.output and remedy in result.output, result.output
    assert "lock" not in result.output and "again" not in result.output


def test_a_migration_that_finds_base_b_down_says_to_run_it_again_not_lock_waits():
    app = create_app(make_settings(f"postgresql+psycopg://base_b@127.0.0.1:{free_port()}/base_b"))
    result = app.test_cli_runner().invoke(args=["migrate"])
    app.extensions["base_b_engine"].dispose()
    assert result.exit_code == 1 and "Connection refused" in result.output, result.output
    assert "Run migrate again once Base B answers" in result.output and "lock" not in result.output


def test_a_migration_that_meets_another_writer_says_to_run_it_again_not_to_check_the_host(tmp_path):
    """Review: a busy SQLite file (or a PostgreSQL deadlock) was told "is it running, and is the host
    of API_DATABASE_URL right?": Base B answered, another session held what the migration writes."""
    path = tmp_path / "base_b.sqlite"
    sqlite3.connect(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    app = create_app(make_settings(f"sqlite:///{path}", migrate_lock_timeout=1, db_lock_timeout=1))
    try:
        result = app.test_cli_runner().invoke(args=["migrate"])
    finally:
        app.extensions["base_b_engine"].dispose()
        holder.rollback()
        holder.close()
    assert result.exit_code == 1 and "database is locked" in result.output, result.output
    assert "another connection held Base B's file" in result.output, result.output
    assert "host of API_DATABASE_URL" not in result.output

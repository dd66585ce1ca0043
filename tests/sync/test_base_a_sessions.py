"""Base A's sessions are the sync's own, whatever the server's globals and the account's defaults say:
utf8mb4, UTC, one sql_mode. Each case is a server habit found on other teams' servers, on a MariaDB of
this module's own (its globals are set here), a reader account without SUPER (the server runs
init_connect for those), a real sync through the API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import MySQLdb
import pytest
from sqlalchemy import func, literal_column, select, text

from base_sync import sync
from base_sync.errors import ConfigurationError
from base_sync.mysql_session import LOCK_WAIT_SECONDS, require_utf8mb4
from base_sync.settings import SyncSettings
from base_sync.source import BaseA, source_engine
from base_sync.source_schema import create_schema
from base_sync.state import MemoryStateStore
from tests.sync.conftest import server_database, synced_rows

SETTINGS = SyncSettings(lookback_seconds=0, chunk_size=500, bucket_size=1000)
# Text no single-byte or three-byte character set holds: 4-byte emoji and CJK, Polish and Greek letters.
WIDE = {"last_name": "Lee 😀 Ω", "position": "Łukasz 中文 🚀"}
READER = "sync_reader"


def admin(port: int, *statements: str) -> None:
    conn = MySQLdb.connect(host="127.0.0.1", port=port, user="root")
    try:
        for statement in statements:
            conn.cursor().execute(statement)
    finally:
        conn.close()


@pytest.fixture
def reader_url(private_mariadb_port) -> Iterator[str]:
    """A database with Base A's tables and one employee of wide text (written as utf8mb4 by root),
    and the URL of a SELECT-only account on it."""
    port, name = private_mariadb_port, f"base_a_{uuid.uuid4().hex[:8]}"
    engine = source_engine(server_database(port, name))
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(
            BaseA(engine).table("employees").insert(),
            {"first_name": "Ann", "email": "ann@example.com", "department": None, "salary": None, **WIDE},
        )
    engine.dispose()
    admin(port, f"DROP USER IF EXISTS '{READER}'@'%'", f"CREATE USER '{READER}'@'%'")
    admin(port, f"GRANT SELECT ON `{name}`.* TO '{READER}'@'%'")
    yield f"mysql+mysqldb://{READER}@127.0.0.1:{port}/{name}"
    admin(port, "SET GLOBAL init_connect = ''", f"DROP USER IF EXISTS '{READER}'@'%'", f"DROP DATABASE `{name}`")


def sync_employees(url: str, base_b) -> dict[int, tuple]:
    """One load and verification of the employees through the API; what Base B then holds."""
    engine = source_engine(url)
    try:
        base_a, api = BaseA(engine), base_b.api()
        report = sync.load("employees", base_a, api, MemoryStateStore(), SETTINGS, False)
        sync.verify("employees", base_a, api, report, SETTINGS)
    finally:
        engine.dispose()
    return synced_rows(base_b.database_url, "employees")


@pytest.mark.parametrize("names", ["utf8", "latin1"])
def test_text_reaches_base_b_whole_when_the_server_sets_another_charset_at_login(
    private_mariadb_port, reader_url, base_b, names
):
    """A server's init_connect='SET NAMES utf8' (a common my.cnf habit) made the reader's session
    utf8mb3: every emoji reached Base B as '?', and verification, comparing versions, passed."""
    admin(private_mariadb_port, f"SET GLOBAL init_connect = 'SET NAMES {names}'")
    (row,) = sync_employees(reader_url, base_b).values()
    assert (row[2], row[5]) == (WIDE["last_name"], WIDE["position"])


def test_a_session_that_does_not_read_utf8mb4_fails_naming_the_cause(reader_url):
    """What a driver or proxy ignoring the character set asked for would leave: refused, not read."""
    engine = source_engine(reader_url)
    try:
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            conn.execute(text("SET NAMES latin1"))
            with pytest.raises(ConfigurationError, match="character_set_results=latin1"):
                require_utf8mb4(raw)
    finally:
        engine.dispose()


@pytest.fixture
def server_globals(private_mariadb_port) -> Iterator:
    """Set the private server's globals for a test; put back after it."""
    changed: list[str] = []

    def set_global(name: str, value: int) -> None:
        changed.append(name)
        admin(private_mariadb_port, f"SET GLOBAL {name} = {value}")

    yield set_global
    admin(private_mariadb_port, *(f"SET GLOBAL {name} = DEFAULT" for name in changed))


def wide_rows(rows: int):
    """A read of `rows` rows of 5,000 bytes: 20,000 outgrow the sockets' buffers, so the server
    writing them waits for its reader."""
    return select(literal_column("seq"), func.repeat("x", 5000)).select_from(text(f"seq_1_to_{rows}"))


def test_a_read_outlasts_a_push_longer_than_the_servers_net_write_timeout(reader_url, server_globals):
    """The default net_write_timeout (60 s) is shorter than the sync's API timeout (120 s): a push of
    70 s cut the server-side cursor it was reading (2013 'Lost connection to server during query')."""
    server_globals("net_write_timeout", 2)
    engine = source_engine(reader_url)
    try:
        chunks = BaseA(engine)._stream(wide_rows(20_000), 100)
        read = len(next(chunks))
        time.sleep(4)  # a push: the server waits to write the rest
        read += sum(len(chunk) for chunk in chunks)
    finally:
        engine.dispose()
    assert read == 20_000


def test_a_read_outlasts_pushes_longer_than_the_servers_wait_timeout(reader_url, server_globals):
    """The last pushes after the last row read took longer than Base A's wait_timeout: the server
    dropped the connection, and its ROLLBACK failed a load that had read and written every row
    (2006 'Server has gone away'), retried as transient, failing the same way every run."""
    server_globals("wait_timeout", 2)
    engine = source_engine(reader_url)
    try:
        chunks = BaseA(engine)._stream(wide_rows(10), 10)
        read = len(next(chunks))  # every row: the result is read to its end
        time.sleep(4)  # the last pushes
        read += sum(len(chunk) for chunk in chunks)
        with engine.connect() as conn:  # the pool's connection is good for the next read
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()
    assert read == 10


def test_a_read_whose_connection_was_dropped_after_its_last_row_ends_without_an_error(private_mariadb_port, reader_url):
    """Whatever drops the idle connection after the last row (a restart, a proxy, a shorter
    wait_timeout set later): every row was read, so ending the read fails nothing."""
    engine = source_engine(reader_url)
    try:
        with engine.connect() as conn:  # the pool's one connection, which the read takes next
            session = conn.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        chunks = BaseA(engine)._stream(wide_rows(10), 10)
        assert len(next(chunks)) == 10
        admin(private_mariadb_port, f"KILL CONNECTION {session}")
        assert list(chunks) == []
    finally:
        engine.dispose()


def test_a_read_waits_for_another_sessions_table_lock_minutes_not_a_day(reader_url, private_mariadb_port):
    """Found from outside: a load blocked by LOCK TABLES ... WRITE on Base A waited with no end (the
    server's lock_wait_timeout is a day), holding the DAG; now it fails after LOCK_WAIT_SECONDS (1205)
    and is retried with back-off."""
    admin(private_mariadb_port, "SET GLOBAL lock_wait_timeout = 86400")  # the server's default, said aloud
    engine = source_engine(reader_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT @@session.lock_wait_timeout")).scalar_one() == LOCK_WAIT_SECONDS
    finally:
        engine.dispose()

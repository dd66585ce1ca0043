"""Base A's sessions are the sync's own, whatever the server's globals and the account's defaults say:
utf8mb4, UTC, one sql_mode. Each case is a server habit found on other teams' servers, on a MariaDB of
this module's own (its globals are set here), a reader account without SUPER (the server runs
init_connect for those), a real sync through the API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import MySQLdb
import pytest
from sqlalchemy import text

from base_sync import sync
from base_sync.errors import ConfigurationError
from base_sync.mysql_session import require_utf8mb4
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

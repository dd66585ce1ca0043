"""The Airflow connections as an operator gets them wrong: each mistake fails the task at once with
the reason (a `ConfigurationError`, or the API's refusal), never as a retry, a hang or a silent pass;
a server briefly away stays a retry. Real MariaDB, the real API, connections from the environment."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from base_sync import airflow_tasks, sync
from base_sync.errors import ApiRefused, ConfigurationError, TransientError
from base_sync.settings import SyncSettings
from base_sync.source import BaseA, source_engine
from base_sync.source_schema import create_schema
from base_sync.state import MemoryStateStore
from testbed.servers import free_port
from tests.sync.conftest import synced_rows

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres]


@pytest.fixture
def connections(tmp_path, monkeypatch, base_a_url, base_b):
    """Set the two connections (JSON, as AIRFLOW_CONN_* variables); the good ones by default."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    url = make_url(base_a_url)
    good_a = {"conn_type": "mysql", "host": url.host, "port": url.port, "login": url.username, "schema": url.database}
    api = urlsplit(base_b.url)
    good_api = {"conn_type": "http", "host": api.hostname, "port": api.port, "password": base_b.token}

    def use(base_a: dict | None = None, base_b_api: dict | None = None) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_BASE_A", json.dumps({**good_a, **(base_a or {})}))
        monkeypatch.setenv("AIRFLOW_CONN_BASE_B_API", json.dumps({**good_api, **(base_b_api or {})}))

    use()
    return use


@pytest.fixture
def base_a_url(make_mariadb_database) -> str:
    url = make_mariadb_database()
    engine = source_engine(url)
    create_schema(engine)
    engine.dispose()
    return url


def connect(entity: str = "articles") -> None:
    with airflow_tasks._connected(SyncSettings(), entity) as (base_a, api):
        base_a.now()
        api.synced_rows(entity)


def test_the_right_connections_connect(connections):
    connect()


@pytest.mark.parametrize(
    ("base_a", "says"),
    [
        ({"schema": "no_such_database"}, "the database does not exist"),
        ({"login": "no_such_user", "password": "wrong"}, "the account or its password is wrong"),
        ({"conn_type": "postgres"}, "Base A on 'postgres' is not supported"),
        ({"conn_type": "bogus"}, "Airflow connection 'base_a'.*: its type must be mysql or sqlite"),
        ({"schema": None}, "'base_a': the connection names no database \\(schema\\)"),
        ({"schema": ""}, "'base_a': the connection names no database \\(schema\\)"),
    ],
    ids=["unknown-database", "wrong-password", "unsupported-kind", "no-hook", "no-database", "empty-database"],
)
def test_a_base_a_connection_that_cannot_work_fails_without_a_retry(connections, base_a, says):
    connections(base_a=base_a)
    with pytest.raises(ConfigurationError, match=says):
        connect()


def test_a_sqlite_base_a_path_that_names_no_file_is_refused_and_not_created(connections, tmp_path):
    mistyped = tmp_path / "base_a.sqlite-typo"
    connections(base_a={"conn_type": "sqlite", "host": str(mistyped), "schema": None, "login": None, "port": None})
    with pytest.raises(ConfigurationError, match=f"there is no database file {mistyped}"):
        connect()
    assert not mistyped.exists(), "SQLite made an empty Base A of the mistyped path"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


def test_a_base_a_that_never_answers_is_a_retry_not_a_hang(connections, silent_port):
    connections(base_a={"host": "127.0.0.1", "port": silent_port})
    outcome = []

    def attempt():
        try:
            connect()
        except Exception as error:  # noqa: BLE001 - the test looks at what it was
            outcome.append(error)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(60)
    assert outcome, "the connection hung: no connect timeout"
    assert isinstance(outcome[0], TransientError) and not isinstance(outcome[0], ConfigurationError)
    assert isinstance(outcome[0].__cause__, OperationalError)
    assert "Base A (connection 'base_a'): the connection to Base A was lost" in str(outcome[0])


def test_a_base_a_that_is_down_is_a_retry_that_says_so(connections):
    """Outside probe (Base A restarted under load): the task failed with the driver's bare
    `(2002, "Can't connect to server ...")`, naming neither Base A nor its connection."""
    connections(base_a={"host": "127.0.0.1", "port": free_port()})  # nothing listens there
    with pytest.raises(TransientError) as failed:
        connect()
    said = str(failed.value)
    assert said.startswith("Base A (connection 'base_a'): Base A does not answer (the server is down, restarting")
    assert "The task is retried" in said and ("2002" in said or "2003" in said)


def test_a_token_that_may_not_write_fails_even_with_nothing_to_write(connections):
    connections(base_b_api={"password": "not-the-token"})
    with pytest.raises(ApiRefused, match="403"):
        connect()


def test_the_api_connections_path_is_kept_and_a_url_as_host_refused(connections):
    connections(base_b_api={"schema": "api/v1"})
    with pytest.raises(ApiRefused, match=r"/api/v1/articles/bulk/delete answered 404") as refused:
        connect()
    # Behind a proxy, a wrong path prefix answers 404: the message points at the URL (outside probe).
    assert "does the connection's URL (host, port and schema, the path the API is served under" in str(refused.value)
    connections(base_b_api={"host": "http://127.0.0.1"})
    with pytest.raises(ConfigurationError, match="host must be a host name"):
        connect()


@pytest.fixture
def html_server() -> Iterator[int]:
    """Something else at the API's address: a page for every path, 200."""

    class Page(http.server.BaseHTTPRequestHandler):
        def _page(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>Sign in</html>")

        do_GET = do_POST = _page

        def log_message(self, *args):
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield port
    server.shutdown()


def test_something_else_at_the_apis_address_is_named_as_such(connections, html_server):
    connections(base_b_api={"host": "127.0.0.1", "port": html_server})
    with pytest.raises(ApiRefused, match="not JSON: is http://127.0.0.1:.* the Base B REST API"):
        connect()


@pytest.fixture
def table_grants_only(connections, base_a_url) -> Iterator[None]:
    """An account granted SELECT on the mapped tables one by one (not on the database): the delete
    log, which `base-a init` made, is not among them."""
    admin = source_engine(base_a_url)
    database, user = make_url(base_a_url).database, f"tables_{free_port()}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%'")
        for table in ("articles", "employees"):
            conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.`{table}` TO '{user}'@'%%'")
    connections(base_a={"login": user})
    yield
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP USER '{user}'@'%%'")
    admin.dispose()


def test_a_delete_log_the_account_may_not_read_means_comparing_keys(table_grants_only, caplog):
    with airflow_tasks._connected(SyncSettings(), "articles") as (base_a, _):
        assert base_a.logs_deletes("articles") is False  # was: the refusal, raised as a retry
    assert "may not read delete_log" in caplog.text
    # MariaDB refuses a table it has no grant on alike whether it is there or not: found from outside,
    # the warning asked for a GRANT on a delete log Base A did not have.
    assert "if it is not there, `base-a install-delete-log` creates it" in caplog.text


def test_a_refusal_at_any_step_of_a_task_fails_it_without_a_retry(table_grants_only):
    with pytest.raises(ConfigurationError, match="the account lacks a privilege on a table"):
        with airflow_tasks._connected(SyncSettings(), "articles") as (base_a, _):
            list(base_a.deletes_after("articles", None, 100))


def test_an_https_connection_reaches_the_api_over_https(connections, monkeypatch):
    """A URI https://... gives the connection type https: the token must not travel in clear."""
    from airflow.sdk import BaseHook

    monkeypatch.setenv("AIRFLOW_CONN_BASE_B_API", "https://:secret@api.example.net:8443")
    assert airflow_tasks._api_url(BaseHook.get_connection("base_b_api")) == "https://api.example.net:8443"
    monkeypatch.setenv("AIRFLOW_CONN_BASE_B_API", "http://:secret@api.example.net:8080")
    assert airflow_tasks._api_url(BaseHook.get_connection("base_b_api")) == "http://api.example.net:8080"


# Text no single-byte or three-byte character set holds: 4-byte emoji and CJK, Polish and Greek letters.
WIDE = {"last_name": "Lee 😀 Ω", "position": "Łukasz 中文 🚀"}


@pytest.mark.parametrize(
    "extra",
    [{"charset": "utf8"}, {"charset": "latin1"}, "?charset=utf8"],
    ids=["extra-utf8", "extra-latin1", "uri-utf8"],
)
def test_text_reaches_base_b_whole_whatever_charset_the_connection_asks_for(
    connections, monkeypatch, base_a_url, base_b, extra
):
    """The provider passes an extra `charset` to the driver: utf8 (MySQL's utf8mb3) or latin1 made every
    emoji, and latin1 every Polish or Chinese letter, '?' in Base B, and verification passed."""
    engine = source_engine(base_a_url)
    with engine.begin() as conn:
        employee = {"first_name": "Ann", "email": "ann@example.com", "department": None, "salary": None, **WIDE}
        conn.execute(BaseA(engine).table("employees").insert(), employee)
    engine.dispose()
    if isinstance(extra, dict):
        connections(base_a={"extra": extra})
    else:
        url = make_url(base_a_url)
        monkeypatch.setenv("AIRFLOW_CONN_BASE_A", f"mysql://{url.username}@{url.host}:{url.port}/{url.database}{extra}")
    settings = SyncSettings()
    with airflow_tasks._connected(settings, "employees") as (base_a, api):
        report = sync.load("employees", base_a, api, MemoryStateStore(), settings, False)
        sync.verify("employees", base_a, api, report, settings)
    (row,) = synced_rows(base_b.database_url, "employees").values()
    assert (row[2], row[5]) == (WIDE["last_name"], WIDE["position"])


@pytest.fixture
def limited_account(connections, base_a_url) -> Iterator[None]:
    """An account its owners created WITH MAX_STATEMENT_TIME (MariaDB's per-account limit)."""
    admin = source_engine(base_a_url)
    database, user = make_url(base_a_url).database, f"limited_{free_port()}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%' WITH MAX_STATEMENT_TIME 0.5")
        conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.* TO '{user}'@'%%'")
    connections(base_a={"login": user})
    yield
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP USER '{user}'@'%%'")
    admin.dispose()


def test_a_statement_killed_at_the_accounts_max_statement_time_fails_without_a_retry(limited_account):
    """Error 1969 was retried as transient, though every retry runs as long: the reason names the
    limit and what to ask for (the sync leaves the other team's limit as it is)."""
    with pytest.raises(ConfigurationError, match="max_statement_time.*MAX_STATEMENT_TIME 0"):
        with airflow_tasks._connected(SyncSettings(), "articles") as (base_a, _):
            with base_a.engine.connect() as conn:
                conn.exec_driver_sql("SELECT SLEEP(2)")  # what a long extract meets


@pytest.fixture
def capped_account(connections, base_a_url) -> Iterator[None]:
    """An account its owners created WITH MAX_USER_CONNECTIONS 1, whose one connection another holds
    (the relay, another task)."""
    admin = source_engine(base_a_url)
    database, user = make_url(base_a_url).database, f"capped_{free_port()}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%' WITH MAX_USER_CONNECTIONS 1")
        conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.* TO '{user}'@'%%'")
    holder = source_engine(make_url(base_a_url).set(username=user, password=None))
    held = holder.connect()
    connections(base_a={"login": user})
    yield
    held.close()
    holder.dispose()
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP USER '{user}'@'%%'")
    admin.dispose()


def test_an_account_at_its_max_user_connections_is_retried_saying_who_shares_it(capped_account):
    """Error 1226 (the account's MAX_USER_CONNECTIONS) escaped as a raw traceback: it is a transient
    error (another task or the relay closes a connection: the task's retries) whose reason names the
    limit, who holds connections of the account, and what to ask for."""
    with pytest.raises(TransientError) as failed:
        connect()
    said = str(failed.value)
    assert "connections at once" in said and "max_user_connections" in said, said
    assert "relay" in said and "Airflow task" in said and "its own account" in said, said


def test_an_hourly_quota_is_terminal_and_the_connection_cap_transient_after_the_first_session_too():
    """An hourly quota met midway (in propagate_deletes) fails the task, not its retries; the cap on
    connections at once is no refusal there either: a retry passes once a connection is closed."""
    from base_sync.backends import MySQLBaseA

    for resource in ("max_questions", "max_updates", "max_connections_per_hour"):
        message = f"User 'u' has exceeded the '{resource}' resource (current value: 10)"  # the server's words
        error = OperationalError("SELECT 1", {}, Exception(1226, message))
        assert "hourly quota" in MySQLBaseA().denied(error) and MySQLBaseA().waited(error) is None
    for code, message in (
        (1226, "User 'u' has exceeded the 'max_user_connections' resource (current value: 1)"),
        (1203, "User u already has more than 'max_user_connections' active connections"),
    ):
        error = OperationalError("SELECT 1", {}, Exception(code, message))
        assert MySQLBaseA().denied(error) is None and MySQLBaseA().refusal(error) is None
        assert "connections at once" in MySQLBaseA().waited(error)


def test_a_lock_held_on_a_base_a_table_is_retried_with_a_reason_naming_it(connections, base_a_url, monkeypatch):
    """Found from outside: LOCK TABLES ... WRITE held by Base A's owners made the extract wait, then
    fail with a raw 1205 'Lock wait timeout exceeded' naming no lock. Still transient (retried)."""
    from base_sync import mysql_session
    from base_sync.errors import TransientError

    monkeypatch.setattr(mysql_session, "LOCK_WAIT_SECONDS", 1)
    holder = source_engine(base_a_url)
    with holder.connect() as conn:
        conn.exec_driver_sql("LOCK TABLES articles WRITE")
        try:
            with pytest.raises(TransientError) as failed:
                with airflow_tasks._connected(SyncSettings(), "articles") as (base_a, _):
                    with base_a.engine.connect() as read:
                        read.exec_driver_sql("SELECT count(*) FROM articles").all()  # what the extract meets
        finally:
            conn.exec_driver_sql("UNLOCK TABLES")
    holder.dispose()
    said = str(failed.value)
    assert "a lock held on a Base A table" in said and "LOCK TABLES" in said and "1205" in said, said
    assert "retried" in said, said


@contextlib.contextmanager
def reading_account(base_a_url: str, name: str, password: str) -> Iterator[tuple[str, str]]:
    """An account that may read Base A's database, with `password` (set over a utf8mb4 session: the
    server hashes its UTF-8 bytes), dropped afterwards; (login, password)."""
    admin = source_engine(base_a_url)
    database, user = make_url(base_a_url).database, f"{name}_{free_port()}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY '{password.replace('%', '%%')}'")
        conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.* TO '{user}'@'%%'")
    try:
        yield user, password
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP USER '{user}'@'%%'")
        admin.dispose()


@pytest.fixture
def spaced_password(connections, base_a_url) -> Iterator[tuple[str, str]]:
    """An account whose password holds a space (and what a URI must escape); (login, password)."""
    with reading_account(base_a_url, "spaced", "two words+/@:%") as account:
        yield account


@pytest.mark.parametrize("form", ["json", "uri"])
def test_a_password_with_a_space_signs_in(connections, monkeypatch, base_a_url, spaced_password, form):
    """The provider's get_uri wrote the space as '+' (quote_plus), which SQLAlchemy reads as a '+':
    Base A refused the right password as wrong (1045), in either form of the connection."""
    user, password = spaced_password
    connections(base_a={"login": user, "password": password})
    if form == "uri":
        url = make_url(base_a_url)
        escaped = quote(password, safe="")
        monkeypatch.setenv("AIRFLOW_CONN_BASE_A", f"mysql://{user}:{escaped}@{url.host}:{url.port}/{url.database}")
    connect()


def test_an_extra_only_the_hook_reads_does_not_reach_the_driver(connections):
    """The provider's documented {"cursor": "sscursor"} reached MySQLdb.connect(), which refused it
    (TypeError: 'cursor' is an invalid keyword argument), and the task retried."""
    connections(base_a={"extra": {"cursor": "sscursor"}})
    connect()


def test_an_extra_the_sync_cannot_honour_fails_naming_it(connections):
    connections(base_a={"extra": {"iam": True}})
    with pytest.raises(ConfigurationError, match="extra 'iam': AWS IAM sign-in"):
        connect()


def test_the_hooks_ssl_extra_becomes_the_drivers_ssl_arguments():
    from airflow.sdk import Connection

    from base_sync.mysql_connection import url_of

    given = Connection(
        conn_id="a",
        conn_type="mysql",
        host="db",
        schema="base_a",
        extra=json.dumps({"ssl": {"ca": "/ca.pem"}, "ssl_mode": "REQUIRED"}),
    )
    assert dict(url_of(given).query) == {"ssl_ca": "/ca.pem", "ssl_mode": "REQUIRED"}


@pytest.fixture
def wide_password(connections, base_a_url) -> Iterator[tuple[str, str]]:
    """An account whose password holds a letter latin-1 has (ä) and one it has not (€); (login, password)."""
    with reading_account(base_a_url, "wide", "pässwört-€") as account:
        yield account


@pytest.mark.parametrize("client", ["mysqlclient", "pymysql"])
def test_a_password_beyond_ascii_signs_in_with_either_client(connections, wide_password, client):
    """PyMySQL encodes a str password latin-1: a password with € raised UnicodeEncodeError (retried),
    one with ä was sent as a byte the server's UTF-8 hash never matches (1045, wrong password)."""
    user, password = wide_password
    connections(base_a={"login": user, "password": password, "extra": {"client": client}})
    connect()

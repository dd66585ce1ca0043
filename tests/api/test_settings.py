"""The settings object reads the environment once, with clear errors."""

from __future__ import annotations

import os
import subprocess

import pytest
from sqlalchemy import text

from api_service import create_app, migrate
from api_service.db import make_engine
from api_service.settings import ApiSettings
from env_settings import DAY, InvalidSettings
from testbed.servers import REPO, free_port, venv_bin


def test_reads_api_variables(monkeypatch):
    monkeypatch.setenv("API_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("API_TOKENS", " s3cret-a, s3cret-b ,,")
    monkeypatch.setenv("API_READ_REQUIRES_TOKEN", "true")
    monkeypatch.setenv("API_LOG_LEVEL", "warning")
    settings = ApiSettings()
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.tokens == ("s3cret-a", "s3cret-b")
    assert settings.read_requires_token is True
    assert settings.log_level == "WARNING"
    assert "s3cret" not in repr(settings)  # tokens stay out of logs


def test_defaults_need_no_environment(monkeypatch):
    for name in ("API_DATABASE_URL", "API_TOKENS", "API_READ_REQUIRES_TOKEN", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = ApiSettings()
    assert settings.database_url.startswith("sqlite:///") and settings.tokens == ()


@pytest.mark.parametrize(("name", "value"), [("API_LOG_LEVEL", "loud"), ("API_BULK_MAX_RECORDS", "0")])
def test_bad_values_fail_clearly(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidSettings, match=f"^invalid settings: {name}: "):
        ApiSettings()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "empty: a SQLAlchemy URL of Base B is needed"),
        ("   ", "empty: a SQLAlchemy URL of Base B is needed"),
        ("s3cret not a url", "not a SQLAlchemy URL, e.g. postgresql+psycopg://"),
        ("mysql://u:s3cret@h/base_b", "Base B on 'mysql' is not supported (only postgresql, sqlite)"),
    ],
)
def test_a_database_url_base_b_cannot_be_on_is_refused_without_showing_it(monkeypatch, value, says):
    """Found from outside: each of these passed the settings, and every gunicorn worker then printed a
    traceback (SQLAlchemy's ArgumentError, or "not supported") and exited."""
    monkeypatch.setenv("API_DATABASE_URL", value)
    with pytest.raises(InvalidSettings) as refused:
        ApiSettings()
    assert str(refused.value).startswith(f"invalid settings: API_DATABASE_URL: {says}")
    assert "s3cret" not in str(refused.value)


def test_a_heroku_style_postgres_url_reaches_postgresql(make_postgres_database):
    """`postgres://` (Heroku's, and many hosts' spelling) is PostgreSQL: it was refused with a traceback,
    "Base B on 'postgres' is not supported", since SQLAlchemy dropped the name. Read as postgresql://,
    with its driver kept, against a real server."""
    url = make_postgres_database()
    assert url.startswith("postgresql+psycopg://")
    settings = ApiSettings(database_url=url.replace("postgresql+psycopg://", "postgres://", 1))
    assert settings.database_url == url.replace("postgresql+psycopg://", "postgresql://", 1)
    migrate.upgrade(settings.database_url)
    app = create_app(settings)
    try:
        assert app.test_client().get("/ready").status_code == 200
    finally:
        app.extensions["base_b_engine"].dispose()
    assert ApiSettings(database_url=url.replace("postgresql+", "postgres+", 1)).database_url == url


@pytest.mark.parametrize(
    ("variable", "value", "bound"),
    [
        ("API_DB_LOCK_TIMEOUT", "1e20", "86400"),  # PostgreSQL's lock_timeout: an int32 of milliseconds
        ("API_DB_IDLE_TIMEOUT", "2592000", "86400"),  # 30 days: 2.6e9 ms, past the int32 too
        ("API_MIGRATE_LOCK_TIMEOUT", "1e300", "86400"),
        ("API_DB_POOL_TIMEOUT", "1e20", "86400"),  # past threading.TIMEOUT_MAX: an OverflowError in a request
        ("API_DB_POOL_SIZE", "1000000000", "1000"),
        ("API_MAX_CONTENT_LENGTH", "1099511627776", "1073741824"),  # a TiB
        ("API_VERSION_MAX_FUTURE_SECONDS", "1000000000000", "31622400"),  # now + 31,700 years: past datetime
    ],
)
def test_a_time_or_size_too_large_is_refused_at_once_naming_the_variable(monkeypatch, variable, value, bound):
    """Found from outside: API_DB_LOCK_TIMEOUT=1e20 was taken, then every request failed when its session
    set lock_timeout (out of PostgreSQL's range). Each such setting has an upper bound, named with it."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidSettings) as refused:
        ApiSettings()
    assert str(refused.value) == f"invalid settings: {variable}: Input should be less than or equal to {bound}"


TIMEOUTS = ("lock_timeout", "idle_in_transaction_session_timeout")


@pytest.mark.parametrize(
    ("lock_timeout", "idle_timeout", "shown"), [(DAY, DAY, ("1d", "1d")), (0.0001, DAY, ("1ms", "1d"))]
)
def test_the_timeouts_are_ones_postgresql_takes(make_postgres_database, lock_timeout, idle_timeout, shown):
    """The bounds are within what the consumers take: a day is 86,400,000 ms, a lock_timeout and an
    idle_in_transaction_session_timeout PostgreSQL sets, and a migration's lock_timeout too. A tiny
    timeout is the shortest there is, not 0 ms, which PostgreSQL reads as no timeout at all (the
    idle one is not tried tiny: it would end this test's own session)."""
    url = make_postgres_database()
    settings = ApiSettings(
        database_url=url, db_lock_timeout=lock_timeout, db_idle_timeout=idle_timeout, migrate_lock_timeout=DAY
    )
    migrate.upgrade(settings.database_url, lock_timeout=settings.migrate_lock_timeout)
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            lock, idle = (conn.execute(text(f"SHOW {name}")).scalar() for name in TIMEOUTS)
    finally:
        engine.dispose()
    assert (lock, idle) == shown


def test_a_refusal_names_every_bad_variable_and_never_echoes_a_value(monkeypatch):
    monkeypatch.setenv("API_DB_POOL_SIZE", "s3cret-pool")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    with pytest.raises(InvalidSettings) as refused:
        ApiSettings(tokens="s3cret-token", max_content_length="s3cret-length")
    message = str(refused.value)
    assert "API_DB_POOL_SIZE: Input should be a valid integer" in message
    assert "API_MAX_CONTENT_LENGTH: Input should be a valid integer" in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("service", "variable", "value", "says"),
    [
        ("api_service", "API_DB_POOL_SIZE", "abc", "API_DB_POOL_SIZE: Input should be a valid integer"),
        ("api_service", "API_DB_LOCK_TIMEOUT", "inf", "API_DB_LOCK_TIMEOUT: Input should be a finite number"),
        ("api_service", "API_DATABASE_URL", " ", "API_DATABASE_URL: empty: a SQLAlchemy URL of Base B is needed"),
        ("api_service", "API_WORKERS", "two", "API_WORKERS: a whole number from 1 to 256, got 'two'"),
        ("api_service", "API_REQUEST_HEAD_TIMEOUT", "3601", "API_REQUEST_HEAD_TIMEOUT: a whole number from 1 to 3600"),
        ("graphql_service", "GRAPHQL_MAX_DEPTH", "deep", "GRAPHQL_MAX_DEPTH: Input should be a valid integer"),
        ("graphql_service", "REST_API_URL", "", "REST_API_URL: empty: an http:// or https:// URL"),
        ("graphql_service", "GRAPHQL_THREADS", "0", "GRAPHQL_THREADS: a whole number from 1 to 1000, got '0'"),
        ("graphql_service", "GRAPHQL_WORKERS", "257", "GRAPHQL_WORKERS: a whole number from 1 to 256, got '257'"),
    ],
)
def test_a_server_with_a_bad_variable_stops_at_once_with_one_line_naming_it(service, variable, value, says):
    """Checked in gunicorn's master: before, every worker printed a traceback naming the field."""
    bind = {f"{service.split('_')[0].upper()}_BIND": f"127.0.0.1:{free_port()}"}
    assert refusal_of(service, {variable: value, **bind}).startswith(f"invalid settings: {says}")


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("API_BIND", "", "API_BIND: empty: host:port (port 1 to 65535), unix:PATH or fd://N, e.g. 0.0.0.0:5000"),
        ("GRAPHQL_BIND", "   ", "GRAPHQL_BIND: empty: host:port (port 1 to 65535), unix:PATH or fd://N"),
        ("API_BIND", "127.0.0.1:70000", "API_BIND: host:port (port 1 to 65535), unix:PATH or fd://N"),
        ("GRAPHQL_BIND", "unix:", "GRAPHQL_BIND: host:port (port 1 to 65535), unix:PATH or fd://N"),
    ],
)
def test_a_server_with_an_address_it_cannot_listen_on_stops_at_once_with_one_line(variable, value, says):
    """Found from outside: API_BIND='' (or GRAPHQL_BIND) started gunicorn listening on nothing
    ("Listening at:  "), a port above 65535 failed its bind with a traceback, and unix: with no path
    retried for ever. Refused rather than read as the default: an empty value is a mistake to see."""
    service = "api_service" if variable.startswith("API_") else "graphql_service"
    assert refusal_of(service, {variable: value}).startswith(f"invalid settings: {says}")


def refusal_of(service: str, env: dict[str, str]) -> str:
    """The one line gunicorn's master prints when it refuses to start `service` with `env` (exit 1)."""
    started = subprocess.run(
        [venv_bin("gunicorn"), "-c", f"{service}/gunicorn.conf.py", f"{service}.wsgi:app"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 1, started.stderr
    (line,) = started.stderr.strip().splitlines()
    return line

"""Base B engine: one per app, one connection per request."""

from __future__ import annotations

import contextlib
import logging

from flask import Flask, current_app, g
from sqlalchemy import Connection, Engine, create_engine, event

from api_service.settings import ApiSettings

log = logging.getLogger(__name__)


def make_engine(settings: ApiSettings) -> Engine:
    """An engine for Base B with settings fit for the backend."""
    url = settings.database_url
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):
            # SQLAlchemy emits BEGIN itself (below), which also makes SAVEPOINT work on pysqlite.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers run beside the one writer
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):
            # Writers take the write lock up front, so two of them queue instead of one failing.
            immediate = connection.info.pop("begin_immediate", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=True,
    )


def begin_write(conn: Connection):
    """Start a write transaction (on SQLite, one that holds the write lock from its start)."""
    if conn.dialect.name == "sqlite":
        conn.info["begin_immediate"] = True
    return conn.begin()


def get_engine() -> Engine:
    return current_app.extensions["base_b_engine"]


def get_connection() -> Connection:
    """The request's connection, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = get_engine().connect()
    return g.db


def _close_connection(_exc: BaseException | None) -> None:
    connection = g.pop("db", None)
    if connection is None:
        return
    try:
        connection.close()  # rolls back what the request left open
    except Exception as exc:
        # Base B went away mid-request: the answer is made, and an error raised here, after it,
        # would reach gunicorn as a bare 500. Drop the connection; the pool opens a new one.
        log.warning("closing a Base B connection failed, discarding it: %s", str(exc).splitlines()[0])
        with contextlib.suppress(Exception):
            connection.invalidate()


def init_app(app: Flask, settings: ApiSettings) -> None:
    app.extensions["base_b_engine"] = make_engine(settings)
    app.teardown_appcontext(_close_connection)

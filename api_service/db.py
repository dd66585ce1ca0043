"""Base B engine: one per app, one connection per request."""

from __future__ import annotations

import contextlib
import logging

from flask import Flask, current_app, g
from sqlalchemy import Connection, Engine

from api_service.backends import backend_for_url, backend_of
from api_service.settings import ApiSettings

log = logging.getLogger(__name__)


def make_engine(settings: ApiSettings) -> Engine:
    """An engine for Base B with settings fit for the backend."""
    url = settings.database_url
    return backend_for_url(url).make_engine(
        url, settings.db_pool_size, settings.db_pool_timeout, settings.db_lock_timeout, settings.db_idle_timeout
    )


def begin_write(conn: Connection):
    """Start a write transaction (on SQLite, one that holds the write lock from its start)."""
    return backend_of(conn).begin_write(conn)


def get_engine() -> Engine:
    return current_app.extensions["base_b_engine"]


def get_connection() -> Connection:
    """The request's connection, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = get_engine().connect()
    return g.db


def take_connection() -> Connection:
    """The request's connection, taken from the request: teardown no longer closes it. For an answer
    that still reads from it once the view has returned (a streamed page); it closes it with
    `release_connection`."""
    return g.pop("db")


def release_connection(connection: Connection) -> None:
    try:
        connection.close()  # rolls back what the request left open
    except Exception as exc:
        # Base B went away mid-request: the answer is made, and an error raised here, after it,
        # would reach gunicorn as a bare 500. Drop the connection; the pool opens a new one.
        log.warning("closing a Base B connection failed, discarding it: %s", str(exc).splitlines()[0])
        with contextlib.suppress(Exception):
            connection.invalidate()


def _close_connection(_exc: BaseException | None) -> None:
    connection = g.pop("db", None)
    if connection is not None:
        release_connection(connection)


def init_app(app: Flask, settings: ApiSettings) -> None:
    app.extensions["base_b_engine"] = make_engine(settings)
    app.teardown_appcontext(_close_connection)

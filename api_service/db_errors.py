"""Which database errors are worth retrying: by SQLSTATE (PostgreSQL) or SQLite's result code.

A transient error (the server unreachable, restarting or shutting down, a lock wait or a
serialization failure) can succeed when the request is sent again; a deterministic one (an
overflow, a value the column refuses, a constraint) fails the same way every time, so telling
the client to retry would make a pipeline retry forever.
"""

from __future__ import annotations

import sqlite3
from enum import Enum

import sqlalchemy.exc

# SQLSTATE classes and codes of PostgreSQL errors that may go away on their own.
_TRANSIENT_CLASSES = frozenset({"08", "53", "57", "58"})  # connection, resources, operator, system
# serialization, deadlock, locks; a read-only transaction (a standby: writes pass after a failover)
_TRANSIENT_CODES = frozenset({"40001", "40P01", "55P03", "55006", "25006"})
_SQLITE_TRANSIENT = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN})
# A table or column the code expects is not there: Base B is not migrated (yet: deploys migrate first).
_SCHEMA_CODES = frozenset({"42P01", "42703", "3F000"})  # undefined table, column, schema
_SQLITE_SCHEMA = ("no such table", "no such column")  # SQLite says it only in words (SQLITE_ERROR)


class Kind(Enum):
    TRANSIENT = "transient"  # 503 with Retry-After
    SCHEMA = "schema"  # Base B is not migrated to this code's tables: 503 with Retry-After, the reason said
    CONFLICT = "conflict"  # a constraint refused the write: 409
    DATA = "data"  # a value the database cannot hold: 422 for a write, else 500
    BUG = "bug"  # anything else: 500, no retry


def classify(exc: sqlalchemy.exc.SQLAlchemyError) -> Kind:
    """What kind of failure a SQLAlchemy error is, read from the driver's error."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection came free in time
        return Kind.TRANSIENT
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return Kind.TRANSIENT
    original = getattr(exc, "orig", None)
    sqlstate = getattr(original, "sqlstate", None)
    sqlite_says = str(original) if isinstance(original, sqlite3.OperationalError) else ""
    if sqlstate in _SCHEMA_CODES or sqlite_says.startswith(_SQLITE_SCHEMA):
        return Kind.SCHEMA
    if isinstance(original, sqlite3.Error):
        code = getattr(original, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _SQLITE_TRANSIENT:  # extended codes keep the primary in the low byte
            return Kind.TRANSIENT
    elif sqlstate is None and isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return Kind.TRANSIENT  # psycopg without a server answer: refused, reset, closed
    elif sqlstate is not None and (sqlstate[:2] in _TRANSIENT_CLASSES or sqlstate in _TRANSIENT_CODES):
        return Kind.TRANSIENT
    if isinstance(exc, sqlalchemy.exc.IntegrityError):
        return Kind.CONFLICT
    if isinstance(exc, sqlalchemy.exc.DataError):
        return Kind.DATA
    return Kind.BUG

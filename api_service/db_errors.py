"""Which database errors are worth retrying: by SQLSTATE (PostgreSQL) or SQLite's result code.

A transient error (the server unreachable, restarting or shutting down, a lock wait or a
serialization failure) can succeed when the request is sent again; a deterministic one (an
overflow, a value the column refuses, a constraint, a limit the DBA set on the API's role such as
statement_timeout or temp_file_limit) fails the same way every time, so telling the client to
retry would make a pipeline retry forever.
"""

from __future__ import annotations

import sqlite3
from enum import Enum
from typing import NamedTuple

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
    LIMIT = "limit"  # a limit the DBA set on the API's role or database cut the statement: 500, the setting named
    SCHEMA = "schema"  # Base B is not migrated to this code's tables: 503 with Retry-After, the reason said
    CONFLICT = "conflict"  # a constraint refused the write: 409
    DATA = "data"  # a value the database cannot hold: 422 for a write, else 500
    BUG = "bug"  # anything else: 500, no retry


class Cause(NamedTuple):
    """A SQLSTATE whose answer names what was hit: `words` of the server's message tell it from the
    code's other uses (empty: every use), `setting` the server setting that decides it."""

    words: str
    kind: Kind
    setting: str
    detail: str


# Codes whose cause a client and its operator are told, checked before the classes above.
_CAUSES = {
    # query_canceled by the statement's timeout; a pg_cancel_backend's ("user request") stays transient
    # Transient: a lock wait past a statement_timeout shorter than lock_timeout ends as 57014 too,
    # and passes once the lock is free (review: a 500 failed a pipeline task a migration's lock met).
    "57014": Cause(
        "statement timeout",
        Kind.TRANSIENT,
        "statement_timeout",
        "Base B cancelled the statement at its statement_timeout (a setting on the API's role or database, "
        "postgresql.conf, or the URL's options) while it ran or waited for a lock; retry shortly. If every retry "
        "meets it, the setting cuts this request each time: raise or reset it for the API's role, or send "
        "smaller requests",
    ),
    # configuration_limit_exceeded by a query's temporary files (a sort or hash larger than work_mem)
    "53400": Cause(
        "temp_file_limit",
        Kind.LIMIT,
        "temp_file_limit",
        "Base B refused the statement at its temp_file_limit: the query needs more temporary file space than a "
        "setting of the DBA on the API's role or database allows (ALTER ROLE/DATABASE ... SET temp_file_limit, "
        "with work_mem), each time it is sent. Raise it for the API's role",
    ),
    # read_only_sql_transaction: a standby, or default_transaction_read_only (the session is replaced)
    "25006": Cause(
        "",
        Kind.TRANSIENT,
        "default_transaction_read_only",
        "Base B accepts no writes (a standby, or default_transaction_read_only); retry shortly",
    ),
    # lock_not_available: another session holds a lock past lock_timeout (API_DB_LOCK_TIMEOUT); it ends
    "55P03": Cause(
        "",
        Kind.TRANSIENT,
        "lock_timeout",
        "Base B: a lock another session holds was not granted within lock_timeout; retry shortly",
    ),
}


# Settings that cut a statement (of a migration too) however often it runs, once it runs longer.
STATEMENT_LIMITS = frozenset({"statement_timeout", "temp_file_limit"})


def cause(exc: sqlalchemy.exc.SQLAlchemyError) -> Cause | None:
    """What was hit, when the error's SQLSTATE (and its message) names it: a timeout, a limit."""
    original = getattr(exc, "orig", None)
    known = _CAUSES.get(getattr(original, "sqlstate", None) or "")
    return known if known is not None and known.words in str(original) else None


def classify(exc: sqlalchemy.exc.SQLAlchemyError) -> Kind:
    """What kind of failure a SQLAlchemy error is, read from the driver's error."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection came free in time
        return Kind.TRANSIENT
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return Kind.TRANSIENT
    known = cause(exc)
    if known is not None:
        return known.kind
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

"""Which database errors are worth retrying: by SQLSTATE (PostgreSQL) or SQLite's result code.

A transient error (the server unreachable, restarting or shutting down, a lock wait or a
serialization failure) can succeed when the request is sent again; a deterministic one (an
overflow, a value the column refuses, a constraint, a limit the DBA set on the API's role such as
statement_timeout or temp_file_limit) fails the same way every time, so telling the client to
retry would make a pipeline retry forever. So is a connection Base B refuses (credentials, role,
database, privilege, TLS): only an operator's fix ends it, and `refusal` says which.
"""

from __future__ import annotations

import re
import sqlite3
from enum import Enum
from typing import NamedTuple

import sqlalchemy.exc

# SQLSTATE classes and codes of PostgreSQL errors that may go away on their own.
_TRANSIENT_CLASSES = frozenset({"08", "53", "57", "58"})  # connection, resources, operator, system
# serialization, deadlock, locks; a read-only transaction (a standby: writes pass after a failover)
_TRANSIENT_CODES = frozenset({"40001", "40P01", "55P03", "55006", "25006"})
_SQLITE_TRANSIENT = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
# A table or column the code expects is not there: Base B is not migrated (yet: deploys migrate first).
_SCHEMA_CODES = frozenset({"42P01", "42703", "3F000"})  # undefined table, column, schema
_SQLITE_SCHEMA = ("no such table", "no such column")  # SQLite says it only in words (SQLITE_ERROR)


# Base B refused the API's connection or role: invalid_authorization_specification, invalid_password,
# invalid_catalog_name (no such database), insufficient_privilege.
_REFUSED_CODES = frozenset({"28000", "28P01", "3D000", "42501"})
# The file (or its directory) cannot be opened or written by the API's user; SQLite's authorizer.
_SQLITE_REFUSED = frozenset(
    {sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_AUTH}
)
# Read-only for a moment, not for good: another connection is recovering the write-ahead log.
_SQLITE_PASSING = frozenset({sqlite3.SQLITE_READONLY_RECOVERY})
_SQLITE_REMEDY = (
    "the API's user cannot open or write Base B's SQLite file: check the path of API_DATABASE_URL, "
    "that its directory exists, and the owner and mode of both"
)
# A refusal at connect time comes before any session, so psycopg has no SQLSTATE for it: the words of
# the server (FATAL) or of libpq tell it, each with what to fix. First match wins. Everything else
# without a SQLSTATE stays transient: refused, reset, "the database system is starting up", too many
# clients, and a host name that does not resolve (a compose or Kubernetes service name is gone while
# its database's container restarts).
_REFUSALS = tuple(
    (re.compile(words), remedy)
    for words, remedy in (
        (
            "password authentication failed",
            "Base B refused the credentials of API_DATABASE_URL: check its password. A changed POSTGRES_PASSWORD "
            "does not change the password of an existing database volume: set the new one on the server "
            "(ALTER ROLE <user> PASSWORD '...'), or put the old one back",
        ),
        (
            "authentication failed for user|no password supplied",
            "Base B refused the credentials of API_DATABASE_URL: check its user and password against the "
            "authentication method Base B's pg_hba.conf asks of it",
        ),
        (
            'role ".*" does not exist|is not permitted to log in',
            "the user of API_DATABASE_URL is no login role of Base B: create it (CREATE ROLE <user> LOGIN PASSWORD "
            "'...'), or name one that is",
        ),
        (
            'database ".*" does not exist',
            "the database of API_DATABASE_URL does not exist on Base B's server: create it (CREATE DATABASE <name> "
            "OWNER <user> ENCODING 'UTF8'), or name the right one",
        ),
        (
            "permission denied",
            "Base B's role of API_DATABASE_URL lacks a privilege: grant it (GRANT CONNECT ON DATABASE ..., or on "
            "the tables; the migrations' role owns them)",
        ),
        (
            r"pg_hba\.conf",
            "Base B's pg_hba.conf admits no connection of this user to this database from this host (or not "
            "without TLS): add a line for it, or set sslmode in API_DATABASE_URL",
        ),
        (
            # not "SSL SYSCALL error" nor "SSL connection has been closed": a lost connection, transient
            "does not support SSL|SSL was required|certificate",
            "API_DATABASE_URL's TLS settings (sslmode, sslrootcert) and Base B's server do not agree",
        ),
    )
)
_REFUSED_REMEDY = "Base B refused the role of API_DATABASE_URL: check its user, password, database and privileges"


class Kind(Enum):
    TRANSIENT = "transient"  # 503 with Retry-After
    REFUSED = "refused"  # Base B refused the API's connection or role: 503 with Retry-After, an operator fixes it
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


def refusal(exc: sqlalchemy.exc.SQLAlchemyError) -> str | None:
    """What to fix when Base B refused the API's connection or role (Kind.REFUSED), else None. Names
    no password: the server's words name the user, host and database at most."""
    original = getattr(exc, "orig", None)
    if isinstance(original, sqlite3.Error):
        code = getattr(original, "sqlite_errorcode", None)
        if code is None or code in _SQLITE_PASSING:
            return None
        return _SQLITE_REMEDY if code & 0xFF in _SQLITE_REFUSED else None
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate is None and not isinstance(exc, sqlalchemy.exc.OperationalError):
        return None
    if sqlstate is not None and sqlstate not in _REFUSED_CODES:
        return None
    said = str(original or exc)
    remedy = next((remedy for words, remedy in _REFUSALS if words.search(said)), None)
    if sqlstate == "42501" and remedy is None:  # insufficient_privilege also names a row security policy's refusal
        return None
    return remedy if remedy is not None or sqlstate is None else _REFUSED_REMEDY


def classify(exc: sqlalchemy.exc.SQLAlchemyError) -> Kind:
    """What kind of failure a SQLAlchemy error is, read from the driver's error."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection came free in time
        return Kind.TRANSIENT
    if refusal(exc) is not None:  # before the connection's loss: no retry opens a connection Base B refuses
        return Kind.REFUSED
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

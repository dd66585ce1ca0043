"""Base B's database kinds: what differs between PostgreSQL and SQLite lives here, nowhere else.

The API asks the backend of its connection (`backend_of`) or of a URL (`backend_for_url`) and never
reads a dialect name or a URL scheme itself; `tests/layout` holds that.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

import psycopg
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Table,
    create_engine,
    event,
    func,
    literal_column,
    make_url,
    select,
    text,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.types import DateTime, TypeDecorator

from baseab_contract.version_digest import postgresql_pair_hash


class CopyRefused(Exception):
    """The table refused a row of a direct copy (a constraint): nothing of the copy was kept."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# The advisory lock the session migrating Base B holds (any 64-bit number no other lock uses).
_MIGRATIONS_LOCK = int.from_bytes(b"BaseBMig", "big")

# Binary COPY needs the server type of each column.
_PG_TYPES = {"BIGINT": "int8", "INTEGER": "int4", "TEXT": "text", "DATE": "date", "NUMERIC": "numeric"}


class BaseBBackend:
    """One kind of Base B database: its engine, its write transactions, and how a bulk merge runs on it."""

    name: str
    naive_timestamps = False  # whether it stores timestamps without a zone (then in UTC)
    alters_by_copy = False  # whether a migration alters a table by copying it (Alembic's batch mode)
    insert: Callable  # the dialect's INSERT, the one with ON CONFLICT

    def make_engine(
        self, url: str, pool_size: int, pool_timeout: float, lock_timeout: float, idle_timeout: float = 300.0
    ) -> Engine:
        """`lock_timeout`: the longest a statement waits for a lock another session holds."""
        raise NotImplementedError

    def begin_write(self, conn: Connection):
        """Start a write transaction."""
        return conn.begin()

    def unready(self, conn: Connection) -> str | None:
        """Why the database cannot serve the API although it answers (/ready); None when it can."""
        return None

    def migration_settings(self, lock_timeout: float) -> list[str]:
        """The statements a migration written as SQL starts with (`hold_migrations`' settings)."""
        return []

    def hold_migrations(self, conn: Connection, lock_timeout: float) -> None:
        """Make `conn` the one session migrating Base B, waiting for another that is, and have its
        statements wait at most `lock_timeout` seconds for a table lock (then fail, nothing changed).
        Leaves no transaction open."""

    def tune_merge(self, conn: Connection) -> None:
        """Session settings for the short statements of a bulk merge."""

    def tune_delete(self, conn: Connection) -> None:
        """Session settings for a bulk delete."""

    def fill_stage(self, conn: Connection, stage: Table, records: list) -> int:
        """Load the records into the stage table; how many rows it holds then."""
        keys = stage.c.keys()
        rows = [{key: getattr(record, key) for key in keys} for record in records]
        return conn.execute(stage.insert().execution_options(preserve_rowcount=True), rows).rowcount if rows else 0

    def probe(self, alias, condition, columns: tuple[str, ...], name: str):
        """The one row of `alias` meeting `condition` for each stage row, as a joinable FROM item and its ON."""
        return alias, condition(alias)

    can_copy = False  # whether `copy_rows` can write rows straight into a table

    def copy_rows(self, conn: Connection, table: Table, columns: list[str], rows) -> None:
        """Write rows (tuples in `columns` order) straight into the table (where `can_copy`); raises
        CopyRefused when a constraint refuses one (the caller rolls back to its savepoint)."""
        raise NotImplementedError

    def pair_hash(self, key, version):
        """The version digest's pair hash as SQL, or None to hash the rows in Python."""
        return None

    def for_update(self, statement, table: Table):
        """The select, locking the rows of `table` it reads where the database locks rows."""
        return statement

    def write_merge(self, conn: Connection, merge, stage: Table, target: Table, staged: int) -> tuple[int, int]:
        """Run the stage's INSERT ... ON CONFLICT DO UPDATE; (rows written, of them inserted)."""
        # The transaction holds the write lock from its start (begin_write), so the keys held
        # before the merge are exactly those it found.
        held = conn.execute(
            select(func.count()).select_from(stage.join(target, target.c.source_id == stage.c.source_id))
        ).scalar_one()
        written = len(conn.execute(merge.returning(target.c.id)).all())
        return written, staged - held


READ_ONLY_TRANSACTION = "25006"  # SQLSTATE read_only_sql_transaction


class PostgresBaseB(BaseBBackend):
    name = "postgresql"
    insert = staticmethod(postgresql.insert)

    def make_engine(
        self, url: str, pool_size: int, pool_timeout: float, lock_timeout: float, idle_timeout: float = 300.0
    ) -> Engine:
        engine = create_engine(url, pool_size=pool_size, pool_timeout=pool_timeout, pool_pre_ping=True)

        @event.listens_for(engine, "connect")
        def _session(dbapi_connection, _record):
            # Set once per session, not as a startup `options` (which replaced the URL's own options
            # and PGOPTIONS, a search_path the migrations used, and which PgBouncer refuses). The lock
            # timeout: past it PostgreSQL raises 55P03, a 503 with Retry-After (a row lock held
            # elsewhere held every request that met it, and with them every gunicorn thread). ISO
            # dates: psycopg reads timestamps in no other DateStyle (a database set to 'SQL, DMY'
            # failed every read). UTF8: a database whose client_encoding is LATIN1 failed every
            # batch holding one Greek letter, and every read of one. The idle timeout: a streamed
            # page whose client stopped reading kept its transaction (and its table's lock, which a
            # migration's ALTER waits for) open for as long as the client stayed.
            with dbapi_connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('lock_timeout', %s, false), set_config('DateStyle', 'ISO', false),"
                    " set_config('client_encoding', 'UTF8', false),"
                    " set_config('idle_in_transaction_session_timeout', %s, false)",
                    (_milliseconds(lock_timeout), _milliseconds(idle_timeout)),
                )
            dbapi_connection.commit()

        @event.listens_for(engine, "handle_error")
        def _read_only_session(context):
            # A session opened while the database was read-only (default_transaction_read_only) keeps
            # that default after the DBA lifts it, and pool_pre_ping keeps the session: every write
            # stayed a 503 until a restart. The read-only error drops that session (only it: the
            # others are replaced as they meet it), and the error is still a 503 with Retry-After.
            if getattr(context.original_exception, "sqlstate", None) == READ_ONLY_TRANSACTION:
                context.is_disconnect = True
                context.invalidate_pool_on_disconnect = False

        return engine

    def migration_settings(self, lock_timeout: float) -> list[str]:
        return [f"SET lock_timeout = '{_milliseconds(lock_timeout)}'"]

    def hold_migrations(self, conn: Connection, lock_timeout: float) -> None:
        # Two replicas migrating at once: the second waits for the first's session-level advisory
        # lock, then finds nothing to do (it printed a UniqueViolation traceback). The lock timeout
        # is set once the lock is held, so it bounds the DDL only: an ALTER queued behind a session
        # idle in transaction waited for ever, and every query of the table queued behind the ALTER.
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATIONS_LOCK})
        conn.execute(text("SELECT set_config('lock_timeout', :ms, false)"), {"ms": _milliseconds(lock_timeout)})
        conn.commit()

    def unready(self, conn: Connection) -> str | None:
        # A standby (or default_transaction_read_only) refuses every write; a database in another
        # encoding than UTF8 refuses (or mangles) the text other scripts write.
        read_only, encoding = conn.execute(
            text("SELECT current_setting('transaction_read_only'), current_setting('server_encoding')")
        ).one()
        if read_only == "on":
            # A session's default from when it was opened: the next check opens a new one, which sees
            # the database as it is now (a DBA lifting default_transaction_read_only).
            conn.invalidate()
            return "Base B accepts no writes (transaction_read_only: a standby, or default_transaction_read_only)"
        if encoding != "UTF8":
            return f"Base B's database is encoded {encoding}, not UTF8: make it anew WITH ENCODING 'UTF8'"
        return None

    def tune_merge(self, conn: Connection) -> None:
        conn.exec_driver_sql("SET LOCAL jit = off")  # compiling costs more than these short statements

    def tune_delete(self, conn: Connection) -> None:
        # One index probe per key; a hash join would scan the whole table for a few deletes.
        conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql("SET LOCAL enable_hashjoin = off")
        conn.exec_driver_sql("SET LOCAL enable_mergejoin = off")

    def fill_stage(self, conn: Connection, stage: Table, records: list) -> int:
        keys = stage.c.keys()
        row_of = attrgetter(*keys)  # one C call per record
        self.copy_rows(conn, stage, keys, (row_of(record) for record in records))
        return conn.execute(select(func.count()).select_from(stage)).scalar_one()

    def probe(self, alias, condition, columns: tuple[str, ...], name: str):
        # A LATERAL ... LIMIT 1 subquery can only run as one index probe per staged row, whatever the
        # planner thinks of the table's size (a hash join would scan the table).
        probe = select(*(alias.c[c] for c in columns)).where(condition(alias)).limit(1).lateral(name)
        return probe, true()

    can_copy = True

    def copy_rows(self, conn: Connection, table: Table, columns: list[str], rows) -> None:
        """Binary COPY of the rows into the table."""
        cursor = conn.connection.driver_connection.cursor()
        try:
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([_pg_type(table.c[name]) for name in columns])
                for row in rows:
                    copy.write_row(row)
        except (psycopg.IntegrityError, psycopg.errors.DeadlockDetected) as exc:
            raise CopyRefused(exc.sqlstate or type(exc).__name__) from exc
        except psycopg.Error as exc:
            # As SQLAlchemy wraps what it runs, so the problem handler reads its SQLSTATE (a lock
            # timeout, a serialization failure: 503 to retry); raw, it was a 500 "internal error".
            # Run on the driver's cursor, it passes no handle_error: a session opened read-only is
            # dropped here (see make_engine).
            read_only = exc.sqlstate == READ_ONLY_TRANSACTION
            if read_only:
                conn.invalidate(exc)
            raise DBAPIError.instance("COPY", None, exc, psycopg.Error, connection_invalidated=read_only) from exc

    def pair_hash(self, key, version):
        return postgresql_pair_hash(key, version)

    def for_update(self, statement, table: Table):
        return statement.with_for_update(of=table)

    def write_merge(self, conn: Connection, merge, stage: Table, target: Table, staged: int) -> tuple[int, int]:
        # A row version no transaction deleted (xmax = 0) is one this merge inserted.
        flags = conn.execute(merge.returning(literal_column("xmax = 0"))).scalars().all()
        return len(flags), sum(flags)


class SQLiteBaseB(BaseBBackend):
    name = "sqlite"
    naive_timestamps = True
    alters_by_copy = True
    insert = staticmethod(sqlite.insert)

    def make_engine(
        self, url: str, pool_size: int, pool_timeout: float, lock_timeout: float, idle_timeout: float = 300.0
    ) -> Engine:
        # SQLite's one lock is the database's write lock: its busy timeout (30 s) waits for it.
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

    def begin_write(self, conn: Connection):
        """A write transaction that holds the write lock from its start."""
        conn.info["begin_immediate"] = True
        return conn.begin()


def _milliseconds(seconds: float) -> str:
    """A PostgreSQL timeout of `seconds`: at least 1 ms, since 0 turns the timeout off."""
    return f"{max(1, round(seconds * 1000))}ms"


def _pg_type(column: Column) -> str:
    sql_type = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
    if isinstance(sql_type, DateTime):
        return "timestamptz"  # Base B's timestamps are all zoned (models.UTCDateTime)
    name = column.type.compile(dialect=postgresql.dialect()).split("(")[0]
    return _PG_TYPES.get(name, "varchar" if name == "VARCHAR" else name.lower())


BACKENDS: dict[str, BaseBBackend] = {backend.name: backend for backend in (PostgresBaseB(), SQLiteBaseB())}


def backend_named(name: str) -> BaseBBackend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"Base B on {name!r} is not supported (only {', '.join(BACKENDS)})") from None


def backend_of(conn: Connection | Engine | Dialect) -> BaseBBackend:
    """The backend of a connection, an engine or a dialect."""
    dialect = conn if isinstance(conn, Dialect) else conn.dialect
    return backend_named(dialect.name)


def backend_for_url(url: str) -> BaseBBackend:
    return backend_named(make_url(url).get_backend_name())


# Heroku-style URLs name PostgreSQL "postgres", a name SQLAlchemy dropped: read as "postgresql".
SCHEME_ALIASES = {"postgres": "postgresql"}
URL_EXAMPLE = "e.g. postgresql+psycopg://user@host:5432/base_b or sqlite:///var/base_b.sqlite"


def base_b_url(value: str) -> str:
    """`value` as a URL of a backend Base B runs on (postgres:// read as postgresql://), or a ValueError
    saying what is wrong with it, never showing it (it may hold a password)."""
    if not value.strip():
        raise ValueError(f"empty: a SQLAlchemy URL of Base B is needed, {URL_EXAMPLE}")
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(f"not a SQLAlchemy URL, {URL_EXAMPLE}") from None
    backend, _, driver = url.drivername.partition("+")
    if backend in SCHEME_ALIASES:
        url = url.set(drivername="+".join(filter(None, (SCHEME_ALIASES[backend], driver))))
        value = url.render_as_string(hide_password=False)
    backend_named(url.get_backend_name())  # a ValueError naming the backends Base B runs on
    return value

"""Base A's database kinds: what differs between MySQL/MariaDB and SQLite lives here, nowhere else.

The library asks the backend of its engine (`backend_of`) or of a URL (`backend_for_url`) and
never reads a dialect name or a URL scheme itself; `tests/layout` holds that.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import (
    DDL,
    BigInteger,
    Date,
    DateTime,
    Engine,
    Integer,
    Numeric,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    create_engine,
    event,
    false,
    func,
    literal,
    literal_column,
    make_url,
    not_,
    or_,
    text,
    type_coerce,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import NullType, TypeEngine

from base_sync import mysql_connection, mysql_session
from base_sync.errors import ConfigurationError
from base_sync.server_names import ServerNames
from base_sync.settings import API_TIMEOUT
from baseab_contract.version_digest import mysql_pair_hash

# Six fractional digits, the text SQLAlchemy writes and compares against on SQLite.
_ISO_MICROS = "%Y-%m-%d %H:%M:%S.%f"
_ONE_SECOND = timedelta(seconds=1)
_SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"


class BaseABackend:
    """One kind of Base A database: its engine, its column types and defaults, its triggers, its clock."""

    name: str
    key_type: type[TypeEngine]
    stamp_type: TypeEngine | type[TypeEngine]
    now_sql: str  # the server default of "now"
    param_mark: str  # the DB-API placeholder of its driver
    renders_records = False  # whether the server writes each value of a bulk record as its JSON text
    # The demo's legacy Base A (base_sync.demo.legacy): an unsigned key, a local-time DATETIME, a flag.
    unsigned_key_type: TypeEngine | type[TypeEngine] = Integer
    local_stamp_type: TypeEngine | type[TypeEngine] = DateTime
    flag_type: TypeEngine | type[TypeEngine] = Integer
    triggers_query: str  # the names of the database's triggers

    def session_connect_args(self, api_timeout: float = API_TIMEOUT) -> dict:
        """What every session needs, whoever makes the engine (Airflow's hooks too): its driver's
        arguments. `api_timeout`: the sync's per request, which a streaming read may wait on."""
        return {}

    def make_engine(self, url: str, api_timeout: float = API_TIMEOUT) -> Engine:
        raise NotImplementedError

    def engine_of_connection(self, connection, hook, api_timeout: float = API_TIMEOUT) -> Engine:
        """The engine of an Airflow connection of this kind (`hook`: its provider's hook)."""
        return hook.get_sqlalchemy_engine(engine_kwargs={"connect_args": self.session_connect_args(api_timeout)})

    def touch_default(self) -> str:
        """The server default of `updated_at`."""
        return self.now_sql

    def extend_table(self, table: Table) -> None:
        """Add what the table needs beyond its columns (SQLite: a trigger for the ON UPDATE it lacks)."""

    def trigger_body(self, statement: str, when: str | None = None) -> str:
        """What follows FOR EACH ROW: the statement, run only `when` the condition holds if one is given."""
        return f"IF {when} THEN {statement}; END IF" if when else statement

    def replace_trigger(self, conn: Connection, name: str, create: str) -> None:
        """Put `create` (a CREATE TRIGGER) in the place of the trigger `name`, if there is one: a drop
        and a create, one transaction where DDL is transactional (SQLite)."""
        conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        conn.execute(text(create))

    def clock(self):
        """Base A's current UTC time as a SQL expression, with the precision of its stamps."""
        raise NotImplementedError

    def pair_hash(self, key, version):
        """The version digest's pair hash as SQL, or None to hash the rows in Python."""
        return None

    def row_hash(self, values: list):
        """A 64-bit content hash of a row's source values as SQL (a table without a cursor, see
        `base_sync.checksummed`), or None to hash the rows in Python."""
        return None

    def shift_seconds(self, stamp, seconds: int):
        """A DATETIME expression moved by whole seconds (the mapping's time zone rule)."""
        raise NotImplementedError

    def real_time(self, stamp):
        """The condition that a DATETIME expression holds a real time: date arithmetic on it is not NULL."""
        raise NotImplementedError

    # How a stored stamp is compared with a datetime (a window's bounds, a zone's clock changes). The
    # server compares times: the column itself, and its index serves every bound.
    normalises_stamps = False  # whether `comparable_stamp` is an expression, which no index on the column serves

    def comparable_stamp(self, stamp):
        """A stored DATETIME as a value that compares and sorts with bound datetimes as their times do."""
        return stamp

    def stamp_at_least(self, stamp, value: datetime):
        """A condition on the stored column, which its index serves, that every stamp at or after
        `value` meets (a stamp before it may meet it too: an exact test follows)."""
        return stamp >= literal(value, DateTime())

    def stamp_at_most(self, stamp, value: datetime):
        """As `stamp_at_least`, for every stamp at or before `value`."""
        return stamp <= literal(value, DateTime())

    def wall_after(self, wall, value: datetime):
        """A condition met only by a stored wall time after `value`; by every one after its whole
        second (a zone's clock changes, whole seconds, are exact)."""
        return wall > literal(value, DateTime())

    def wall_before(self, wall, value: datetime):
        """As `wall_after`, before `value`; every one before its whole second."""
        return wall < literal(value, DateTime())

    def datetime_value(self, value: datetime):
        """A naive datetime as a SQL constant of the type `shift_seconds` gives (microseconds kept)."""
        raise NotImplementedError

    def exact_text(self, value: str):
        """A text constant a column is compared with exactly: a text column byte for byte, trailing
        spaces and case included (whatever its collation); a number column as a number."""
        return literal(value)

    def driver_row(self, row: tuple) -> tuple:
        """A demo row (its last value `created_at`) as the driver's executemany takes it."""
        return row

    def prepare(self, url: str) -> None:
        """Make what the URL needs before the first connection (a SQLite file's folder)."""

    def make_read_only_engine(self, url: str) -> Engine:
        """An engine whose sessions cannot write (read commands): the server refuses any change."""
        raise NotImplementedError

    def server_clock(self, conn: Connection, instants: list[datetime]) -> ServerClock | None:
        """The zone CURRENT_TIMESTAMP is written in by a session keeping the server's default (not the
        sync's own, which are UTC), with its offsets at the UTC `instants`; None when not known."""
        return None

    def live_columns(self, conn: Connection, tables: list[str]) -> dict[str, list[LiveColumn]]:
        """The columns of those of `tables` that exist, in table order: one catalogue read, no DDL."""
        raise NotImplementedError

    def unique_columns(self, conn: Connection, tables: list[str]) -> dict[str, frozenset[str]]:
        """Per table, the columns that alone are its PRIMARY KEY or a UNIQUE index: a key that names
        one row. A table missing from the answer: not known (no warning)."""
        return {}

    def leading_columns(self, conn: Connection, tables: list[str]) -> dict[str, frozenset[str]]:
        """Per table, the columns some index starts with: a lookup by one of them reads no more of the
        table than it finds. A table missing from the answer: not known (a view has no index)."""
        return {}

    def views(self, conn: Connection, tables: list[str]) -> frozenset[str]:
        """Those of `tables` that are views: a binlog names the base tables under a view, never the
        view, so the relay publishes none of a view's changes."""
        return frozenset()

    def spelled_tables(self, conn: Connection, tables: list[str]) -> dict[str, str]:
        """Of `tables` (names `live_columns` did not find), those the database holds under a name that
        differs in case only, which the server tells apart: {the mapping's name: the database's}."""
        return {}

    def live_triggers(self, conn: Connection) -> list[LiveTrigger]:
        """The triggers of Base A's database this account may see (`sees_triggers_on`)."""
        raise NotImplementedError

    def server_names(self, conn: Connection) -> ServerNames:
        """How the server compares table names (SQLite: as written)."""
        return ServerNames()

    def sees_triggers_on(self, conn: Connection, table: str) -> bool:
        """Whether this account would see a trigger on `table` in `triggers_query` (False: one missing
        there may still exist)."""
        return True

    def cascading_keys(self, conn: Connection, tables: list[str]) -> list[CascadingKey]:
        """The foreign keys declared on `tables` whose ON DELETE or ON UPDATE action changes their rows
        (CASCADE, SET NULL, SET DEFAULT): done inside the engine where that fires no trigger. [] when
        none, or when the engine's actions fire triggers and stamps like any statement."""
        return []

    def read_columns(self, columns: list) -> list:
        """The SELECT list of rows mapped in Python (`SourceView.apply`): the typed columns as they are."""
        return columns

    def read_row(self, columns: list, values) -> tuple[dict, frozenset[str]]:
        """One row read by `read_columns`: {column: value}, and the columns holding no real date."""
        return {c.name: v for c, v in zip(columns, values, strict=True)}, frozenset()

    def refusal(self, error: DBAPIError) -> str | None:
        """Why Base A refused the session for good (the account, the database, a privilege), which no
        retry cures; None for anything that may pass (the server away, a lost connection)."""
        return None

    def denied(self, error: DBAPIError) -> str | None:
        """Why Base A refused a statement of a session it had let in: a privilege the account lacks
        (no retry grants it); None otherwise (a host name the DNS lost for a moment may come back)."""
        return None

    def waited(self, error: DBAPIError) -> str | None:
        """What a statement waited on in vain (a lock another session held), or the server away, which a
        later retry may pass; None for any other error."""
        return None

    def lacks_privilege(self, error: DBAPIError) -> bool:
        """Whether the statement was refused for a privilege the account lacks (not a limit it met)."""
        return False

    def missing_object(self, error: DBAPIError) -> MissingObject | None:
        """The table or column a statement named that Base A does not hold (renamed or dropped since
        the statement was built); None for any other error."""
        return None

    def absent(self, engine: Engine) -> str | None:
        """Why the engine's database is not there before any connection is made (a server says so
        itself, as a refusal); None when it may be."""
        return None

    def type_families(self, type_text: str) -> frozenset[str]:
        """What a column of this type can serve: integer, numeric, text, date, datetime, timestamp;
        bits: it is a BIT, whose bytes the mapping reads as their unsigned number; padded: a ZEROFILL
        number, whose text ('0042') the mapping reads as its number's (`NUMBER_TEXT`). A FLOAT
        ZEROFILL's text is still padded on the batch path (CAST(f AS FLOAT) would mend it)."""
        families = self.family_of_base.get(type_text.strip().lower().split("(")[0].split(" ")[0], frozenset())
        # Not a FLOAT: + 0 makes it a DOUBLE ('1.100000023841858' of 1.1; its padded text stays, below).
        padded = "zerofill" in type_text.lower() and not type_text.strip().lower().startswith("float")
        return families | _PADDED if padded else families

    family_of_base: dict[str, frozenset[str]] = {}


class LiveColumn(NamedTuple):
    """One column of a live table, as the database's catalogue shows it."""

    name: str
    type_text: str  # e.g. INT(10) UNSIGNED, DATETIME, VARCHAR(60)
    nullable: bool
    charset: str | None = None  # a text column's character set, 'binary' for a binary string (MySQL)
    clocked: str | None = None  # what the server's clock writes: "DEFAULT", "ON UPDATE" or both (CURRENT_TIMESTAMP)

    @property
    def definition(self) -> str:
        """What decides the values the column can hold: its type as the catalogue writes it (length,
        precision and scale, UNSIGNED, ZEROFILL, an ENUM's or SET's members), NULL or NOT NULL, and a
        text column's character set. An ALTER changing any of them may rewrite stored values without
        touching a stamp (`sync.refresh_wanted`). The collation is left out: a new one compares and
        sorts otherwise but rewrites no value. Recorded with each commit: a change of this text's
        form makes the next run of every entity a full refresh."""
        nulls = "NULL" if self.nullable else "NOT NULL"
        charset = f" CHARACTER SET {self.charset}" if self.charset else ""
        return f"{self.type_text} {nulls}{charset}"


class MissingObject(NamedTuple):
    """What a statement named that Base A does not hold: a table, or a column (of a table when the
    server's message names it)."""

    table: str | None
    column: str | None = None

    @classmethod
    def of_column(cls, named: str) -> MissingObject:
        """The column as an error names it: `column`, `table.column` or `database.table.column`."""
        parts = named.split(".")
        return cls(parts[-2] if len(parts) > 1 else None, parts[-1])


class LiveTrigger(NamedTuple):
    """One trigger as the database's catalogue shows it now (its table follows a RENAME TABLE)."""

    name: str
    table: str
    timing: str  # BEFORE, AFTER
    event: str  # INSERT, UPDATE, DELETE
    body: str  # what follows FOR EACH ROW


class CascadingKey(NamedTuple):
    """A foreign key whose action changes the rows of the table declaring it (`cascading_keys`)."""

    name: str
    table: str  # the table declaring it: its rows are deleted or changed
    columns: tuple[str, ...]
    parent: str  # the referenced table, whose delete or key change sets the action off
    on_delete: str  # CASCADE, SET NULL, SET DEFAULT, RESTRICT, NO ACTION
    on_update: str
    parent_columns: tuple[str, ...] = ()  # the parent's referenced columns
    parent_schema: str | None = None  # the parent's database when it is another than the table's


class ServerClock(NamedTuple):
    """The zone a server writes its clock in (CURRENT_TIMESTAMP, NOW()) for a session that keeps the
    server's default zone: its name and UTC offsets in seconds at the UTC instants `at`."""

    zone: str
    at: tuple[datetime, ...]
    offsets: tuple[int, ...]


_CURRENT_TIMESTAMP = re.compile(r"\bcurrent_timestamp\b|\bnow\(|'now'", re.IGNORECASE)


def _clocked(default: str | None, on_update: str | None) -> str | None:
    """Which of a column's DEFAULT and ON UPDATE are the server's clock, as the catalogue writes them."""
    written = (("DEFAULT", default), ("ON UPDATE", on_update))
    parts = [name for name, sql in written if sql and _CURRENT_TIMESTAMP.search(sql)]
    return " and ".join(parts) or None


def _upper_type(type_text: str) -> str:
    """A catalogue's column type in upper case but for its quoted ENUM and SET members, which are
    values and keep their case (`SET('sql','php')`); a quote inside one is doubled, so every other
    piece between quotes is outside them."""
    pieces = type_text.split("'")
    return "'".join(piece if i % 2 else piece.upper() for i, piece in enumerate(pieces))


_INTEGER = frozenset({"integer", "numeric"})
_NUMERIC = frozenset({"numeric"})
_TEXT = frozenset({"text"})
_DATE = frozenset({"date"})
# A DATETIME or TIMESTAMP also serves a date field (the time of day is dropped).
_DATETIME = frozenset({"datetime", "date"})
_TIMESTAMP = frozenset({"timestamp", "date"})
_PADDED = frozenset({"padded"})
# Columns whose text is not their number's, which the mapping reads as `col + 0` (`render.bit_number`)
NUMBER_TEXT = frozenset({"bits", "padded"})
_MYSQL_BINARY = frozenset(("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"))
_MYSQL_FAMILIES = {
    **dict.fromkeys(("tinyint", "smallint", "mediumint", "int", "integer", "bigint"), _INTEGER),
    **dict.fromkeys(("decimal", "numeric", "dec", "fixed", "float", "double", "real"), _NUMERIC),
    **dict.fromkeys(("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"), _TEXT),
    "date": _DATE,
    "datetime": _DATETIME,
    "timestamp": _TIMESTAMP,
    "time": frozenset({"time"}),  # serves no stamp or date; as text, see `mapping.render`
    # A BIT is read as its number (`mapping.render`): only what makes text of any value takes it.
    "bit": frozenset({"bits"}),
}


def _error_code(error: DBAPIError) -> int | None:
    """The server's error number of a MySQL driver's error (its first argument)."""
    args = getattr(error.orig, "args", ())
    return args[0] if args else None


def _utc_text(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def connection_cap(error: BaseException) -> bool:
    """Whether a MySQL error is the account's cap on connections at once (1203, or 1226 naming
    'max_user_connections'): the relay's and other tasks' connections free it, a retry can pass.
    1226's hourly quotas ('max_questions', 'max_updates', 'max_connections_per_hour') cannot."""
    error = getattr(error, "orig", error)
    code = error.args[0] if getattr(error, "args", None) else None
    return code == 1203 or (code == 1226 and "max_user_connections" in str(error))


# Who holds connections of Base A's accounts, for the reason of an account limit (1226, 1203).
ACCOUNT_SHARED = (
    "The CDC relay (a binlog connection and a control connection, for as long as it runs) and every Airflow "
    "task (each partition of a load is one, and up to SYNC_PARTITIONS_AT_ONCE run at once) open connections of "
    "Base A's accounts, and an hourly quota outlasts every retry: ask Base A's owners to raise the limit for this "
    "account, or to give the relay its own account (RELAY_BASE_A_URL)"
)


class MySQLBaseA(BaseABackend):
    name = "mysql"
    key_type = BigInteger
    # TIMESTAMP is stored in UTC; every session sets its time zone to UTC.
    stamp_type = mysql.TIMESTAMP(fsp=6)
    now_sql = "CURRENT_TIMESTAMP(6)"
    param_mark = "%s"
    renders_records = True
    unsigned_key_type = mysql.INTEGER(unsigned=True)
    local_stamp_type = mysql.DATETIME()  # no time zone, whole seconds: what legacy schemas hold
    flag_type = mysql.TINYINT()
    triggers_query = "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE()"

    def session_connect_args(self, api_timeout: float = API_TIMEOUT) -> dict:
        # Sessions read in UTC, in one sql_mode whatever the server's (`mysql_session`): the SQL a mapping
        # renders means the same on every server, and CHAR values are read as the binlog holds them.
        # A server that accepts the connection but never answers fails it after connect_timeout seconds.
        # The character set is the driver's argument: it wins over an extra's or a URL's `charset` (these
        # arguments are applied after the URL's), and over the server's init_connect (run before it).
        return {
            "init_command": mysql_session.init_command(mysql_session.idle_seconds(api_timeout)),
            "connect_timeout": 10,
            "charset": mysql_session.CHARSET,
        }

    # The server's error codes that no retry cures: https://mariadb.com/kb/en/mariadb-error-codes/
    REFUSALS = {
        1044: "the account may not use this database",
        1045: "the account or its password is wrong",
        1049: "the database does not exist",
        1142: "the account lacks a privilege on a table",
        1143: "the account lacks a privilege on a column",
        2005: "the host name is unknown",
    }

    def make_engine(self, url: str | URL, api_timeout: float = API_TIMEOUT) -> Engine:
        url = make_url(url)
        connect_args = self.session_connect_args(api_timeout)
        if url.get_driver_name() == "pymysql" and url.password and not url.password.isascii():
            # PyMySQL encodes a str password latin-1 (UnicodeEncodeError for €, a wrong password for ä);
            # bytes it sends as they are: UTF-8, as mysqlclient sends it and the server stored it.
            connect_args["password"] = url.password.encode()
        engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)

        @event.listens_for(engine, "connect")
        def _utf8mb4(dbapi_connection, _record):
            mysql_session.require_utf8mb4(dbapi_connection)

        return engine

    def engine_of_connection(self, connection, hook, api_timeout: float = API_TIMEOUT) -> Engine:
        # From the connection's fields, not the hook's URI (`mysql_connection`).
        return self.make_engine(mysql_connection.url_of(connection), api_timeout)

    def touch_default(self) -> str:
        return f"{self.now_sql} ON UPDATE {self.now_sql}"

    PRIVILEGES = (1044, 1142, 1143)  # of REFUSALS, those a session already let in can meet

    # Limits Base A's owners set, which cut the same statement however often it is tried.
    LIMITS = {
        1969: "a statement ran past max_statement_time (the account's MAX_STATEMENT_TIME, or the server's "
        "max_statement_time) and was killed: every retry runs as long. The sync does not override another "
        "team's limit: ask Base A's owners to lift it for this account (ALTER USER ... WITH MAX_STATEMENT_TIME 0) "
        "or to raise it above the longest read (a first load's extract streams the whole table in one statement)",
        3024: "a statement ran past max_execution_time (MySQL) and was interrupted: every retry runs as long. Ask "
        "Base A's owners to lift it for this account, or to raise it above the longest read",
        1226: "the account reached an hourly quota its owners set (the server's message names it: 'max_questions', "
        "'max_updates' or 'max_connections_per_hour'; ALTER USER ... WITH MAX_QUERIES_PER_HOUR and the like). "
        + ACCOUNT_SHARED,
    }
    # The account's cap on connections at once (`connection_cap`): transient, retried, the reason said.
    CONNECTION_CAP = (
        "the account holds as many connections at once as its owners let it (MAX_USER_CONNECTIONS, or the "
        "server's max_user_connections): the task is retried once others close theirs. " + ACCOUNT_SHARED
    )

    # What a statement waited on in vain: transient (the task's retries), the reason said.
    WAITS = {
        1205: f"a statement waited for a lock held on a Base A table past lock_wait_timeout (a table or metadata "
        f"lock: {mysql_session.LOCK_WAIT_SECONDS} s) or innodb_lock_wait_timeout (a row lock): a session of Base A's "
        "owners holds it (LOCK TABLES ... WRITE, a long transaction, an ALTER TABLE); SHOW PROCESSLIST shows "
        "who. The task is retried",
        1213: "a deadlock with a session of Base A's owners ended the statement. The task is retried",
    }

    # The server away for now (a restart, an upgrade, the network): transient, the reason said (the
    # raw driver error named neither Base A nor what happens next). The relay retries the same codes.
    _LOST = "the connection to Base A was lost (the server restarted, or the session was killed or timed out)"
    _SILENT = "Base A does not answer (the server is down, restarting, or not reachable from here)"
    SERVER_AWAY = {
        1040: "Base A's server holds as many connections as it takes (max_connections)",
        1053: "Base A's server is shutting down (a restart?)",
        1927: _LOST,
        2002: _SILENT,
        2003: _SILENT,
        2006: _LOST,
        2013: "the connection to Base A was lost during a statement (the server restarted, or the session was "
        "killed or timed out)",
        2055: _LOST,
    }

    def refusal(self, error: DBAPIError) -> str | None:
        code = _error_code(error)
        return None if connection_cap(error) else self.REFUSALS.get(code) or self.LIMITS.get(code)

    def waited(self, error: DBAPIError) -> str | None:
        if connection_cap(error):
            return self.CONNECTION_CAP
        code = _error_code(error)
        away = self.SERVER_AWAY.get(code)
        return f"{away}. The task is retried" if away else self.WAITS.get(code)

    def denied(self, error: DBAPIError) -> str | None:
        code = _error_code(error)
        if connection_cap(error):
            return None
        return self.REFUSALS[code] if code in self.PRIVILEGES else self.LIMITS.get(code)

    def lacks_privilege(self, error: DBAPIError) -> bool:
        return _error_code(error) in self.PRIVILEGES

    # "Table 'db.personal' doesn't exist" (1146); "Unknown column 'personal.stelle' in 'field list'" (1054).
    _MISSING_TABLE = re.compile(r"Table '(?:[^']*\.)?([^'.]+)' doesn't exist")
    _MISSING_COLUMN = re.compile(r"Unknown column '([^']+)'")

    def missing_object(self, error: DBAPIError) -> MissingObject | None:
        code, message = _error_code(error), str(getattr(error.orig, "args", ("", ""))[-1])
        if code == 1146 and (table := self._MISSING_TABLE.search(message)):
            return MissingObject(table.group(1))
        if code == 1054 and (column := self._MISSING_COLUMN.search(message)):
            return MissingObject.of_column(column.group(1))
        return None

    def clock(self):
        return func.utc_timestamp(6)

    def pair_hash(self, key, version):
        return mysql_pair_hash(key, version)

    def row_hash(self, values: list):
        # Each value as its bytes with their length (NULL as "~"): no two rows make the same text.
        parts = [func.ifnull(func.concat(func.length(v), ":", cast(v, mysql.BINARY)), "~") for v in values]
        prefix = func.left(func.md5(func.concat_ws(",", *parts)), 16)
        return cast(func.conv(prefix, 16, 10), mysql.BIGINT(unsigned=True))

    def shift_seconds(self, stamp, seconds: int):
        return func.date_add(stamp, text(f"INTERVAL {int(seconds)} SECOND"))

    def datetime_value(self, value: datetime):
        # A bound datetime is text to MariaDB, and a CASE mixing it with DATETIMEs gives text.
        return cast(literal(value.strftime(_ISO_MICROS)), mysql.DATETIME(fsp=6))

    def exact_text(self, value: str):
        # A column of another character set is converted to utf8mb4 first, as Python reads it. Not
        # BINARY('0.5'): MariaDB compares a DECIMAL with it as with 1, rounded to no decimals.
        return _ExactText(literal(value, String()))

    def real_time(self, stamp):
        # Whatever the sql_mode let in (the zero date, 2024-02-30): date arithmetic is NULL on it.
        return func.adddate(stamp, literal_column("0")).isnot(None)

    def driver_row(self, row: tuple) -> tuple:
        return (*row[:-1], _utc_text(row[-1]))  # created_at as UTC text: the session is UTC

    family_of_base = _MYSQL_FAMILIES

    def make_read_only_engine(self, url: str) -> Engine:
        engine = self.make_engine(url)

        @event.listens_for(engine, "connect")
        def _read_only(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
            cursor.close()

        return engine

    def server_names(self, conn: Connection) -> ServerNames:
        return ServerNames.of(conn)

    def replace_trigger(self, conn: Connection, name: str, create: str) -> None:
        # Each DDL statement commits: between a DROP and a CREATE, a DELETE would go unlogged while the
        # log position is kept. MariaDB (10.1.4+) replaces in one statement, under the table's metadata
        # lock; MySQL has no CREATE OR REPLACE TRIGGER (README: a run with compare_keys covers the gap).
        if getattr(conn.dialect, "is_mariadb", False):
            conn.execute(text(re.sub(r"^\s*CREATE\s+TRIGGER\b", "CREATE OR REPLACE TRIGGER", create, flags=re.I)))
        else:
            super().replace_trigger(conn, name, create)

    def live_triggers(self, conn: Connection) -> list[LiveTrigger]:
        rows = conn.execute(
            text(
                "SELECT trigger_name, event_object_table, action_timing, event_manipulation, action_statement "
                "FROM information_schema.triggers WHERE trigger_schema = DATABASE()"
            )
        )
        return [LiveTrigger(*row) for row in rows]

    def sees_triggers_on(self, conn: Connection, table: str) -> bool:
        # information_schema.triggers lists a trigger only to an account holding the TRIGGER
        # privilege on its table (globally, on the database or on the table): a SELECT-only one sees none.
        names = _TableNames(conn, [table])
        held = conn.execute(
            text(
                "SELECT 1 FROM information_schema.user_privileges WHERE privilege_type = 'TRIGGER' "
                "UNION ALL SELECT 1 FROM information_schema.schema_privileges "
                "WHERE privilege_type = 'TRIGGER' AND table_schema = DATABASE() "
                "UNION ALL SELECT 1 FROM information_schema.table_privileges "
                f"WHERE privilege_type = 'TRIGGER' AND table_schema = DATABASE() AND {names.column} IN :tables"
            ).bindparams(bindparam("tables", expanding=True)),
            {"tables": names.keys},
        ).first()
        return held is not None

    def live_columns(self, conn: Connection, tables: list[str]) -> dict[str, list[LiveColumn]]:
        if not tables:
            return {}
        names = _TableNames(conn, tables)
        rows = conn.execute(
            text(
                "SELECT table_name, column_name, column_type, is_nullable, character_set_name, data_type, "
                "column_default, extra "
                f"FROM information_schema.columns WHERE table_schema = DATABASE() AND {names.column} IN :tables "
                "ORDER BY table_name, ordinal_position"
            ).bindparams(bindparam("tables", expanding=True)),
            {"tables": names.keys},
        )
        found: dict[str, list[LiveColumn]] = {}
        for table_name, name, type_text, nullable, text_charset, data_type, default, extra in rows:
            charset = text_charset or ("binary" if data_type.lower() in _MYSQL_BINARY else None)
            # `extra` holds "on update current_timestamp()" (MySQL: after "DEFAULT_GENERATED").
            on_update = (extra or "").lower().partition("on update")[2] or None
            column = LiveColumn(name, _upper_type(type_text), nullable == "YES", charset, _clocked(default, on_update))
            for asked in names.asked(table_name):
                found.setdefault(asked, []).append(column)
        return {t: found[t] for t in tables if t in found}

    def server_clock(self, conn: Connection, instants: list[datetime]) -> ServerClock | None:
        # The global zone, what a new session starts with; SYSTEM is the operating system's zone,
        # which CONVERT_TZ reads too. NULL: a named zone without the server's time zone tables.
        zone, system = conn.execute(text("SELECT @@global.time_zone, @@system_time_zone")).one()
        shifts = ", ".join(
            f"TIMESTAMPDIFF(SECOND, :at{i}, CONVERT_TZ(:at{i}, '+00:00', @@global.time_zone))"
            for i in range(len(instants))
        )
        at = {f"at{i}": _utc_text(instant.astimezone(UTC)) for i, instant in enumerate(instants)}
        offsets = conn.execute(text(f"SELECT {shifts}"), at).one()
        if any(offset is None for offset in offsets):
            return None
        name = f"SYSTEM ({system})" if zone.upper() == "SYSTEM" else zone
        return ServerClock(name, tuple(instants), tuple(int(o) for o in offsets))

    def unique_columns(self, conn: Connection, tables: list[str]) -> dict[str, frozenset[str]]:
        found = _indexed_columns(
            conn,
            tables,
            "SELECT table_name, MAX(column_name) FROM information_schema.statistics "
            "WHERE table_schema = DATABASE() AND {table} IN :tables AND non_unique = 0 "
            "GROUP BY table_name, index_name HAVING COUNT(*) = 1",
        )
        return {t: found.get(t, frozenset()) for t in tables}

    def leading_columns(self, conn: Connection, tables: list[str]) -> dict[str, frozenset[str]]:
        return _indexed_columns(
            conn,
            tables,
            "SELECT table_name, column_name FROM information_schema.statistics "
            "WHERE table_schema = DATABASE() AND {table} IN :tables AND seq_in_index = 1",
        )

    def views(self, conn: Connection, tables: list[str]) -> frozenset[str]:
        if not tables:
            return frozenset()
        names = _TableNames(conn, tables)
        rows = conn.execute(
            text(
                "SELECT table_name FROM information_schema.tables "
                f"WHERE table_schema = DATABASE() AND {names.column} IN :tables AND table_type = 'VIEW'"
            ).bindparams(bindparam("tables", expanding=True)),
            {"tables": names.keys},
        )
        return frozenset(asked for (name,) in rows for asked in names.asked(name))

    def spelled_tables(self, conn: Connection, tables: list[str]) -> dict[str, str]:
        if not tables or _TableNames(conn, tables).folded:
            return {}
        rows = conn.execute(
            text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND LOWER(table_name) IN :tables"
            ).bindparams(bindparam("tables", expanding=True)),
            {"tables": sorted({t.lower() for t in tables})},
        )
        held = [name for (name,) in rows]
        return {t: name for t in tables for name in held if name.lower() == t.lower() and name != t}

    def cascading_keys(self, conn: Connection, tables: list[str]) -> list[CascadingKey]:
        # InnoDB runs foreign key actions inside the engine: no trigger fires (the delete log misses
        # a cascaded delete), ON UPDATE CURRENT_TIMESTAMP stamps nothing, the binlog has no row event.
        # Read from SHOW CREATE TABLE: information_schema.referential_constraints lists nothing to a
        # SELECT-only account (MariaDB 10.11), the sync's usual one.
        found = []
        for table in tables:
            quoted = conn.dialect.identifier_preparer.quote(table)
            try:
                create = conn.exec_driver_sql(f"SHOW CREATE TABLE {quoted}").one()[1]
            except DBAPIError as error:
                if _error_code(error) in (1142, 1146):  # not there, or not readable: the schema check says so
                    continue
                raise
            for match in _FOREIGN_KEY.finditer(create):
                rules = dict(_RULE.findall(match["rules"]))
                on_delete, on_update = rules.get("DELETE", "RESTRICT"), rules.get("UPDATE", "RESTRICT")
                if {on_delete, on_update} - {"RESTRICT", "NO ACTION"}:
                    found.append(
                        CascadingKey(
                            _unquote(match["name"]),
                            table,
                            _names(match["columns"]),
                            _unquote(match["parent"]),
                            on_delete,
                            on_update,
                            _names(match["parent_columns"]),
                            match["schema"] and _unquote(match["schema"]),
                        )
                    )
        return found


def _indexed_columns(conn: Connection, tables: list[str], query: str) -> dict[str, frozenset[str]]:
    """Per table of `tables` the catalogue lists, the columns `query` names ((table_name, column) rows;
    `{table}` is the catalogue's table name as the server compares it)."""
    if not tables:
        return {}
    names = _TableNames(conn, tables)
    rows = conn.execute(
        text(query.format(table=names.column)).bindparams(bindparam("tables", expanding=True)), {"tables": names.keys}
    )
    found: dict[str, set[str]] = {}
    for table_name, column in rows:
        for asked in names.asked(table_name):
            found.setdefault(asked, set()).add(column)
    return {t: frozenset(columns) for t, columns in found.items()}


class _TableNames:
    """The tables a mapping names, matched in information_schema as the server matches table names in
    SQL: without case where lower_case_table_names is 1 or 2 (it stores, or looks up, names in lower
    case: `Personal` reads the table created as `Personal`, which the catalogue may list as
    `personal`), with it where it is 0."""

    def __init__(self, conn: Connection, tables: list[str]):
        self.names = ServerNames.of(conn)
        self.folded = self.names.folded
        self.tables = list(tables)
        self.column = "LOWER(table_name)" if self.folded else "table_name"  # the catalogue's, compared
        self.keys = sorted({self.names.key(t) for t in self.tables})  # the mapping's names, compared

    def asked(self, listed: str) -> list[str]:
        """The mapping's names of the table the catalogue lists as `listed`."""
        return [t for t in self.tables if self.names.same(t, listed)]


# A foreign key as SHOW CREATE TABLE writes it; an action left out is RESTRICT.
_NAME = re.compile(r"`((?:[^`]|``)+)`")
_FOREIGN_KEY = re.compile(
    r"CONSTRAINT `(?P<name>(?:[^`]|``)+)` FOREIGN KEY \((?P<columns>[^)]*)\) "
    r"REFERENCES (?:`(?P<schema>(?:[^`]|``)+)`\.)?`(?P<parent>(?:[^`]|``)+)` \((?P<parent_columns>[^)]*)\)"
    r"(?P<rules>(?: ON (?:DELETE|UPDATE) (?:CASCADE|SET NULL|SET DEFAULT|RESTRICT|NO ACTION))*)"
)
_RULE = re.compile(r"ON (DELETE|UPDATE) (CASCADE|SET NULL|SET DEFAULT|RESTRICT|NO ACTION)")


def _unquote(name: str) -> str:
    return name.replace("``", "`")


def _names(listed: str) -> tuple[str, ...]:
    return tuple(_unquote(name) for name in _NAME.findall(listed))


# CREATE TRIGGER [IF NOT EXISTS] name [BEFORE|AFTER|INSTEAD OF] event [OF cols] ON table [FOR EACH ROW] body
_SQLITE_TRIGGER = re.compile(
    r"\s*CREATE\s+(?:TEMP(?:ORARY)?\s+)?TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+"
    r"(?P<timing>BEFORE|AFTER|INSTEAD\s+OF)?\s*(?P<event>DELETE|INSERT|UPDATE)\b(?:\s+OF\s+.*?)?\s+ON\s+\S+\s+"
    r"(?:FOR\s+EACH\s+ROW\s+)?(?P<body>.*)",
    re.IGNORECASE | re.DOTALL,
)


class SQLiteBaseA(BaseABackend):
    name = "sqlite"
    key_type = Integer
    stamp_type = DateTime
    now_sql = _SQLITE_NOW
    param_mark = "?"
    triggers_query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"

    def read_columns(self, columns: list) -> list:
        # SQLite keeps whatever text was written into a date, time or decimal column ('0000-00-00',
        # '2024-13-45', 'abc'), and SQLAlchemy's parse of it raises for the whole chunk: read the
        # stored value, and let `read_row` sort it.
        return [type_coerce(c, NullType()) if isinstance(c.type, Date | DateTime | Numeric) else c for c in columns]

    def read_row(self, columns: list, values) -> tuple[dict, frozenset[str]]:
        row, invalid = {}, []
        for column, stored in zip(columns, values, strict=True):
            value = _stored_as(column.type, stored)
            if value is _NO_DATE:
                invalid.append(column.name)  # kept as its text: the reason names it
                value = stored
            row[column.name] = value
        return row, frozenset(invalid)

    def refusal(self, error: DBAPIError) -> str | None:
        if getattr(error.orig, "sqlite_errorname", None) == "SQLITE_CANTOPEN":
            return "the database file cannot be opened (a missing folder, or no permission)"
        return None

    # sqlite3 has no error code of its own for these: its message is all there is.
    _MISSING = re.compile(r"no such (table|column): (\S+)")

    def missing_object(self, error: DBAPIError) -> MissingObject | None:
        found = self._MISSING.match(str(error.orig))
        if found is None:
            return None
        kind, named = found.groups()
        return MissingObject(named.split(".")[-1]) if kind == "table" else MissingObject.of_column(named)

    def absent(self, engine: Engine) -> str | None:
        # SQLite would create a missing file on the first connection: a mistyped path became an
        # empty Base A, a new file beside the real one.
        path = engine.url.database
        if path and path != ":memory:" and not path.startswith("file:") and not os.path.exists(path):
            return f"there is no database file {path}"
        return None

    def make_engine(self, url: str, api_timeout: float = API_TIMEOUT) -> Engine:
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection, _record):  # the generator writes while the sync reads
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

        return engine

    def extend_table(self, table: Table) -> None:
        # An UPDATE that does not set updated_at itself gets the current time, as MySQL's ON UPDATE does.
        name = table.name
        touch = DDL(  # DDL formats with %, hence the doubled signs
            f"CREATE TRIGGER IF NOT EXISTS {name}_touch AFTER UPDATE ON {name} "
            f"FOR EACH ROW WHEN NEW.updated_at = OLD.updated_at BEGIN "
            f"UPDATE {name} SET updated_at = {_SQLITE_NOW.replace('%', '%%')} WHERE id = NEW.id; END"
        )
        event.listen(table, "after_create", touch)

    def live_triggers(self, conn: Connection) -> list[LiveTrigger]:
        # SQLite keeps the CREATE TRIGGER text (rewritten by an ALTER TABLE RENAME): read it back.
        found = []
        rows = conn.exec_driver_sql("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
        for name, table, sql in rows:
            parts = _SQLITE_TRIGGER.match(sql or "")
            if parts:
                timing = " ".join((parts["timing"] or "BEFORE").upper().split())
                found.append(LiveTrigger(name, table, timing, parts["event"].upper(), parts["body"]))
        return found

    def trigger_body(self, statement: str, when: str | None = None) -> str:
        block = f"BEGIN {statement}; END"  # SQLite wants a block, and has WHEN instead of IF
        return f"WHEN {when} {block}" if when else block

    def clock(self):
        return func.strftime("%Y-%m-%d %H:%M:%f", "now")

    def datetime_value(self, value: datetime):
        return literal(value, DateTime())  # text, as `shift_seconds` writes it

    def shift_seconds(self, stamp, seconds: int):
        # Stored as text, with the six fractional digits the DateTime type reads back. Found from
        # outside: a stamp written with microseconds (`.617950`) was `.618000` here (SQLite keeps
        # milliseconds) and `.617950` in what the load sent: every verify of its window failed
        # and the watermark never moved.
        return type_coerce(_sqlite_shifted(stamp, seconds), DateTime)

    def exact_text(self, value: str):
        # Explicit: a column declared COLLATE NOCASE would fold case. Its affinity still makes '0' a
        # number against an INTEGER or NUMERIC column.
        return literal(value).collate("BINARY")

    def real_time(self, stamp):
        return func.julianday(stamp).isnot(None)  # text SQLite's date functions cannot read: NULL

    # SQLite keeps a stamp as the text it was written in: '2024-05-01T10:00:00', '... 10:00:00.5',
    # '... 10:00:00', '... 10:00:00.617950'. Compared as text with a bound datetime (SQLAlchemy's
    # '2024-05-01 23:00:00.000000') the 'T' one was after every time of its day and '10:00:00' before
    # '10:00:00.000000': an incremental read took rows again at every run or never, and the
    # verification missed them. Compared here as one text form, six fractional digits, both sides.
    normalises_stamps = True

    def comparable_stamp(self, stamp):
        return self.shift_seconds(stamp, 0)

    def stamp_at_least(self, stamp, value: datetime):
        # Every written form of a time at or after `value` starts with its date, ' ' or 'T' (after
        # ' '), then its whole seconds, at least `value`'s: no fraction in the constant.
        return stamp >= literal(value.isoformat(" ", "seconds"))

    def stamp_at_most(self, stamp, value: datetime):
        # The 'T' form is the later text of a time: up to `value`'s second in it, anything after that
        # second's digits ('~' sorts after the fraction, a zone and the end).
        return stamp <= literal(value.isoformat("T", "seconds") + "~")

    def wall_after(self, wall, value: datetime):
        whole = value.replace(microsecond=0)
        return false() if whole >= datetime.max.replace(microsecond=0) else _from_second(wall, whole + _ONE_SECOND)

    def wall_before(self, wall, value: datetime):
        return not_(_from_second(wall, value.replace(microsecond=0)))

    def driver_row(self, row: tuple) -> tuple:
        return tuple(_sqlite_value(value) for value in row)  # decimals, dates and times as text

    def make_read_only_engine(self, url: str) -> Engine:
        # The file opened read-only (no WAL switch, no new file): SQLite refuses every write.
        database = make_url(url).database
        return create_engine(f"sqlite:///file:{database}?mode=ro&uri=true", connect_args={"timeout": 30})

    def live_columns(self, conn: Connection, tables: list[str]) -> dict[str, list[LiveColumn]]:
        found = {}
        for name in tables:
            rows = conn.exec_driver_sql(f'PRAGMA table_info("{name}")').all()
            if rows:  # PRAGMA table_info: (cid, name, type, notnull, default, pk)
                found[name] = [
                    LiveColumn(row[1], (row[2] or "").upper(), not row[3] and not row[5], None, _clocked(row[4], None))
                    for row in rows
                ]
        return found

    def server_clock(self, conn: Connection, instants: list[datetime]) -> ServerClock | None:
        # SQLite's CURRENT_TIMESTAMP and datetime('now') are UTC, whatever the machine's zone.
        return ServerClock("UTC (SQLite's clock)", tuple(instants), (0,) * len(instants))

    def unique_columns(self, conn: Connection, tables: list[str]) -> dict[str, frozenset[str]]:
        found = {}
        for name in tables:
            # PRAGMA table_info's pk: the position in the primary key (an INTEGER PRIMARY KEY has no index).
            primary = [row[1] for row in conn.exec_driver_sql(f'PRAGMA table_info("{name}")') if row[5]]
            columns = set(primary) if len(primary) == 1 else set()
            for _, index, unique, _, partial in conn.exec_driver_sql(f'PRAGMA index_list("{name}")'):
                indexed = [row[2] for row in conn.exec_driver_sql(f'PRAGMA index_info("{index}")')]
                if unique and not partial and len(indexed) == 1:
                    columns.add(indexed[0])
            found[name] = frozenset(columns)
        return found

    def leading_columns(self, conn: Connection, tables: list[str]) -> dict[str, frozenset[str]]:
        found = {}
        for name in tables:
            # The rowid's alias (an INTEGER PRIMARY KEY) is no index, and the fastest lookup there is.
            primary = [row for row in conn.exec_driver_sql(f'PRAGMA table_info("{name}")') if row[5]]
            columns = {primary[0][1]} if len(primary) == 1 and primary[0][2].upper() == "INTEGER" else set()
            for _, index, *_ in conn.exec_driver_sql(f'PRAGMA index_list("{name}")'):
                first = [row[2] for row in conn.exec_driver_sql(f'PRAGMA index_info("{index}")') if row[0] == 0]
                columns.update(c for c in first if c is not None)  # None: an index on an expression
            if columns:
                found[name] = frozenset(columns)
        return found

    def type_families(self, type_text: str) -> frozenset[str]:
        # Type affinity (sqlite.org/datatype3.html); SQLite has no zone semantics, so a DATETIME
        # or TIMESTAMP column (UTC text, as the platform writes it) serves either kind of stamp.
        upper = type_text.upper()
        if "INT" in upper:
            return _INTEGER
        if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
            return _TEXT
        if "DATETIME" in upper or "TIMESTAMP" in upper:
            return frozenset({"datetime", "timestamp", "date"})
        if upper.startswith("DATE"):
            return _DATE
        if any(word in upper for word in ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")):
            return _NUMERIC
        return frozenset()

    def prepare(self, url: str) -> None:
        database = make_url(url).database
        if database and database != ":memory:" and not os.path.isabs(database):
            os.makedirs(os.path.dirname(database) or ".", exist_ok=True)


class _ExactText(ColumnElement):
    """A text constant in utf8mb4 with the server's binary NO PAD collation: byte for byte, trailing
    spaces included. MariaDB names it utf8mb4_nopad_bin, MySQL 8 utf8mb4_0900_bin (neither knows
    the other's), so the name is chosen when the statement is compiled for the connected server.
    CONVERT first: a session in utf8mb3 (`?charset=utf8`) would refuse the utf8mb4 collation."""

    inherit_cache = True
    type = String()
    _traverse_internals = [("value", InternalTraversal.dp_clauseelement)]  # a cache key: compiled once

    def __init__(self, value: ColumnElement):
        self.value = value

    @property
    def _from_objects(self) -> list:
        return []


@compiles(_ExactText)
def _compile_exact_text(element: _ExactText, compiler, **kw) -> str:
    collation = "utf8mb4_nopad_bin" if getattr(compiler.dialect, "is_mariadb", False) else "utf8mb4_0900_bin"
    return f"CONVERT({compiler.process(element.value, **kw)} USING utf8mb4) COLLATE {collation}"


def _sqlite_value(value):
    if isinstance(value, datetime):
        return _utc_text(value)
    if isinstance(value, Decimal | date):
        return str(value)
    return value


BACKENDS: dict[str, BaseABackend] = {backend.name: backend for backend in (MySQLBaseA(), SQLiteBaseA())}


def backend_named(name: str) -> BaseABackend:
    """The backend of a database kind ("mysql", "sqlite"; an Airflow connection type names it too)."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigurationError(f"Base A on {name!r} is not supported (only {', '.join(BACKENDS)})") from None


def backend_of(engine: Engine) -> BaseABackend:
    return backend_named(engine.dialect.name)


def backend_for_url(url: str) -> BaseABackend:
    return backend_named(make_url(url).get_backend_name())


BINLOG_SERVERS = ("mysql", "mariadb")  # SQLAlchemy's names of the servers whose binlog the relay reads
BINLOG_URL = "a MySQL or MariaDB URL, e.g. mysql://user:<password>@host:3306/base_a"


def check_binlog_url(value: str) -> str:
    """`value`, a URL of a server whose binlog the relay can read, or a ValueError saying what is wrong
    with it, never showing it (it may hold a password)."""
    if not value.strip():
        raise ValueError(f"empty: {BINLOG_URL}")
    try:
        backend = make_url(value).get_backend_name()
    except ArgumentError:
        raise ValueError(f"not a SQLAlchemy URL: {BINLOG_URL}") from None
    if backend not in BINLOG_SERVERS:
        raise ValueError(f"the relay reads no binlog of {backend!r}: {BINLOG_URL}")
    return value


def _decimal_or_text(value: str) -> Decimal | str:
    """A decimal column's stored text as a number; text that is none stays text (the API refuses it)."""
    try:
        number = Decimal(value)
    except ArithmeticError:
        return value
    return number if number.is_finite() else value


_NO_DATE = object()


def _stored_as(kind: TypeEngine, stored):
    """A value SQLite stored, as the column's type reads it; `_NO_DATE` for a date that is none."""
    if isinstance(stored, str) and isinstance(kind, Date | DateTime):
        try:
            parsed = datetime.fromisoformat(stored)
        except ValueError:
            return _NO_DATE
        return parsed if isinstance(kind, DateTime) else parsed.date()
    if isinstance(kind, Numeric) and isinstance(stored, int | float | str) and not isinstance(stored, bool):
        return _decimal_or_text(str(stored))
    return stored


def _from_second(wall, second: datetime) -> ColumnElement:
    """That a SQLite text stamp is at or after `second` (whole), compared as stored, no function
    called (this sits at every level of a zone rule's CASE): in the 'T' form, from that second's 'T'
    text on; in the ' ' form (before every 'T' text of its day), from its ' ' text to its day's 'T'."""
    t_form = literal(second.isoformat("T"))
    spaced = and_(wall >= literal(second.isoformat(" ")), wall < literal(f"{second.date().isoformat()}T"))
    return or_(wall >= t_form, spaced)


def _sqlite_shifted(stamp, seconds: int) -> ColumnElement:
    """A SQLite text stamp `YYYY-MM-DD HH:MM:SS[.f...][zone]` moved by whole seconds, its fraction
    kept to the microsecond.

    SQLite's date functions keep milliseconds, rounded (`%f`; `.999999` rounds into the next second):
    the stamp is moved without its fraction, which is then put back as the DateTime type reads it
    (its first six digits, right-padded). A zone suffix still applies. This sits in every leaf of a
    zone rule's CASE and is evaluated at each test of a version: few calls. The fraction's digits
    behind a '1' (kept leading zeros) as an integer, which CAST reads up to the first non-digit
    (a zone), then right-padded: '.5+02:00' gives '15', '500000'. Measured on 200k rows, the
    former form (the digits' run by ltrim and length, three times) took half again as long."""
    digits = "0123456789"
    after_point = case((func.substr(stamp, 20, 1) == ".", func.substr(stamp, 21, 6)), else_=literal(""))
    marked = cast(literal("1").concat(after_point), Integer)
    without_fraction = func.substr(stamp, 1, 19).concat(func.ltrim(func.substr(stamp, 20), "." + digits))
    whole = func.strftime("%Y-%m-%d %H:%M:%S", without_fraction, f"{int(seconds):+d} seconds")
    return whole.concat(".").concat(func.substr(cast(marked, String).concat("000000"), 2, 6))

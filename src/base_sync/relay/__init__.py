"""The CDC relay: Base A's binlog (ROW format) to Debezium change events on Kafka, with a resumable position.

One process reads the binlog as a replica would (mysql-replication), turns every row change of the
source tables the mapping names (`BASE_A_MAPPING_FILE`; without one, the platform's own tables) into a
Debezium envelope of the row in its own shape, keyed by the source key, and produces it to
`<prefix>.<database>.<table>`, the topic Debezium's MySQL connector would use. The envelope's schema
comes from the binlog's column metadata (binlog_row_metadata=FULL), never from Base B's entities.
The position (MariaDB: the GTID of every replication domain; MySQL: file and offset) is saved to a
file only once every event of the transactions before it was acknowledged by the broker, so a
restart resumes without a gap; it may repeat the last transactions, which the API's version guard
makes harmless. A saved position the relay cannot resume from as it is (a file that is no position;
on MariaDB one whose binlog file Base A holds with other GTIDs at its offset: a failover or a restore
onto another history) stops it in one line saying what to do; none at all starts at Base A's current
position, warning that changes made meanwhile are the batch sync's. A prepared XA's changes wait for
its XA COMMIT (`xa`), holding the position before them. A lost replication connection resumes after
the last whole transaction read (refused, as at start, when Base A came back with another history); a
Base A away is retried with back-off for RELAY_RECONNECT_SECONDS, then the relay exits in one line.

A row the binlog does not hold whole (a partial row image, no column names) is published as an
incomplete change with the reason, which the drain dead-letters (`rows`); statements the binlog
holds as SQL are read for what they do to mapped tables (`statements`): a TRUNCATE becomes a
truncate event, statement-logged DML (and the mapped tables it reaches through a trigger, view or
stored function: `reach`), a rename away, a swap in one RENAME statement that is no online schema
change's cut-over (a cut-over, its shadow copy swapped in, is no loss: `renames`, logged at INFO and
counted apart), a drop, a column the mapping reads dropped (added back, it would hold its default in
every row at the same stamps: a full refresh's work) and a partition clause that removes or adds rows (TRUNCATE, DROP,
REORGANIZE, EXCHANGE, CONVERT PARTITION; not a REORGANIZE of a RANGE, HASH or KEY table, nor a DROP
of a SYSTEM_TIME table's history partition, which keep every current row) are logged loudly and
counted.

Run it with `base-a-relay` (settings RELAY_*); `/health` and `/metrics` are served on RELAY_HTTP_PORT.
A relay holds its position file for its lifetime (`PositionFile.lock`): a second one on the same file
is refused at start. A thread it needs that fails stops it (exit 1), for its supervisor to restart it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import json
import logging
import os
import re
import signal
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import MySQLdb
import pymysql
from confluent_kafka import KafkaError, KafkaException, Producer
from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import GtidEvent, MariadbGtidEvent, QueryEvent, XAPrepareEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from base_sync.backends import MySQLBaseA, backend_of, check_binlog_url, connection_cap
from base_sync.debezium import EnvelopeWriter, Topics
from base_sync.mapping import SourceMapping
from base_sync.mapping.check import KEY_EXPECTED, Problem
from base_sync.relay import cascades, reach, renames, statements, xa
from base_sync.relay.rows import (
    TOO_LARGE,
    RowChange,
    binlog_column,
    binlog_type,
    integer_column,
    null_flags,
    row_changes,
    row_op,
    too_large,
    unreadable,
)
from base_sync.relay.versioning import SYSTEM_VERSIONED, Versioned
from base_sync.server_names import ServerNames
from base_sync.settings import EventSettings
from base_sync.topics import dead_letter_configs, ensure_topics
from env_settings import DAY, EnvSettings, InvalidSettings

log = logging.getLogger("base-a-relay")
CONNECT_TIMEOUT = 10  # seconds: a Base A that accepts the connection but never answers fails it, not hangs
READ_TIMEOUT = 30  # seconds without a packet on the replication connection (heartbeats come every second)
# MySQL/MariaDB errors that mean Base A is away for now (refused, lost, gone, shutting down, killed,
# too many connections), as the batch tasks read them: retried with back-off. Any other error is terminal.
TRANSIENT_CODES = frozenset(MySQLBaseA.SERVER_AWAY)
# The account's hourly quotas (1226): terminal, with the reason that the batch tasks share the
# account. Its cap on connections at once (1203, 1226 naming max_user_connections) is transient.
ACCOUNT_LIMITS = frozenset({1226})

REGISTRY = CollectorRegistry()  # the relay's own: served on its /metrics, never mixed into a host process's
# process_start_time_seconds tells a relay restarting over and over (alert RelayRestarting).
ProcessCollector(registry=REGISTRY)
EVENTS = Counter("relay_events_total", "Change events produced", ["entity", "op"], registry=REGISTRY)
TRANSACTIONS = Counter("relay_transactions_total", "Base A transactions read from the binlog", registry=REGISTRY)
DELIVERY_ERRORS = Counter("relay_delivery_errors_total", "Events the broker did not acknowledge", registry=REGISTRY)
LAST_EVENT = Gauge(
    "relay_last_event_timestamp_seconds", "Commit time in Base A of the last event read", registry=REGISTRY
)
LAST_SAVED = Gauge(
    "relay_position_saved_timestamp_seconds", "When the resumable position was last saved", registry=REGISTRY
)
UNPUBLISHED = Counter(
    "relay_unpublished_statements_total",
    "Statements on a mapped table whose changes the relay cannot publish (DML a session logged as a "
    "statement, the table renamed away or dropped, another table swapped into its name that is no online schema "
    "change's shadow copy, rows a partition clause of an ALTER TABLE removed or "
    "added, a column the mapping reads dropped (kind column_drop: run full_refresh once it is settled), "
    "a row change too large for a Kafka message, a parent row's delete or key update a foreign key "
    "cascades into the table): the batch sync must carry them; and each row event of a mapped table whose "
    "key is no integer type in the binlog's table map (kind key_type: fix the key, the batch refuses it too) "
    "or that has no column the mapping's key (kind key_missing: renamed or dropped; fix the mapping's key)",
    ["table", "kind"],
    registry=REGISTRY,
)
SWAPS = Counter(
    "relay_table_swaps_total",
    "RENAME statements that moved a mapped table away and its online schema change's shadow copy into its "
    "name at once (the cut-over of pt-online-schema-change or gh-ost, their default shadow names): nothing was "
    "written under another name, the table is published on under its name; not counted as unpublished (any "
    "other swap is, kind swap)",
    ["table"],
    registry=REGISTRY,
)
RECONNECTS = Counter(
    "relay_reconnections_total", "Replication connections to Base A lost and resumed", registry=REGISTRY
)
PENDING = Gauge(
    "relay_events_unacknowledged", "Events produced and not yet acknowledged by the broker", registry=REGISTRY
)
INCOMPLETE = Counter(
    "relay_incomplete_changes_total",
    "Row changes published incomplete, with the reason (the drain dead-letters them): a partial row image, "
    "no column names, an unreadable row",
    ["table", "cause"],
    registry=REGISTRY,
)

HISTORY = Counter(
    "relay_history_rows_total",
    "Binlog rows of a system-versioned table's history rows (an update's or delete's old image, DELETE "
    "HISTORY): no change of a current row, not published",
    ["table"],
    registry=REGISTRY,
)
CASCADING_KEYS = Gauge(
    "relay_cascading_foreign_keys",
    "Foreign keys into a mapped table whose ON DELETE or ON UPDATE rule (CASCADE, SET NULL, SET DEFAULT) "
    "changes its rows inside InnoDB, with no row event: each parent delete or key update is counted "
    "(relay_unpublished_statements_total, kind cascade)",
    ["table"],
    registry=REGISTRY,
)
BROKER_REACHABLE = Gauge(
    "relay_broker_reachable",
    "1 while the broker answered the relay's last metadata request (every RELAY_BROKER_CHECK_SECONDS), 0 while "
    "it did not: the only view of the broker a deployment without a Kafka exporter has (alert KafkaBrokerUnreachable)",
    registry=REGISTRY,
)
VIEWS = Gauge(
    "relay_mapped_views",
    "1 for a mapped source table that is a view: the binlog names the tables under it, never the view, "
    "so the relay publishes none of its changes (the batch sync alone carries them)",
    ["table"],
    registry=REGISTRY,
)


class StreamLost(Exception):
    """The replication connection dropped (mysql-replication was about to reconnect by itself)."""


class BaseAUnreachable(Exception):
    """Base A stayed unreachable for RELAY_RECONNECT_SECONDS."""


class ChangeTooLarge(Exception):
    """An event larger than the producer's message.max.bytes (RELAY_MESSAGE_MAX_BYTES): refused before sending."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"{size} bytes, more than {limit}")
        self.size, self.limit = size, limit


def transient(error: BaseException) -> bool:
    """Base A is away for now (a lost or refused connection), as opposed to refusing for good."""
    if isinstance(error, StreamLost):
        return True
    if isinstance(error, DBAPIError):
        error = error.orig
    if not isinstance(error, pymysql.err.MySQLError | MySQLdb.MySQLError) or not error.args:
        return False
    return error.args[0] in TRANSIENT_CODES or connection_cap(error)


CASCADE = "cascade"  # relay_unpublished_statements_total's kind of a foreign key's cascade
KEY_TYPE = "key_type"  # its kind of a row event of a mapped table whose key is no integer (`_key_refused`)
KEY_MISSING = "key_missing"  # its kind of a row event of a mapped table without the key column (renamed, dropped)
KEY_COLUMN = "the column the mapping names as its key"
FL_STANDALONE = 0x01  # MariaDB's GTID event flag: the group is one statement, with no XID event

# ER_MASTER_FATAL_ERROR_READING_BINLOG: the position the replica asked for is not in the binlogs.
BINLOG_GONE = 1236


# ER_SLAVE_SAME_ID (MariaDB): another replication client connected with this server_id, and Base A
# ended this one's binlog dump for it. MySQL says it with 1236 and these words.
SERVER_ID_TAKEN = 4052
SAME_ID_WORDS = "same server_uuid/server_id"


def _binlog_gone(error: BaseException) -> bool:
    error = error.orig if isinstance(error, DBAPIError) else error
    return isinstance(error, pymysql.err.MySQLError | MySQLdb.MySQLError) and error.args[:1] == (BINLOG_GONE,)


def _server_id_taken(error: BaseException) -> bool:
    """Another replica (a relay, a replica server) connected to Base A with this relay's server_id."""
    error = error.orig if isinstance(error, DBAPIError) else error
    if not isinstance(error, pymysql.err.MySQLError | MySQLdb.MySQLError) or not error.args:
        return False
    return error.args[0] == SERVER_ID_TAKEN or (error.args[0] == BINLOG_GONE and SAME_ID_WORDS in str(error))


def account_limit(error: BaseException) -> str | None:
    """The reason of an hourly quota Base A's owners set on the account (1226), None for any other
    error: its cap on connections at once (`connection_cap`) is transient (`transient`)."""
    error = error.orig if isinstance(error, DBAPIError) else error
    if not isinstance(error, pymysql.err.MySQLError | MySQLdb.MySQLError) or not error.args or connection_cap(error):
        return None
    return MySQLBaseA.LIMITS.get(error.args[0]) if error.args[0] in ACCOUNT_LIMITS else None


def one_line(error: BaseException) -> str:
    if isinstance(error, DBAPIError):  # the driver's own words, without SQLAlchemy's link
        error = error.orig
    return " ".join(str(error).split())


class RelaySettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="RELAY_", extra="ignore")
    read_elsewhere = ("RELAY_ADDRESS",)  # scripts/up.sh's, for scripts/prometheus_config.py

    base_a_url: str = Field("mysql://root@127.0.0.1:3306/base_a", description="Base A (MySQL or MariaDB, binlog ROW)")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="bootstrap.servers of the broker")
    topic_prefix: str = Field(
        "base_a", description="Debezium's topic.prefix: topics are <prefix>.<database of the URL>.<table>"
    )
    partitions: int = Field(3, ge=1, le=10_000, description="partitions of the topics the relay creates when missing")
    server_id: int = Field(
        5401, ge=1, le=2**32 - 1, description="replica id (1 to 4294967295): unique among the server's replicas"
    )
    position_file: Path = Field(Path("var/relay/position.json"), description="where the resumable position lives")
    with_schema: bool = Field(True, description="Debezium's schema/payload wrapper (JSON converter default)")
    http_host: str = Field("127.0.0.1", description="address of /health and /metrics")
    http_port: int = Field(9105, ge=0, le=65535, description="port of /health and /metrics (0: none)")
    message_max_bytes: int = Field(
        1_000_000,
        ge=16_384,  # room for the stand-in of a change too large (about 2 KB with its schema)
        le=1_000_000_000,  # librdkafka's largest message.max.bytes
        description="the producer's message.max.bytes: a row change whose event is larger is published as a small "
        "incomplete change the drain dead-letters (raise it with the topics' max.message.bytes)",
    )
    # At most 30 s: RelayEventsNotAcknowledged fires after a minute without a save, and a stop waits for it.
    save_interval: float = Field(0.5, gt=0, le=30, description="seconds between position saves")
    reconnect_seconds: float = Field(
        120, ge=0, le=DAY, description="how long to retry (with back-off) while Base A is unreachable before failing"
    )
    broker_check_seconds: float = Field(
        15, ge=0.5, le=600, description="seconds between the metadata requests that tell the broker reachable"
    )

    @field_validator("position_file", mode="before")
    @classmethod
    def _a_file_name(cls, value: object) -> object:
        # "" is Path("."), whose lock file cannot be named (a traceback); "   " made "   .lock" in the cwd.
        if isinstance(value, str) and (not value.strip() or Path(value).name in ("", ".", "..")):
            raise ValueError("no file name: a path to the position file is needed, e.g. var/relay/position.json")
        return value

    @field_validator("http_host")
    @classmethod
    def _a_host(cls, value: str) -> str:
        # An empty host binds every interface, which /metrics should not reach unasked.
        if not value.strip():
            raise ValueError("empty: the address to serve /health and /metrics on, e.g. 127.0.0.1 (0.0.0.0: all)")
        return value

    @field_validator("base_a_url")
    @classmethod
    def _a_binlog_url(cls, value: str) -> str:
        # Else an unparsable URL failed with a traceback, and sqlite:///x.db connected with MySQLdb anyway.
        return check_binlog_url(value)


class PositionUnusable(Exception):
    """The saved position cannot be resumed from (unreadable, holding no position, or of another
    binlog history): terminal, its message says why and what to do, in one line."""


class PositionHeld(Exception):
    """Another relay holds the position file (its lock): terminal, in one line naming the file."""


# What the operator does about a position the relay cannot resume from.
RESTART_ADVICE = (
    "move {path} aside to start from Base A's current position, then run base_a_to_base_b with "
    '{{"compare_keys": true}}, which brings Base B up to date'
)
MARIADB_GTID = re.compile(r"\d+-\d+-\d+")  # domain-server-sequence


class PositionFile:
    """The last binlog position whose events the broker holds, written atomically."""

    def __init__(self, path: Path):
        self.path = path
        self.current: dict | None = None  # the position this process last loaded or saved: its own
        self._lock: int | None = None  # the descriptor holding the lock

    def load(self) -> dict | None:
        """The saved position, or None when there is none (no file, or `null`). A file that is no
        position (truncated, not JSON, not an object) is PositionUnusable: a guess would replay or skip."""
        try:
            position = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:  # ValueError: JSONDecodeError, UnicodeDecodeError
            raise self.unusable(f"cannot be read as a position ({one_line(error)})") from None
        if position is not None and not isinstance(position, dict):
            raise self.unusable(f"holds {type(position).__name__}, not a position object")
        self.current = position
        return position

    def unusable(self, problem: str) -> PositionUnusable:
        """The refusal of this file, with what to do: restore the file, or start afresh and compare."""
        return PositionUnusable(
            f"the relay's position file {self.path} {problem}: restore it from its backup, or "
            + RESTART_ADVICE.format(path=self.path)
        )

    def save(self, position: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A scratch file of this write alone: under one shared name, another writer's rename took it
        # away between this one's write and rename (FileNotFoundError).
        handle, scratch = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as file:
                os.fchmod(file.fileno(), 0o644)  # as readable as the file it replaces (mkstemp makes 0600)
                file.write(json.dumps(position))
                # On disk before the rename: after a power loss the file is the old position or the
                # new one, never empty (the rename alone may reach the disk before the data).
                file.flush()
                os.fsync(file.fileno())
            os.replace(scratch, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
            raise
        self.current = position

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def lock(self) -> None:
        """Hold the file for this process's lifetime (an flock on a sibling lock file, released when
        the process ends however it ends): a second relay on the same file is refused at start, not
        left to overwrite this one's position with its own. Held already: nothing to do."""
        if self._lock is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise PositionUnusable(
                f"the relay cannot create the lock file {self.lock_path} beside its position file "
                f"({one_line(error)}): make {self.path.parent} writable by the relay"
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 200, 0).decode("utf-8", "replace").strip() or "pid unknown"
            os.close(handle)
            raise PositionHeld(
                f"another relay ({holder}) holds the relay's position file {self.path} (locked through "
                f"{self.lock_path}): two relays on one file overwrite each other's position. Stop the other "
                "relay first (a blue/green switch: stop the old one, then start the new), or give each relay "
                "its own RELAY_POSITION_FILE and RELAY_SERVER_ID"
            ) from None
        os.ftruncate(handle, 0)  # who holds it, for the refusal of the next one
        os.pwrite(handle, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._lock = handle
        self._remove_scratch_files()

    def _remove_scratch_files(self) -> None:
        """Remove the scratch files of saves that never reached their rename (a kill -9 between mkstemp
        and os.replace): found in review, a relay in a crash loop piled them up. Only with the lock
        held, taken before this process saves anything: no other writer of this file can exist."""
        # Only the shape mkstemp gives this file's saves (".position.json.XXXXXXXX.tmp"): another
        # position file's name may start with this one's, and its relay may be saving now.
        shape = re.compile(rf"\.{re.escape(self.path.name)}\.[A-Za-z0-9_]{{8}}\.tmp")
        for scratch in self.path.parent.glob(f".{glob.escape(self.path.name)}.*.tmp"):
            if not shape.fullmatch(scratch.name):
                continue
            with contextlib.suppress(OSError):  # a leftover that stays takes nothing from the position
                scratch.unlink()

    def unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # the lock file stays: removing it would let two relays lock two files
            self._lock = None


def position_problem(position: dict, is_mariadb: bool) -> str | None:
    """What makes a saved position unusable on this server, or None. MariaDB resumes from `gtid`
    (without one it would read the binlog from its first file: history published again); MySQL from
    `log_file` and `log_pos` (without them, from Base A's current position: changes skipped)."""
    gtid, log_file, log_pos = position.get("gtid"), position.get("log_file"), position.get("log_pos")
    if log_file is not None and not isinstance(log_file, str):
        return f"has a log_file that is no file name ({log_file!r})"
    if log_pos is not None and (not isinstance(log_pos, int) or isinstance(log_pos, bool)):
        return f"has a log_pos that is no offset ({log_pos!r})"
    if is_mariadb:
        if not isinstance(gtid, str):
            return "holds no gtid, which MariaDB resumes from (the relay would read the binlog from its beginning)"
        malformed = [part for part in gtid.split(",") if part.strip() and not MARIADB_GTID.fullmatch(part.strip())]
        if malformed:
            return f"has a malformed gtid {gtid!r} (each part is domain-server-sequence, e.g. 0-1-107)"
    elif not log_file or log_pos is None:
        return "holds no log_file and log_pos, which MySQL resumes from"
    return None


def same_point(saved: str, found: str) -> bool:
    """Whether two MariaDB GTID positions are one point of one history: every domain both name is at
    the same GTID, and they name one in common (a domain deleted since is no evidence either way)."""
    ours, theirs = gtid_domains(saved), gtid_domains(found)
    shared = ours.keys() & theirs.keys()
    if ours and not shared:
        return False
    return all(ours[domain] == theirs[domain] for domain in shared)


def gtid_domains(position: str | None) -> dict[int, str]:
    """A MariaDB GTID position (`0-1-107,1-1-1`: the last GTID of each replication domain) by domain."""
    domains = {}
    for gtid in (position or "").split(","):
        if gtid.strip():
            domains[int(gtid.strip().split("-", 1)[0])] = gtid.strip()
    return domains


def gtid_position(domains: dict[int, str]) -> str:
    """The position's text, by domain as @@gtid_binlog_pos shows it."""
    return ",".join(domains[domain] for domain in sorted(domains))


class Progress:
    """How far the binlog has been read: the position after the last whole transaction.

    On MariaDB the GTID of every replication domain, as @@gtid_binlog_pos shows it: a position
    naming only the last transaction's GTID would have a restart read the other domains from the
    start of the binlogs (repeating them, or failing with 1236 once those are purged). On MySQL
    the file and offset (the GTID is kept for the record)."""

    def __init__(self, start: dict, is_mariadb: bool):
        self.is_mariadb = is_mariadb
        self.domains = gtid_domains(start.get("gtid")) if is_mariadb else {}
        self.gtid = start.get("gtid")
        self.done = dict(start)  # the position after the last whole transaction

    def begin(self, event) -> None:
        """A transaction's GTID event: its GTID joins the position once the transaction is whole."""
        if self.is_mariadb:  # a MariadbGtidEvent
            self.domains[event.domain_id] = event.gtid
        else:
            self.gtid = event.gtid

    def rewind(self) -> None:
        """Back to the last whole transaction (a transaction read in part is read again)."""
        self.domains = gtid_domains(self.done.get("gtid")) if self.is_mariadb else {}
        self.gtid = self.done.get("gtid")

    def whole(self, log_file: str | None, log_pos: int | None) -> dict:
        """The transaction begun last ended at this file and offset: the position after it."""
        gtid = gtid_position(self.domains) if self.is_mariadb else self.gtid
        self.done = {"gtid": gtid, "log_file": log_file, "log_pos": log_pos}
        return self.done


class Deliveries:
    """Counts the unacknowledged events of each transaction; yields the position all before it are safe at."""

    def __init__(self):
        self.lock = threading.Lock()
        self.transactions: deque[list] = deque()  # [outstanding events, position when it ended or None]
        self.failed: list = []

    def begin(self) -> list:
        entry = [0, None]
        with self.lock:
            self.transactions.append(entry)
        return entry

    def sent(self, entry: list) -> Callable[[object, object], None]:
        with self.lock:
            entry[0] += 1

        def acknowledged(error, _message):
            with self.lock:
                entry[0] -= 1
                if error is not None:
                    self.failed.append(error)
                    DELIVERY_ERRORS.inc()

        return acknowledged

    def withdraw(self, entry: list) -> None:
        """An event counted by `sent` that the producer refused: it will never be acknowledged."""
        with self.lock:
            entry[0] -= 1

    def end(self, entry: list, position: dict) -> None:
        with self.lock:
            entry[1] = position

    def safe_position(self) -> dict | None:
        """The position of the last transaction whose events, and every earlier one's, were acknowledged."""
        safe = None
        with self.lock:
            if self.failed:
                return None
            while self.transactions and _finished(self.transactions[0]):
                safe = self.transactions.popleft()[1]
            # Behind a transaction held open (a prepared XA awaiting its outcome) only the last of each
            # run of finished ones matters: the queue stays short however long XAs stay pending.
            compacted: deque[list] = deque()
            for entry in self.transactions:
                if compacted and _finished(entry) and _finished(compacted[-1]):
                    compacted[-1] = entry
                else:
                    compacted.append(entry)
            self.transactions = compacted
            PENDING.set(sum(t[0] for t in self.transactions))
        return safe


def _finished(entry: list) -> bool:
    """A Deliveries entry whose transaction ended and whose every event was acknowledged."""
    return entry[1] is not None and entry[0] == 0


class Relay:
    def __init__(self, settings: RelaySettings):
        self.settings = settings
        self.url = make_url(settings.base_a_url)
        self.positions = PositionFile(settings.position_file)
        self.deliveries = Deliveries()
        self.producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "enable.idempotence": True,
                "linger.ms": 2,
                "message.max.bytes": settings.message_max_bytes,
            }
        )
        self.topics = Topics(settings.topic_prefix, self.url.database or "", SourceMapping.from_settings())
        self.tables = self.topics.tables  # {source table: entity}: the only tables published
        self.writers: dict[tuple, EnvelopeWriter] = {}
        self.last_writer: dict[str, EnvelopeWriter] = {}  # {table: its writer of the last row event}
        self.folded = {table.lower(): table for table in self.tables}  # names in statements, any case
        self.names = ServerNames()  # how the server compares table names: read at start (`_server`)
        kinds = (
            *(statements.DML, statements.RENAME, renames.SWAP, statements.DROP, statements.PARTITION),
            statements.COLUMN_DROP,
            *(TOO_LARGE, CASCADE, KEY_TYPE, KEY_MISSING),
        )
        for table in self.tables:  # every series from 0, so the first statement is an increase (the alert)
            for kind in kinds:
                UNPUBLISHED.labels(table, kind)
            SWAPS.labels(table)
        self.nullable: dict[int, tuple[bool, ...]] = {}  # {binlog table id: each column takes NULL}
        # {(table, its binlog column names): Versioned, or None when not system-versioned}
        self.versioned: dict[tuple[str, tuple], Versioned | None] = {}
        self.reach = reach.Reach(
            self._schema_objects, lambda schema, name: self._mapped((schema, name), schema), self.tables
        )
        self.cascades: dict[tuple[str, str], list[cascades.Cascade]] = {}  # {(parent schema, table): its FKs}
        # {table: why its key is refused at its last row event (a type, no integer; or no such column)}
        self.key_refused: dict[str, str] = {}
        self.restream = False  # the stream's tables changed: open it again after the current group
        self.stopping = threading.Event()
        self.failure: str | None = None  # why the relay stops on its own (`failed`): it exits non-zero
        self.refusal: str | None = None  # why the position cannot be resumed from, for /health
        self.streaming = False
        self.is_mariadb = False
        self.warnings = Warnings()
        self.progress = Progress({}, False)
        self.transaction: list | None = None  # the Deliveries entry of the transaction being read
        self.preparing: xa.Prepared | None = None  # the changes of the prepared XA being read
        self.statement_ends_group = False  # the group being read is one statement with no XID event
        self.prepared: dict[xa.Xid, xa.Prepared] = {}  # prepared XAs whose outcome is not read yet
        self.outage_since: float | None = None  # monotonic time Base A stopped answering
        self.lost_at: float | None = None  # monotonic time the replication connection was lost, until it is back
        self.connected_at: float | None = None  # of the replication connection
        self._stream_connected = False

    # Start-up

    @contextlib.contextmanager
    def _sql(self) -> Iterator[Connection]:
        """A connection for one of the relay's few SQL reads (settings, catalogue), closed with its engine."""
        url = self.url.set(drivername="mysql+mysqldb")
        engine = create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT})
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()

    def _server(self) -> dict:
        with self._sql() as conn:
            version = conn.execute(text("SELECT VERSION()")).scalar_one()
            settings = dict(
                conn.execute(text("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata"))
                .one()
                ._mapping
            )
            self.names = ServerNames.of(conn)
            self.is_mariadb = "mariadb" in version.lower()
            if self.is_mariadb:
                settings["gtid"] = conn.execute(text("SELECT @@gtid_binlog_pos")).scalar_one()
            else:
                # MySQL 8.4 renamed it; earlier versions know only the old name.
                try:
                    status = conn.execute(text("SHOW BINARY LOG STATUS")).one()
                except DBAPIError:
                    status = conn.execute(text("SHOW MASTER STATUS")).one()
                settings["log_file"], settings["log_pos"] = status[0], status[1]
        problems = [
            f"{name} is {settings[key]!r}, needs {wanted}"
            for key, name, wanted in (
                ("@@log_bin", "log_bin", "ON (1)"),
                ("@@binlog_format", "binlog_format", "ROW"),
                ("@@binlog_row_image", "binlog_row_image", "FULL"),
                ("@@binlog_row_metadata", "binlog_row_metadata", "FULL"),
            )
            if str(settings[key]).upper() not in ("1", "ON", "ROW", "FULL")
        ]
        if problems:
            raise SystemExit("Base A's binlog cannot feed the relay: " + "; ".join(problems))
        return settings

    def _hidden_triggers(self) -> dict:
        """Warn when the account cannot see the triggers of mapped tables (no TRIGGER privilege: the
        catalogue lists none to it): a statement-logged DML reaching a mapped table through a trigger
        or a stored function then goes uncounted (`reach`), as it cannot be told from one that does not."""
        with self._sql() as conn:
            backend = backend_of(conn.engine)
            hidden = [table for table in self.tables if not backend.sees_triggers_on(conn, table)]
        if hidden:
            log.warning(
                "this account cannot see the triggers (nor most stored functions) of %s (no TRIGGER privilege): a "
                "statement-logged change reaching a mapped table through one is not counted in "
                "relay_unpublished_statements_total; grant TRIGGER on the database, or keep every session at "
                "binlog_format=ROW",
                ", ".join(sorted(hidden)),
            )
        return {}

    def _views(self) -> dict:
        """Warn of each mapped table that is a view: the binlog never names it (its rows' changes are
        the base tables'), so the relay publishes nothing of it, and says so once at start."""
        if not self.tables:
            return {}
        with self._sql() as conn:
            views = sorted(backend_of(conn.engine).views(conn, list(self.tables)))
        for table in self.tables:
            VIEWS.labels(table).set(table in views)
        for view in views:
            log.warning(
                "MAPPED TABLE %s IS A VIEW: the binlog names the tables under it, never the view, so the relay "
                "publishes NONE of its changes; the batch sync alone carries them (map the base table to have "
                "the events path carry them)",
                view,
            )
        return {}

    def _keys_not_unique(self) -> dict:
        """Warn of each mapped table whose key column no PRIMARY KEY or UNIQUE index holds alone (a
        composite key (id, tenant), a partitioned table's (id, created_date)): the relay keys its
        events by that column alone, so the drain cannot tell two rows sharing it from one row
        (`shared_keys`: a Debezium connector's message key, the whole primary key, lets it). The
        batch quarantines such rows; a view is warned of by `_views`. A table whose mapping says
        `key_unique: true` (the key names one row, whatever its indexes) is not."""
        asked = [t for t, entity in self.tables.items() if not self.topics.view(entity).spec.key_unique]
        if not asked:
            return {}
        with self._sql() as conn:
            backend = backend_of(conn.engine)
            views = backend.views(conn, asked)
            unique = backend.unique_columns(conn, [t for t in asked if t not in views])
        for table, columns in sorted(unique.items()):
            key = self.topics.view(self.tables[table]).spec.key
            if key not in columns:
                log.warning(
                    "the key %s of the mapped %s is not unique alone (no PRIMARY KEY or UNIQUE index on it alone): "
                    "its events are keyed by %s alone, so the drain cannot tell two rows sharing a key apart and "
                    "applies both to one row of Base B. Map a column that names one row as `key`, or a view giving "
                    "each row a single key (docs/mapping.md, `key`); the batch sync quarantines rows sharing a key",
                    key,
                    table,
                    key,
                )
        return {}

    def _cascading_keys(self) -> dict:
        """Warn of each foreign key whose cascade changes a mapped table's rows with no row event, and
        follow its parent table's row events (`_cascaded`)."""
        if not self.tables:
            return {}
        with self._sql() as conn:
            backend = backend_of(conn.engine)
            keys = backend.cascading_keys(conn, list(self.tables))
        keys = cascades.acting_on_mapped(keys, self.topics.mapping, backend, self.tables)
        known = {cascade for found in self.cascades.values() for cascade in found}
        self.cascades = {}
        for cascade in (cascades.Cascade.of_key(key, self.url.database or "") for key in keys):
            parent = (self.names.key(cascade.parent_schema), self.names.key(cascade.parent))
            self.cascades.setdefault(parent, []).append(cascade)
            if cascade in known:  # warned of already
                continue
            log.warning(
                "FOREIGN KEY %s CHANGES ROWS OF THE MAPPED %s INSIDE InnoDB: the binlog holds the parent's row "
                "events only, so the rows it deletes or updates in %s are NOT PUBLISHED; each such parent change "
                "is counted (relay_unpublished_statements_total, kind cascade): run the batch sync with "
                "compare_keys for the deletes, with full_refresh for rows it updates (their updated_at stays)",
                cascade.describe(),
                cascade.child,
                cascade.child,
            )
        for table in self.tables:
            CASCADING_KEYS.labels(table).set(
                sum(cascade.child == table for found in self.cascades.values() for cascade in found)
            )
        return {}

    def _recheck_cascading_keys(self) -> None:
        """A statement may have added or dropped a foreign key: read them again, and when the parent
        tables changed, read the binlog from the next group on with the new set (`_follow`)."""
        parents = set(self.cascades)
        self._cascading_keys()
        if set(self.cascades) != parents:
            self.restream = True

    def _cascaded(self, event) -> None:
        """Count a parent row's delete, or update of a referenced column, that a foreign key may have
        cascaded into a mapped table."""
        for cascade in self.cascades.get((self.names.key(event.schema), self.names.key(event.table)), []):
            try:
                changed = cascade.changed_rows(event)
            except Exception as error:  # rows the decoder cannot read: they may have cascaded
                if transient(error):
                    raise
                changed = 1
            if changed:
                UNPUBLISHED.labels(cascade.child, CASCADE).inc(changed)
                self.warnings.warn(
                    ("unpublished", cascade.child, CASCADE),
                    "ROWS OF %s CHANGED BY A FOREIGN KEY CASCADE, NOT PUBLISHED: %d row(s) of %s deleted or their key "
                    "updated, cascading through %s; the binlog holds no row events for the rows of %s it changed. "
                    "Run the batch sync with compare_keys (deletes), with full_refresh (updated rows keep their "
                    "updated_at)",
                    cascade.child,
                    changed,
                    cascade.parent,
                    cascade.describe(),
                    cascade.child,
                )

    def _stream(self, position: dict) -> BinLogStreamReader:
        self._stream_connected, self.connected_at = False, None
        where = {}
        if self.is_mariadb:
            where = {"auto_position": position["gtid"]} if position.get("gtid") else {}
        elif position.get("log_file"):
            where = {"log_file": position["log_file"], "log_pos": position["log_pos"]}
        return BinLogStreamReader(
            connection_settings={
                "host": self.url.host or "127.0.0.1",
                "port": self.url.port or 3306,
                "user": self.url.username or "root",
                # Bytes: PyMySQL encodes a str password latin-1 (UnicodeEncodeError for €, a wrong
                # password for ä); bytes it sends as they are, UTF-8, as the server stored them.
                "passwd": (self.url.password or "").encode(),
                "connect_timeout": CONNECT_TIMEOUT,
                # A connection silently gone (no RST) fails a read after this long: the server sends a
                # heartbeat every second (slave_heartbeat) when it has nothing else to send.
                "read_timeout": READ_TIMEOUT,
            },
            pymysql_wrapper=self._connect,
            server_id=self.settings.server_id,
            blocking=True,
            resume_stream=True,
            is_mariadb=self.is_mariadb,
            # The parents of cascading foreign keys too: their deletes and key updates are counted.
            only_schemas=self.names.watched([self.url.database, *(schema for schema, _ in self.cascades)])
            if self.url.database
            else None,
            only_tables=self.names.watched([*self.tables, *(table for _, table in self.cascades)]),
            only_events=[
                *(WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, TableMapEvent),
                *(XidEvent, MariadbGtidEvent, GtidEvent, QueryEvent, XAPrepareEvent),
            ],
            slave_heartbeat=1.0,
            **where,
        )

    # The loop

    def _start_position(self, server: dict, saved: dict | None) -> dict:
        """The saved position, checked against Base A; or (none saved) Base A's current one (`server`'s), saved."""
        if saved is not None:
            if (problem := position_problem(saved, self.is_mariadb)) is not None:
                raise self.positions.unusable(problem)
            self._reconnecting(lambda: self._same_history(saved))
            log.info("resuming after %s", saved)
            return saved
        position = {"gtid": server.get("gtid"), "log_file": server.get("log_file"), "log_pos": server.get("log_pos")}
        log.warning(
            "no saved position (%s is missing or null): starting at Base A's current one, %s. If this relay ran "
            "before, the changes Base A made while none ran are NOT PUBLISHED: the batch sync carries them (run "
            'base_a_to_base_b with {"compare_keys": true} for the deletes)',
            self.positions.path,
            position,
        )
        self.positions.save(position)
        return position

    def _same_history(self, position: dict) -> dict:
        """Refuse a MariaDB position whose binlog file Base A still has but whose offset is not where
        that file holds the position's GTIDs: Base A's binlog is another history (it failed over to, or
        was restored onto, a server reusing the GTIDs), and resuming by GTID would skip its changes up
        to there without a word. A file Base A no longer has proves nothing (GTID resume may work from
        a later one); MySQL has no BINLOG_GTID_POS and resumes by file and offset (not checked)."""
        if not self.is_mariadb or not position.get("log_file") or position.get("log_pos") is None:
            return {}
        with self._sql() as conn:
            at_offset, at_file_start = conn.execute(
                text("SELECT BINLOG_GTID_POS(:file, :pos), BINLOG_GTID_POS(:file, 4)"),
                {"file": position["log_file"], "pos": position["log_pos"]},
            ).one()
        if at_file_start is None:  # no such file (purged): GTID resume decides
            return {}
        if at_offset is not None and same_point(position["gtid"], at_offset):
            return {}
        found = "no event's start" if at_offset is None else f"after GTID position {at_offset!r}"
        raise PositionUnusable(
            f"Base A's binlog no longer matches the relay's position {position} (in Base A's "
            f"{position['log_file']} that offset is {found}): Base A is another server now (a failover, a restore) "
            "whose binlog reuses these GTIDs for other transactions, so resuming by GTID would skip, unpublished and "
            "without a word, the changes its binlog holds up to there. To recover, "
            f"{RESTART_ADVICE.format(path=self.positions.path)} (if the new server is a replica that applied the "
            "same transactions, remove log_file and log_pos from the file instead: the relay then resumes by GTID)"
        )

    def run(self) -> None:
        """Follow Base A until stopped, holding the position file's lock throughout."""
        self.positions.lock()  # before anything is read or written: a second relay on the file is refused
        try:
            self._run()
        except PositionUnusable as error:
            self.refusal = str(error)  # /health says why while the relay exits
            raise
        finally:
            self.positions.unlock()

    def _run(self) -> None:
        saved = self.positions.load()  # an unusable file is refused before Base A is asked anything
        # The binlog settings are checked on every start, and again on every reconnection.
        position = self._start_position(self._reconnecting(self._server), saved)
        self._reconnecting(self._views)
        self._reconnecting(self._keys_not_unique)
        self._reconnecting(self._cascading_keys)
        self._reconnecting(self._hidden_triggers)
        events = EventSettings()  # EVENTS_DLQ_TOPIC, EVENTS_DLQ_RETENTION_MS
        ensure_topics(
            {"bootstrap.servers": self.settings.kafka_bootstrap},
            [*self.topics.names, events.dlq_topic],
            self.settings.partitions,
            dead_letter_configs(events),
        )
        LAST_SAVED.set(time.time())  # "no position saved since" counts from the start (RelayEventsNotAcknowledged)
        saver = self.essential_thread("deliveries", self._serve_deliveries)
        saver.start()
        self.progress = Progress(position, self.is_mariadb)
        try:
            while not self.stopping.is_set():
                try:
                    self._follow()
                except Exception as error:
                    if not transient(error):
                        raise
                    self._lost(error)
                    self._reconnecting(self._server)
                    # Base A may have come back as another server (a failover) with another history.
                    self._reconnecting(lambda: self._same_history(self.progress.done))
        finally:
            self.streaming = False
            self.stopping.set()
            saver.join(10)
            self.producer.flush(30)
            self._save_on_the_way_out()

    def _follow(self) -> None:
        """Read the binlog from the last whole transaction on, until stopped or the connection is lost."""
        self.restream = False
        stream = self._stream(self.progress.done)
        self.streaming = True
        try:
            for event in stream:
                if self.stopping.is_set():
                    break
                self.outage_since = None  # Base A answers
                self._handle(event, stream)
                if self.deliveries.failed:
                    raise RuntimeError(f"the broker refused events: {self.deliveries.failed[:3]}")
                if self.restream and self.transaction is None:  # the tables it filters on changed
                    log.info("following the parent tables of cascading foreign keys from %s on", self.progress.done)
                    break
        finally:
            self.streaming = False
            stream.close()

    def _handle(self, event, stream: BinLogStreamReader) -> None:
        if isinstance(event, MariadbGtidEvent | GtidEvent):
            if self.transaction is not None:  # a group whose end the relay did not see: it ended where this begins
                start = event.packet.log_pos - event.packet.event_size
                self.deliveries.end(self.transaction, self.progress.whole(stream.log_file, start))
            self.progress.begin(event)
            self.transaction = self.deliveries.begin()
            self.preparing = xa.Prepared() if xa.opens_prepared_group(event) else None
            # MariaDB flags a group of one statement (DDL, XA COMMIT); a MySQL group opens with BEGIN if not.
            self.statement_ends_group = bool(event.flags & FL_STANDALONE) if self.is_mariadb else True
        elif isinstance(event, XAPrepareEvent):
            self._xa_prepared(event, stream)
        elif isinstance(event, XidEvent):
            TRANSACTIONS.inc()
            if self.transaction is not None:
                self.deliveries.end(self.transaction, self.progress.whole(stream.log_file, stream.log_pos))
            self.transaction = None
        elif isinstance(event, TableMapEvent):
            # Precedes the table's row events in each transaction: its columns as they were then.
            self.nullable[event.table_id] = null_flags(event.null_bitmask, event.column_count)
        elif isinstance(event, QueryEvent):
            self._query(event, stream)
        else:
            if self.transaction is None:  # a row event outside a GTID'd transaction: track it alone
                self.transaction = self.deliveries.begin()
            self._publish(event, self.transaction, stream)

    def _query(self, event, stream: BinLogStreamReader) -> None:
        """A statement: the opening or outcome of an XA, a transaction's BEGIN or COMMIT, or one
        read for its effects on mapped tables (`_statement`). A group without an XID event (DDL, XA
        COMMIT, a non-transactional table's COMMIT) ends with its statement, not at the next GTID: else
        the saved position stayed one group behind, and a restart published that group again."""
        query = event.query.strip()
        keyword = query.split(None, 1)[0].upper() if query else ""
        # A group's end: COMMIT, or ROLLBACK (non-transactional changes of a rolled-back transaction),
        # not a ROLLBACK TO a savepoint inside it.
        ends_group = keyword == "COMMIT" or query.strip().upper() == "ROLLBACK"
        if keyword == "BEGIN":
            self.statement_ends_group = False
            return
        if xa.starts_xa(query):  # MySQL's opening of an XA's rows
            self.preparing, self.statement_ends_group = xa.Prepared(), False
            return
        if (resolved := xa.outcome(query)) is not None:
            self._xa_outcome(*resolved, event, stream)
        elif not ends_group:
            try:
                self._statement(event, stream)
            except Exception:  # the relay's reading of SQL text must never stop the stream
                log.exception("could not read the statement %s", statements.excerpt(event.query))
        if self.transaction is not None and (self.statement_ends_group or ends_group):
            self.deliveries.end(self.transaction, self.progress.whole(stream.log_file, stream.log_pos))
            self.transaction = None

    def _xa_prepared(self, event, stream: BinLogStreamReader) -> None:
        """The end of an XA's rows: published now when committed in one phase (MySQL), else held
        until its outcome, with its group's position (`Prepared`)."""
        preparing, self.preparing = self.preparing or xa.Prepared(), None
        if self.transaction is None:
            self.transaction = self.deliveries.begin()
        if event.one_phase:
            self._release(preparing, event, stream)
        else:
            # Only an XA that changed mapped rows holds the position until its outcome: one of other
            # tables, or left prepared for good by a crashed application server, would keep the relay
            # from saving its position ever again.
            if preparing.changes:
                preparing.release = self.deliveries.sent(self.transaction)  # acknowledged at the outcome
            self.prepared[xa.prepared_xid(event)] = preparing
            log.info(
                "XA %s prepared: its %d change(s) are published at its XA COMMIT, dropped at its XA ROLLBACK",
                xa.readable(xa.prepared_xid(event)),
                len(preparing.changes),
            )
        self.deliveries.end(self.transaction, self.progress.whole(stream.log_file, stream.log_pos))
        self.transaction = None

    def _xa_outcome(self, committed: bool, xid: xa.Xid, event, stream: BinLogStreamReader) -> None:
        prepared = self.prepared.pop(xid, None)
        if prepared is None:
            if committed:  # a rollback of it loses nothing
                log.warning(
                    "XA %s committed, but the relay did not read its XA PREPARE (prepared before the relay's "
                    "first position): its changes are not published; run the batch sync if it changed mapped tables",
                    xa.readable(xid),
                )
            return
        if committed:
            if self.transaction is None:
                self.transaction = self.deliveries.begin()
            self._release(prepared, event, stream)
        log.info("XA %s %s", xa.readable(xid), "committed: published" if committed else "rolled back: dropped")
        if prepared.release is not None:
            prepared.release(None, None)

    def _release(self, prepared: xa.Prepared, event, stream: BinLogStreamReader) -> None:
        """Publish a prepared XA's changes, in order, as of the event that commits them."""
        source, now = _source(event, stream), now_ms()
        for index, held in enumerate(prepared.changes):
            row_source = {**source, "row": index}
            value = self._envelope(held.writer, held.change, row_source, now)
            self._send(held.entity, held.topic, held.change, value, self.transaction, row_source)

    def _lost(self, error: Exception) -> None:
        """The replication connection dropped: the next one starts after the last whole transaction.
        A transaction read in part is read again whole (its events already produced are repeated,
        which the version guard makes harmless); its entry ends at the position before it."""
        if self.transaction is not None:
            self.deliveries.end(self.transaction, self.progress.done)
            self.transaction = None
        self.preparing = None  # its group is read again whole
        self.progress.rewind()
        if self.outage_since is None or (self.connected_at and time.monotonic() - self.connected_at > 5):
            self.outage_since = time.monotonic()  # a new outage, not the same one flapping
        RECONNECTS.inc()
        self.lost_at = self.lost_at or time.monotonic()
        log.warning(
            "the replication connection to Base A was lost (%s): resuming after %s", one_line(error), self.progress.done
        )

    def _reconnecting(self, attempt: Callable[[], dict]) -> dict:
        """attempt() until Base A answers: a connection refused or lost is retried with back-off
        (0.5 s doubling to 10 s), each retry logged, for RELAY_RECONNECT_SECONDS from the start of
        the outage; then BaseAUnreachable. Any other error is raised at once."""
        delay = 0.5
        while True:
            try:
                return attempt()
            except Exception as error:
                if not transient(error):
                    raise
                now = time.monotonic()
                if self.outage_since is None:
                    self.outage_since = now
                waited = now - self.outage_since
                # The account's connection cap: Base A answers, but refuses until a task closes one
                capped = f": {MySQLBaseA.CONNECTION_CAP}" if connection_cap(error) else ""
                if waited + delay > self.settings.reconnect_seconds:
                    limit = self.settings.reconnect_seconds
                    why = f"unreachable for {waited:.0f} s (RELAY_RECONNECT_SECONDS={limit:g}), giving up"
                    raise BaseAUnreachable(f"{why}: {one_line(error)}{capped}") from None
                log.warning(
                    "Base A is unreachable (%s%s): retrying in %.1f s (for up to %g s in all)",
                    one_line(error),
                    capped,
                    delay,
                    self.settings.reconnect_seconds,
                )
                if self.stopping.wait(delay):
                    raise KeyboardInterrupt from None
                delay = min(delay * 2, 10.0)

    def _connect(self, **settings):
        """pymysql.connect for mysql-replication. After a lost connection the library reconnects by
        itself, from the position the stream started at (it never moves forward for MariaDB): the
        stream's second connection raises StreamLost instead, and the relay resumes from its own."""
        if settings.get("db") == "information_schema":  # the library's control connection
            return pymysql.connect(**settings)
        if self._stream_connected:
            raise StreamLost("reset, killed or timed out")
        connection = pymysql.connect(**settings)
        self._stream_connected, self.connected_at = True, time.monotonic()
        if self.lost_at is not None:  # said, or the log ends at the loss and its retries
            log.warning(
                "the replication connection to Base A is back, %.0f s after it was lost: reading after %s",
                self.connected_at - self.lost_at,
                self.progress.done,
            )
            self.lost_at = None
        return connection

    def _writer(self, event, table: str, hidden: frozenset[str] = frozenset()) -> EnvelopeWriter:
        """The writer of the mapped `table` (its events name it so, as the topic does, in the case the
        mapping writes) for the columns the binlog describes now (a new one after an ALTER), but
        `hidden` (a system-versioned table's invisible ones). Columns the binlog does not name
        (binlog_row_metadata not FULL) are named by position, as the binlog decoder names their
        values (UNKNOWN_COL0, ...)."""
        nullable = self.nullable.get(event.table_id, ())
        signature = (table, *(repr(sorted(c.data.items())) for c in event.columns), nullable, hidden)
        writer = self.writers.get(signature)
        if writer is None:
            columns = [
                binlog_column(c, nullable[i] if i < len(nullable) else None, f"UNKNOWN_COL{i}")
                for i, c in enumerate(event.columns)
                if c.name not in hidden
            ]
            writer = EnvelopeWriter(
                table, columns, self.settings.topic_prefix, self.url.database or "", self.settings.with_schema
            )
            self.writers[signature] = writer
        self.last_writer[table] = writer
        return writer

    def _publish(self, event, transaction: list, stream: BinLogStreamReader) -> None:
        if self.cascades:
            self._cascaded(event)
        table = self._published_table(event.schema, event.table)
        if table is None:
            return  # a table the mapping does not name
        entity = self.tables[table]
        key_column = self.topics.view(entity).spec.key
        if self._key_refused(event, table, entity, key_column):
            return  # warned of and counted: no key the drain could apply
        topic = self.topics.topic(entity)
        source = _source(event, stream)
        now_ms = int(time.time() * 1000)
        LAST_EVENT.set(event.timestamp)
        op = row_op(event)
        versioned = self._versioned(event)  # a catalogue read: Base A away is retried, never an unreadable row
        try:
            rows = event.rows
            writer = self._writer(event, table, versioned.hidden if versioned else frozenset())
        except Exception as error:  # the binlog decoder failed on the event: one incomplete change for it all
            if transient(error):  # Base A went away converting its text (`rows._convert`): resume
                raise
            change = unreadable(op, table, error)
            bare = self._bare_writer(table)
            value = self._envelope(bare, change, {**source, "row": 0}, now_ms)
            self._emit(xa.HeldChange(entity, topic, change, bare), value, transaction, {**source, "row": 0})
            return
        for index, row in enumerate(rows):
            row_source = {**source, "row": index}
            if versioned is not None and versioned.history(op, row):
                HISTORY.labels(table).inc()
                log.debug("a history row of the system-versioned %s (%s): not published", table, op)
                continue
            try:
                changes = row_changes(event, row, key_column)
                if versioned is not None:
                    changes = [versioned.current(change) for change in changes]
                values = [self._envelope(writer, change, row_source, now_ms) for change in changes]
                used = writer
            except Exception as error:  # a value the relay cannot read or encode: that row alone, with the reason
                changes, used = [unreadable(op, table, error)], self._bare_writer(table)
                values = [self._envelope(used, changes[0], row_source, now_ms)]
            for change, value in zip(changes, values, strict=True):
                self._emit(xa.HeldChange(entity, topic, change, used), value, transaction, row_source)

    def _key_refused(self, event, table: str, entity: str, key_column: str) -> bool:
        """Whether the row event is of a mapped table whose key column is of no integer type (VARCHAR,
        DECIMAL, BINARY, BIT, YEAR...) by the binlog's own table map at this event, as the batch path
        (`mapping.check`, `base-a check`) and the drain (`debezium._check_key_type`, by the event's
        schema) rule: every batch task of it fails, and the drain would dead-letter each event. Such an
        event is not published, and counted (`relay_unpublished_statements_total{kind="key_type"}`);
        one warning line when a table's key turns to such a type, one when it is an integer again (an
        ALTER). The table map is the table as it was at the event: information_schema, read now, may
        already be past an ALTER the relay has not reached. A table map without column names is left
        to the row's reading (`rows.row_changes`: an incomplete change, binlog_row_metadata); one that
        names no key column is `_key_missing`."""
        column = next((c for c in event.columns if c.name == key_column), None)
        if column is None:
            return self._key_missing(event, table, entity, key_column)
        if integer_column(column):
            refused = self.key_refused.pop(table, None)
            if refused is not None and refused.startswith("no such column"):
                log.warning("the mapped %s has its key column %s again: its changes are published", table, key_column)
            elif refused is not None:
                log.warning("the key of the mapped %s is an integer type now: its changes are published", table)
            return False
        found = binlog_type(column)
        if self.key_refused.get(table) != found:
            self.key_refused[table] = found
            problem = Problem(entity, table, key_column, KEY_EXPECTED, f"{found} by the binlog's table map")
            log.warning(
                "MAPPED TABLE %s IS NOT PUBLISHED, its key is no integer: %s. Mapping keys must be integer "
                "columns: `base-a check` refuses it and every batch task of it fails",
                table,
                problem,
            )
        UNPUBLISHED.labels(table, KEY_TYPE).inc()
        return True

    def _key_missing(self, event, table: str, entity: str, key_column: str) -> bool:
        """Whether the row event is of a mapped table whose table map names no column the mapping's
        key (renamed or dropped by Base A's owners): its rows' keys are unknown, so no change of it is
        published; counted (`kind="key_missing"`), one warning line when it starts. The batch refuses
        the entity at the same time (`SchemaDriftError`): nothing carries the rows until the mapping's
        `key` names the column again, when the batch's first run re-reads every row. Read as a row
        change, each was an incomplete change saying `KeyError` and, falsely, that the batch carries it."""
        names = [c.name for c in event.columns]
        if None in names:
            return False  # no column names at all: `rows.row_changes` says so (binlog_row_metadata)
        spelled = [name for name in names if name.lower() == key_column.lower()]
        found = f"no such column (the table spells it {spelled[0]!r}: write that)" if spelled else "no such column"
        if self.key_refused.get(table) != found:
            self.key_refused[table] = found
            problem = Problem(entity, table, key_column, KEY_COLUMN, f"{found} by the binlog's table map")
            log.warning(
                "MAPPED TABLE %s IS NOT PUBLISHED, it has no column %s (the mapping's key): %s. Renamed or dropped "
                "in Base A? Write the key column's name as `key` of %s in the mapping file (`base-a check` names "
                "it); the batch sync refuses the entity until then and re-reads every row once the mapping changed",
                table,
                key_column,
                problem,
                entity,
            )
        UNPUBLISHED.labels(table, KEY_MISSING).inc()
        return True

    def _emit(self, held: xa.HeldChange, value: bytes, transaction: list, source: dict) -> None:
        """Send a row change, or hold it when it is a prepared XA's (sent at its XA COMMIT)."""
        if self.preparing is not None:
            self.preparing.changes.append(held)
        else:
            self._send(held.entity, held.topic, held.change, value, transaction, source)

    def _versioned(self, event) -> Versioned | None:
        """How the table is system-versioned (MariaDB), or None: read from the catalogue once per
        table and binlog columns (an ALTER ... ADD or DROP SYSTEM VERSIONING changes those)."""
        names = tuple(c.name for c in event.columns)
        signature = (event.table, names)
        if signature not in self.versioned:
            self.versioned[signature] = self._read_versioning(event.schema, event.table, list(names))
        return self.versioned[signature]

    def _read_versioning(self, schema: str, table: str, names: list) -> Versioned | None:
        if not self.is_mariadb or None in names:
            return None  # no system versioning; or no column names, published incomplete anyway
        with self._sql() as conn:
            where = {"schema": schema, "table": table}
            kind = conn.execute(
                text(
                    "SELECT table_type FROM information_schema.tables "
                    "WHERE table_schema = :schema AND table_name = :table"
                ),
                where,
            ).scalar()
            if kind is None:  # the account sees no table of the name: versioned or not is unknown
                log.warning(
                    "the relay's account cannot see %s.%s in information_schema (grant it SELECT on the "
                    "table): were it system-versioned, its deletes would be published as upserts",
                    schema,
                    table,
                )
            if kind != SYSTEM_VERSIONED:
                return None
            catalogue = dict(
                conn.execute(
                    text(
                        "SELECT column_name, generation_expression FROM information_schema.columns "
                        "WHERE table_schema = :schema AND table_name = :table"
                    ),
                    where,
                ).all()
            )
        versioned = Versioned.of(names, catalogue)
        if versioned is None:
            log.warning("%s is system-versioned but its row end is not among the binlog's columns %s", table, names)
        else:
            log.info(
                "%s is system-versioned: an update ending a row (row end %s) is published as a delete, history "
                "rows are not published%s",
                table,
                versioned.end,
                f", nor its invisible columns {', '.join(sorted(versioned.hidden))}" if versioned.hidden else "",
            )
        return versioned

    def _statement(self, event, stream: BinLogStreamReader) -> None:
        """A statement on a mapped table the binlog holds as SQL text: a TRUNCATE is published as a
        truncate event ('t'); DML logged as a statement, a rename away, a drop and a partition clause
        that removes or adds rows cannot be, and are logged loudly and counted
        (relay_unpublished_statements_total) for the batch sync to carry."""
        session = event.schema.decode("utf-8", "replace") if isinstance(event.schema, bytes) else event.schema
        found = statements.effects(event.query)
        self._effects(found, event, stream, session)
        # After the statement's own effects: a catalogue read that fails must not skip them.
        self._reached_indirectly(event.query, session, found)
        if statements.changes_catalogue(event.query):
            self.reach.forget()
        if cascades.may_change_foreign_keys(event.query):
            self._recheck_cascading_keys()

    def _effects(self, found: list[statements.Effect], event, stream: BinLogStreamReader, session: str) -> None:
        self._renamed([effect for effect in found if effect.kind == statements.RENAME], event.query, session)
        for effect in found:
            table = self._mapped(effect.table, session)
            if effect.kind == statements.RENAME or table is None:
                continue
            elif effect.kind == statements.TRUNCATE:
                self._truncated(table, event, stream)
            elif effect.kind == statements.DML:
                self._unpublished(
                    table,
                    effect.kind,
                    "STATEMENT-LOGGED CHANGES of %s NOT PUBLISHED: a session wrote them with binlog_format "
                    "STATEMENT or MIXED, so the binlog holds the SQL, not the rows (%s). The batch sync carries "
                    "them (deletes: run it with compare_keys); set binlog_format=ROW for every session",
                    statements.excerpt(event.query),
                )
            elif effect.kind == statements.DROP:
                for dropped in self.tables if table == "*" else [table]:
                    self._unpublished(
                        dropped,
                        effect.kind,
                        "MAPPED TABLE %s DROPPED (%s): its rows' deletes are not in the binlog; Base B keeps them "
                        "until the batch sync compares keys",
                        statements.excerpt(event.query),
                    )
            elif effect.kind == statements.COLUMN_DROP:
                self._column_dropped(table, effect.column, event.query)
            elif effect.kind == statements.PARTITION and self._keeps_rows(effect, effect.table[0] or session, table):
                log.info(
                    "%s PARTITION of %s keeps every current row (%s): nothing to publish",
                    effect.clause,
                    table,
                    statements.excerpt(event.query),
                )
            elif effect.kind == statements.PARTITION:
                self._unpublished(
                    table,
                    effect.kind,
                    "ROWS OF %s REMOVED OR ADDED BY A PARTITION STATEMENT, NOT PUBLISHED (%s): the binlog holds "
                    "no row events for them. Run the batch sync with compare_keys to delete in Base B the rows "
                    "the partition held (and to add rows it brought in)",
                    statements.excerpt(event.query),
                )

    def _column_dropped(self, table: str, column: str, query: str) -> None:
        """A column the mapping reads dropped: its values left Base A without a row event. The batch
        refuses the table while it is gone; added back (MariaDB's instant ADD COLUMN), it holds its
        default in every row at the same stamps, and Base B kept the old values for good (found from
        outside: no run, no verification and no event noticed)."""
        read = {name.lower() for name in self.topics.view(self.tables[table]).source_columns}
        if column.lower() not in read:
            return
        self._unpublished(
            table,
            statements.COLUMN_DROP,
            "MAPPED COLUMN %s.%s DROPPED (%s): its values left Base A without row events. Once the mapping "
            "or the column is settled, run the batch sync with full_refresh: a column added back holds its "
            "default in every row, which neither the stamps nor the events carry to Base B",
            column,
            statements.excerpt(query),
        )

    def _reached_indirectly(self, query: str, session: str, found: list[statements.Effect]) -> None:
        """Count the mapped tables a statement-logged DML changes through a trigger, a view or a stored
        function (`reach`), beyond those it names (counted as its effects)."""
        if not statements.may_run_routines(query):
            return
        written = [effect.table for effect in found if effect.kind == statements.DML]
        direct = {self._mapped(table, session) for table in written}
        for table, through in self.reach.of_statement(query, session, written).items():
            if table not in direct:
                self._unpublished(
                    table,
                    statements.DML,
                    "STATEMENT-LOGGED CHANGES of %s NOT PUBLISHED: the statement reaches it through %s (a trigger, "
                    "view or stored function) and a session wrote it with binlog_format STATEMENT or MIXED, so the "
                    "binlog holds the SQL, not the rows (%s). The batch sync carries them (deletes: run it with "
                    "compare_keys); set binlog_format=ROW for every session",
                    through,
                    statements.excerpt(query),
                )

    def _schema_objects(self, schema: str) -> reach.SchemaObjects:
        """A schema's triggers, views and stored functions with their bodies (None: not readable)."""
        objects = reach.SchemaObjects()
        where = {"schema": schema}
        with self._sql() as conn:
            for table, body in conn.execute(
                text(
                    "SELECT event_object_table, action_statement FROM information_schema.triggers "
                    "WHERE event_object_schema = :schema"
                ),
                where,
            ):
                objects.triggers.setdefault(table.lower(), []).append(body or None)
            for view, body in conn.execute(
                text("SELECT table_name, view_definition FROM information_schema.views WHERE table_schema = :schema"),
                where,
            ):
                objects.views[view.lower()] = body or None  # '' without SHOW VIEW
            for function, body in conn.execute(
                text(
                    "SELECT routine_name, routine_definition FROM information_schema.routines "
                    "WHERE routine_schema = :schema AND routine_type = 'FUNCTION'"
                ),
                where,
            ):
                objects.functions[function.lower()] = body or None
        return objects

    def _keeps_rows(self, effect: statements.Effect, schema: str, table: str) -> bool:
        """The partition clause keeps every current row (`statements.keeps_rows`), by the table's
        partitioning method as information_schema has it now: the statement is read after it ran, and
        a REORGANIZE or DROP PARTITION leaves the method as it was (a relay far behind reads the method
        of a later PARTITION BY, if one came since). Read only for those two clauses;
        when it cannot be read (no such partitioned table visible, Base A not answering) the clause
        may have removed rows."""
        if effect.clause not in ("REORGANIZE", "DROP"):
            return False
        try:
            with self._sql() as conn:
                method = conn.execute(
                    text(
                        "SELECT partition_method FROM information_schema.partitions WHERE table_schema = :schema "
                        "AND table_name = :table AND partition_method IS NOT NULL LIMIT 1"
                    ),
                    {"schema": schema, "table": table},
                ).scalar()
        except Exception as error:  # counted as removing rows: the loud side
            log.warning("could not read how %s is partitioned (%s)", table, one_line(error))
            method = None
        return statements.keeps_rows(effect, method)

    def _mapped(self, name: tuple[str | None, str] | None, session: str) -> str | None:
        """The mapped table a statement's (schema, table) names (in any case), or None; "*" for a
        whole schema that is Base A's."""
        if name is None:
            return None
        schema, table = name
        if self.url.database and not self.names.same(schema or session, self.url.database):
            return None
        return "*" if table == "*" else self.folded.get(table.lower())

    def _published_table(self, schema: str, table: str) -> str | None:
        """The mapping's name of the table a row event names, or None: as the server compares names
        (`base_sync.server_names`; on a lower_case_table_names=1 server the binlog writes `personal` for the
        mapping's `Personal`)."""
        if self.url.database and not self.names.same(schema, self.url.database):
            return None
        if self.names.folded:
            return self.folded.get(table.lower())
        return table if table in self.tables else None

    def _renamed(self, found: list[statements.Effect], query: str, session: str) -> None:
        """A statement's renames, taken together (`renames`): a mapped table renamed away, one whose
        name another table took in the same statement (a swap: no loss when that table is an online
        schema change's shadow copy, its cut-over), a table renamed into a mapped name."""
        if not found:
            return

        def name(of: tuple[str | None, str] | None) -> tuple:
            mapped = self._mapped(of, session)
            if mapped is not None or of is None:
                return ("mapped", mapped)
            return ("other", self.names.key(of[0] or session), self.names.key(of[1]))

        moved = renames.moves((name(effect.table), name(effect.to)) for effect in found)
        mapped = {name(effect.table)[1] for effect in found} | {name(effect.to)[1] for effect in found}
        for table in sorted(t for t in mapped if t is not None):
            here = ("mapped", table)
            if (former := moved.swapped(here)) is not None:
                self._swapped(table, former, query, session)
            elif moved.away_only(here):
                self._unpublished(
                    table,
                    statements.RENAME,
                    "MAPPED TABLE %s RENAMED AWAY (%s): the relay publishes the table of that name only, so changes "
                    "made under another name are NOT PUBLISHED; the batch sync carries them once it is back",
                    statements.excerpt(query),
                )
            elif moved.arrived(here) is not None:
                log.warning(
                    "a table was renamed to the mapped %s (%s): published from here on; changes made before "
                    "under another name were not: run the batch sync",
                    table,
                    statements.excerpt(query),
                )

    def _swapped(self, table: str, former: tuple, query: str, session: str) -> None:
        """The mapped `table` swapped with the table that had the name `former`: an online schema
        change's cut-over when that is its shadow copy (same schema, the tool's name for it), else a
        table whose rows replaced the old ones wholesale, without a row event (an archival swap)."""
        schema = self.names.key(self.url.database or session)
        shadows = {self.names.key(shadow) for shadow in renames.shadow_copies(table)}
        if former[0] == "other" and former[1] == schema and former[2] in shadows:
            SWAPS.labels(table).inc()
            log.info(
                "TABLE SWAP of the mapped %s (%s): %s is now the former %s, published under its name from here on; "
                "that was an online schema change's shadow copy (pt-online-schema-change, gh-ost), kept current, "
                "and nothing was written under another name",
                table,
                statements.excerpt(query),
                table,
                self._spelled(former, session),
            )
            return
        self._unpublished(
            table,
            renames.SWAP,
            "MAPPED TABLE %s SWAPPED (%s): it is now the former %s, no online schema change's shadow copy by name "
            "(pt-online-schema-change's _<table>_new, gh-ost's _<table>_gho), so the table's rows were REPLACED "
            "WHOLESALE WITHOUT ROW EVENTS: Base B still holds the old rows. Run the batch sync with compare_keys "
            "(and full_refresh when the new rows carry stamps older than its watermark)",
            statements.excerpt(query),
            self._spelled(former, session),
        )

    def _spelled(self, name: tuple, session: str) -> str:
        """A `_renamed` name as a log line writes it: the mapping's, or `table` (`schema.table` elsewhere)."""
        if name[0] == "mapped":
            return name[1]
        schema, table = name[1], name[2]
        return table if self.names.same(schema, session) else f"{schema}.{table}"

    def _unpublished(self, table: str, kind: str, message: str, *args) -> None:
        UNPUBLISHED.labels(table, kind).inc()
        self.warnings.warn(("unpublished", table, kind), message, table, *args)

    def _truncated(self, table: str, event, stream: BinLogStreamReader) -> None:
        """A TRUNCATE as Debezium emits it: op 't', no images, no key. The drain dead-letters it
        with the reason (run the batch with compare_keys): the rows' deletes are not in the binlog."""
        entity = self.tables[table]
        if self.transaction is None:
            self.transaction = self.deliveries.begin()
        writer = self.last_writer.get(table) or self._bare_writer(table)
        value = writer.envelope("t", None, None, {**_source(event, stream), "row": 0}, int(time.time() * 1000))
        self._produce(self.topics.topic(entity), None, value, self.transaction)
        EVENTS.labels(entity, "t").inc()
        log.warning(
            "TRUNCATE of %s published as a truncate event ('t'): the drain dead-letters it; run the batch "
            "sync with compare_keys to delete the rows in Base B",
            table,
        )

    def _send(self, entity: str, topic: str, change: RowChange, value: bytes, transaction: list, source: dict) -> None:
        key = None if change.key is None else str(change.key).encode()
        try:
            self._produce(topic, key, value, transaction)
        except ChangeTooLarge as error:  # never sendable: a small keyed stand-in the drain dead-letters
            table = self.topics.mapping.table_of(entity)
            stand_in = too_large(change, table, error.size, error.limit)
            UNPUBLISHED.labels(table, TOO_LARGE).inc()  # the warning is _count's, with the reason
            value = self._bare_envelope(table, stand_in, source, now_ms())
            self._send(entity, topic, stand_in, value, transaction, source)
            return
        self._count(entity, change)

    def _bare_envelope(self, table: str, change: RowChange, source: dict, now_ms: int) -> bytes:
        """The envelope of a change whose columns are unknown."""
        return self._envelope(self._bare_writer(table), change, source, now_ms)

    def _bare_writer(self, table: str) -> EnvelopeWriter:
        """A writer for the table without columns (their types unknown, or none to write)."""
        return EnvelopeWriter(table, [], self.settings.topic_prefix, self.url.database or "", self.settings.with_schema)

    @staticmethod
    def _envelope(writer: EnvelopeWriter, change: RowChange, source: dict, now_ms: int) -> bytes:
        return writer.envelope(
            change.op, change.before, change.after, source, now_ms, change.invalid, incomplete=change.problem
        )

    def _count(self, entity: str, change: RowChange) -> None:
        if change.problem is None:
            EVENTS.labels(entity, change.op).inc()
            return
        table = self.topics.mapping.table_of(entity)
        INCOMPLETE.labels(table, change.cause).inc()
        self.warnings.warn(
            ("incomplete", table, change.cause),
            "INCOMPLETE CHANGE of %s, key %s, published for the dead letters: %s",
            table,
            "unknown" if change.key is None else change.key,
            change.problem,
        )

    def _produce(self, topic: str, key: bytes | None, value: bytes, transaction: list) -> None:
        """Produce one event of the transaction; ChangeTooLarge when the producer refuses its size."""
        on_delivery = self.deliveries.sent(transaction)
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                return
            except BufferError:  # the local queue is full: wait for the broker to catch up
                self.producer.poll(0.1)
            except KafkaException as error:
                self.deliveries.withdraw(transaction)  # never sent: no acknowledgement will come
                if error.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
                    raise ChangeTooLarge(len(value) + len(key or b""), self.settings.message_max_bytes) from None
                raise

    def _serve_deliveries(self) -> None:
        """Run delivery callbacks and save the safe position, until the relay stops."""
        while not self.stopping.is_set():
            self.producer.poll(self.settings.save_interval)
            self._save()

    def _save(self) -> None:
        position = self.deliveries.safe_position()
        if position is not None:
            self.positions.save(position)
            LAST_SAVED.set(time.time())

    def _save_on_the_way_out(self) -> None:
        try:
            self._save()
        except Exception as error:  # the exit says so (non-zero): the next start repeats a few transactions
            self.failed(f"could not save its position on the way out ({type(error).__name__}: {one_line(error)})")

    def watch_broker(self) -> None:
        """Ask the broker for its metadata every `broker_check_seconds` (relay_broker_reachable): a broker
        away raised no alert of its own while no change was waiting (found from outside: only the
        events DAG's failed runs said so, in general words)."""
        was = None
        while not self.stopping.wait(0 if was is None else self.settings.broker_check_seconds):
            try:
                self.producer.list_topics(timeout=min(10.0, self.settings.broker_check_seconds))
                reachable = True
            except Exception as error:  # a watcher: it never stops the relay, nor dies leaving 1
                reachable = False
                if was is not False:
                    log.warning("the broker at %s does not answer: %s", self.settings.kafka_bootstrap, one_line(error))
            if reachable and was is False:
                log.info("the broker at %s answers again", self.settings.kafka_bootstrap)
            BROKER_REACHABLE.set(1 if reachable else 0)
            was = reachable

    # Threads the relay cannot work without

    def essential_thread(self, name: str, target: Callable[[], object]) -> threading.Thread:
        """A daemon thread whose end by an exception stops the relay (`failed`): a silent death left the
        relay publishing with its position never saved again and /health still 200."""

        def run() -> None:
            try:
                target()
            except BaseException as error:
                log.debug("the %s thread failed", name, exc_info=True)
                running = not self.stopping.is_set()  # else the main thread is on its way out already
                self.failed(f"its {name} thread failed ({type(error).__name__}: {one_line(error)})")
                if running:  # a KeyboardInterrupt in the main thread, even in a blocking binlog read
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

        return threading.Thread(target=run, name=name, daemon=True)

    def failed(self, reason: str) -> None:
        """Stop the relay for `reason` (the first one given): `main` exits non-zero with it, so that the
        supervisor restarts the relay from its saved position."""
        if self.failure is None:
            self.failure = reason
        self.stopping.set()

    # /health and /metrics

    def _shown_position(self) -> dict | str | None:
        """The position this relay resumed from or saved last, for /health (never the file read again:
        that may be another writer's); the refusal's reason when it is unusable (the relay is exiting)."""
        return self.refusal or self.positions.current

    def http_app(self):
        metrics = make_wsgi_app(REGISTRY)

        def app(environ, start_response):
            if environ["PATH_INFO"] == "/metrics":
                return metrics(environ, start_response)
            if environ["PATH_INFO"] in ("/health", "/ready"):
                healthy = (
                    not self.deliveries.failed
                    and self.failure is None
                    and (environ["PATH_INFO"] == "/health" or self.streaming)
                )
                body = json.dumps({"status": "ok" if healthy else "unavailable", "position": self._shown_position()})
                status = "200 OK" if healthy else "503 Service Unavailable"
                start_response(status, [("Content-Type", "application/json")])
                return [body.encode()]
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"status": 404, "title": "Not Found"}']

        return app


class Warnings:
    """Loud warnings that cannot flood the log: one line per subject at most every `every` seconds,
    saying how many like it came in between (a 100,000-row UPDATE is one line, not 100,000)."""

    def __init__(self, every: float = 60.0):
        self.every = every
        self.last: dict[tuple, float] = {}
        self.since: dict[tuple, int] = {}

    def warn(self, subject: tuple, message: str, *args) -> None:
        self.since[subject] = self.since.get(subject, 0) + 1
        now = time.monotonic()
        if subject in self.last and now - self.last[subject] < self.every:
            return
        count = self.since.pop(subject)
        self.last[subject] = now
        if count > 1:
            message += f" ({count - 1} more like it in the last {self.every:.0f} s)"
        log.warning(message, *args)


def now_ms() -> int:
    return int(time.time() * 1000)


def _source(event, stream: BinLogStreamReader) -> dict:
    """The envelope's `source` block for a binlog event: its commit time and binlog position."""
    return {
        "ts_ms": event.timestamp * 1000,
        "server_id": event.packet.server_id,
        "gtid": None,
        "file": stream.log_file,
        "pos": stream.log_pos,
    }


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # scrapes every few seconds would flood the log
        pass


def main() -> int:
    # No options (settings come from RELAY_* variables): --help says so instead of starting the relay.
    argparse.ArgumentParser(
        prog="base-a-relay", description=__doc__.split("\n\n", 1)[0], epilog="Settings: RELAY_* (see README)."
    ).parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = RelaySettings()
    except InvalidSettings as error:  # one line naming the variables, not a traceback
        log.error("%s", error)
        return 1
    relay = Relay(settings)
    try:
        relay.positions.lock()  # first: a second relay on the file is refused before it takes a port
    except (PositionHeld, PositionUnusable) as error:
        log.error("%s", error)
        return 1
    if settings.http_port:
        httpd = make_server(
            settings.http_host, settings.http_port, relay.http_app(), ThreadingWSGIServer, _QuietHandler
        )
        relay.essential_thread("http", httpd.serve_forever).start()
        log.info("health and metrics on http://%s:%d", settings.http_host, settings.http_port)
    threading.Thread(target=relay.watch_broker, name="broker", daemon=True).start()

    def stop(signum, _frame):
        log.info("signal %d: stopping after the current event", signum)
        relay.stopping.set()
        raise KeyboardInterrupt  # interrupts a blocking binlog read; the position is saved on the way out

    signal.signal(signal.SIGTERM, stop)
    # How a failed essential thread stops the main thread (`Relay.essential_thread`), even when the
    # relay was started with SIGINT ignored (in the background of a shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        relay.run()
    except KeyboardInterrupt:
        pass
    except (DBAPIError, pymysql.err.MySQLError) as error:  # one line, not a traceback: the operator's fix
        if _server_id_taken(error):  # terminal: a retry would only displace the other one in turn
            log.error(
                "another replication client (another relay, or a replica) connected to Base A with this relay's "
                "server_id (RELAY_SERVER_ID=%d), and Base A ended this relay's binlog connection for it: give each "
                "relay its own RELAY_SERVER_ID, unique among Base A's replicas, or stop the other one (%s)",
                settings.server_id,
                one_line(error),
            )
            return 1
        if _binlog_gone(error):
            log.error(
                "Base A no longer has the binlog from the relay's position %s on (%s): its binlogs were purged "
                "(binlog_expire_logs_seconds, expire_logs_days, PURGE BINARY LOGS) while the relay was behind, or "
                "Base A is now another server (a failover, a restore) whose binlog does not hold it, so the changes "
                "made since never reach the events path. Move %s aside to start from Base A's "
                'current position, then run base_a_to_base_b with {"compare_keys": true}, which brings '
                "Base B up to date",
                relay.positions.current,
                one_line(error),
                settings.position_file,
            )
            return 1
        limited = account_limit(error)
        if limited is not None:
            log.error(
                "Base A (RELAY_BASE_A_URL=%s) refused the relay's connection: %s (%s)",
                relay.url.render_as_string(hide_password=True),
                limited,
                one_line(error),
            )
            return 1
        log.error("Base A (RELAY_BASE_A_URL=%s) failed: %s", relay.url.render_as_string(hide_password=True), error)
        return 1
    except BaseAUnreachable as error:
        log.error("Base A (RELAY_BASE_A_URL=%s) %s", relay.url.render_as_string(hide_password=True), error)
        return 1
    except PositionUnusable as error:
        log.error("%s", error)
        return 1
    except KafkaException as error:
        log.error("the broker (RELAY_KAFKA_BOOTSTRAP=%s) failed: %s", settings.kafka_bootstrap, error)
        return 1
    if relay.failure is not None:  # non-zero: the supervisor restarts it
        log.error("the relay stopped: %s; its saved position is %s", relay.failure, relay.positions.current)
        return 1
    log.info("stopped; position %s", relay.positions.current)
    return 0

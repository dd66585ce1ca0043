"""Sync fixtures: Base A on the real MariaDB, Base B behind a real API process on PostgreSQL, a real broker,
a MariaDB with its binlog on and the relay reading it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from sqlalchemy import Engine, create_engine, select

from api_service import migrate
from api_service.models import REJECTIONS, TABLES
from base_sync.api_client import BaseBApi
from base_sync.debezium import Topics
from base_sync.mapping import IDENTITY_MAPPING
from base_sync.settings import EventSettings
from base_sync.source import BaseA, source_engine, utc
from base_sync.source_schema import create_schema
from base_sync.topics import ensure_topics
from baseab_contract.entities import ENTITIES
from testbed.relay import RelayProcess
from testbed.servers import (
    StatsdListener,
    api_server,
    binlog_mariadb,
    kafka_broker,
    private_mariadb,
)

TOKEN = "sync-test-token"


@dataclass
class BaseB:
    url: str  # the API
    database_url: str  # PostgreSQL behind it, for checking what it really holds
    token: str

    def api(self) -> BaseBApi:
        return BaseBApi(self.url, self.token)

    def empty(self) -> None:
        engine = create_engine(self.database_url)
        with engine.begin() as conn:
            for table in (*TABLES.values(), REJECTIONS):
                conn.execute(table.delete())
        engine.dispose()


@pytest.fixture(scope="module")
def api_process(make_postgres_database, tmp_path_factory) -> Iterator[BaseB]:
    database_url = make_postgres_database()
    migrate.upgrade(database_url)
    log = tmp_path_factory.mktemp("api") / "api.log"
    with api_server(database_url, TOKEN, log, workers=2) as url:
        yield BaseB(url, database_url, TOKEN)


@pytest.fixture
def base_b(api_process) -> BaseB:
    """The API over an empty Base B."""
    api_process.empty()
    return api_process


def new_base_a(make_mariadb_database) -> Iterator[Engine]:
    """A new MariaDB database with Base A's schema; a fixture per test here, per module in the DAG tests."""
    engine = source_engine(make_mariadb_database())
    create_schema(engine)
    yield engine
    engine.dispose()


base_a_engine = pytest.fixture(new_base_a, name="base_a_engine")


@pytest.fixture
def base_a(base_a_engine) -> BaseA:
    return BaseA(base_a_engine)


def _normal(value):
    return str(value) if isinstance(value, Decimal) else value


def source_rows(engine: Engine, entity: str) -> dict[int, tuple]:
    """{id: (version, data fields...)} of Base A."""
    table = BaseA(engine).table(entity)
    names = ENTITIES[entity].field_names
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.id, table.c.updated_at, *(table.c[n] for n in names)))
        return {r[0]: (utc(r[1]), *map(_normal, r[2:])) for r in rows}


def synced_rows(database_url: str, entity: str) -> dict[int, tuple]:
    """{source_id: (version, data fields...)} of the live synced rows of Base B."""
    table = TABLES[entity]
    names = ENTITIES[entity].field_names
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(table.c.source_id, table.c.source_updated_at, *(table.c[n] for n in names)).where(
                    table.c.source_id.is_not(None), table.c.deleted_at.is_(None)
                )
            )
            return {r[0]: (utc(r[1]), *map(_normal, r[2:])) for r in rows}
    finally:
        engine.dispose()


def assert_in_sync(engine: Engine, database_url: str, entity: str) -> int:
    """Base B holds exactly Base A's rows, at Base A's versions: nothing missing, extra or stale."""
    ours, theirs = source_rows(engine, entity), synced_rows(database_url, entity)
    assert set(ours) - set(theirs) == set(), "rows missing in Base B"
    assert set(theirs) - set(ours) == set(), "rows Base A no longer has are still live in Base B"
    differing = [key for key in ours if ours[key] != theirs[key]]
    assert differing == [], f"rows that differ, e.g. {differing[:5]}: {ours[differing[0]]} vs {theirs[differing[0]]}"
    return len(ours)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu) for the session; its bootstrap.servers."""
    with kafka_broker(tmp_path_factory.mktemp("broker") / "tansu.log") as bootstrap:
        yield bootstrap


@pytest.fixture
def event_settings(kafka_bootstrap) -> EventSettings:
    """Topics, dead letters and consumer group of this test alone, created on the broker."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings = EventSettings(
        topic_prefix=prefix, dlq_topic=f"{prefix}.dlq", group_id=f"{prefix}.apply", idle_seconds=0.5
    )
    ensure_topics(
        {"bootstrap.servers": kafka_bootstrap},
        [*Topics.from_settings(settings, IDENTITY_MAPPING).names, settings.dlq_topic],
        partitions=3,
    )
    return settings


@pytest.fixture(scope="session")
def binlog_port(tmp_path_factory) -> Iterator[int]:
    with binlog_mariadb(tmp_path_factory.mktemp("mariadb")) as port:
        yield port


@pytest.fixture(scope="module")
def private_mariadb_port(tmp_path_factory) -> Iterator[int]:
    """A MariaDB of the module's own, whose globals (init_connect, sql_mode, timeouts) a test may set."""
    with private_mariadb(tmp_path_factory.mktemp("mariadb")) as port:
        yield port


@pytest.fixture(scope="module")
def folding_mariadb_port(tmp_path_factory) -> Iterator[int]:
    """A MariaDB that stores table names in lower case and compares them so (lower_case_table_names=1,
    as on Windows and many managed servers); its binlog on, for the relay."""
    with binlog_mariadb(tmp_path_factory.mktemp("mariadb"), "--lower-case-table-names=1") as port:
        yield port


def server_database(port: int, name: str) -> str:
    """A new utf8mb4 database (an earlier test's of the name dropped) on a private MariaDB (whose
    default is latin1); its root URL."""
    admin = source_engine(f"mysql+mysqldb://root@127.0.0.1:{port}/mysql")
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    admin.dispose()
    return f"mysql+mysqldb://root@127.0.0.1:{port}/{name}"


def binlog_database(binlog_port: int, name: str) -> str:
    """A new database on the MariaDB with its binlog on (an earlier test's of the name dropped); its URL."""
    admin = source_engine(f"mysql+mysqldb://root@127.0.0.1:{binlog_port}/mysql")
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return f"mysql+mysqldb://root@127.0.0.1:{binlog_port}/{name}"


@pytest.fixture
def base_a_url(binlog_port) -> Iterator[str]:
    url = binlog_database(binlog_port, f"base_a_{uuid.uuid4().hex[:8]}")
    engine = source_engine(url)
    create_schema(engine)
    engine.dispose()
    return url


@pytest.fixture
def relay(base_a_url, kafka_bootstrap, tmp_path) -> Iterator[RelayProcess]:
    process = RelayProcess(base_a_url, kafka_bootstrap, tmp_path)
    process.start()
    yield process
    process.stop()


def read_topic(bootstrap: str, topic: str, *, deadline_seconds: float = 30.0) -> list:
    """Every message on a topic, from the beginning (no consumer group join: partitions are assigned).

    Reads at least up to each partition's end offset, asked first: a loaded broker's first fetch may
    take longer than the pause that ends the read (CI once read a topic of 2 messages as empty).
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        owed = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                owed[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found = []
        stop_at = time.monotonic() + deadline_seconds
        while True:
            batch = consumer.consume(100, timeout=1.0)
            found += batch
            # Read to the end: the position passes a transaction's commit marker, which no message shows.
            for position in consumer.position([TopicPartition(topic, p) for p in owed]):
                if position.offset >= owed[position.partition]:
                    owed.pop(position.partition)
            # Past the deadline what was read is returned: the caller's assertions say what is missing.
            if not batch and (not owed or time.monotonic() > stop_at):
                return found
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def statsd() -> Iterator[StatsdListener]:
    """A StatsD listener on a free UDP port: point AIRFLOW__METRICS__STATSD_PORT at it."""
    listener = StatsdListener()
    yield listener
    listener.close()

"""What the fault tests share: processes they can kill, a paced Base A reader, a state store on disk, checks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from sqlalchemy import Engine, create_engine, func, select, text

from api_service.models import TABLES
from base_sync import events
from base_sync.api_client import BaseBApi
from base_sync.delete_guard import ANY_NUMBER, DeleteBudget
from base_sync.source import BaseA, Cursor, utc
from base_sync.state import MemoryHeldDeletes
from testbed.servers import REPO, free_port, kafka_broker, venv_bin, wait_for_http
from tests.faults.tcp_proxy import TcpProxy

TOKEN = "fault-test-token"


def wait_until(condition: Callable[[], object], timeout: float, what: str, every: float = 0.02):
    """Poll until `condition()` is truthy; its value. Fails the test with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def in_thread(work: Callable[[], object], name: str) -> Future:
    """Run `work` in a daemon thread; a Future of its result or exception."""
    outcome: Future = Future()

    def run() -> None:
        try:
            outcome.set_result(work())
        except BaseException as exc:
            outcome.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return outcome


class ApiProcess:
    """The REST API under gunicorn in its own process group, on a fixed loopback port, so a test can
    SIGKILL it (master and workers at once, mid-request) and start it again at the same address."""

    def __init__(self, database_url: str, log_path: Path, workers: int = 2, connect_url: str | None = None):
        self.database_url = database_url  # Base B, for the tests' checks
        self.port = free_port()
        self.log_path = log_path
        self.env = {
            **os.environ,
            "API_DATABASE_URL": connect_url or database_url,  # the API's way there (through a proxy, say)
            "API_TOKENS": TOKEN,
            "API_BIND": f"127.0.0.1:{self.port}",
            "API_WORKERS": str(workers),
            "PROMETHEUS_MULTIPROC_DIR": str(log_path.parent / f"metrics-{self.port}"),
        }
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, retries: int = 5) -> BaseBApi:
        return BaseBApi(self.url, TOKEN, timeout=30, retries=retries)

    def start(self) -> ApiProcess:
        command = [venv_bin("gunicorn"), "-c", "api_service/gunicorn.conf.py", "api_service.wsgi:app"]
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for_http(f"{self.url}/ready", self.process)
        return self

    def kill(self) -> None:
        """SIGKILL the whole group: no graceful shutdown, in-flight requests die with their transactions."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


class PacedBaseA(BaseA):
    """Base A whose extract pauses between chunks, so a fault lands while a load is half way.

    Only the pace changes: the rows, their order and every request to the API are the real ones.
    """

    def __init__(self, engine: Engine, pause: float):
        super().__init__(engine)
        self.pause = pause
        self.reads: list = []

    def extract(self, entity: str, since: Cursor | None, chunk_size: int) -> Iterator[list[dict]]:
        read = self._paced(entity, since, chunk_size)
        self.reads.append(read)
        return read

    def _paced(self, entity: str, since: Cursor | None, chunk_size: int) -> Iterator[list[dict]]:
        with contextlib.closing(super().extract(entity, since, chunk_size)) as chunks:
            for chunk in chunks:
                yield chunk
                time.sleep(self.pause)

    def close(self) -> None:
        """End the reads a failed load abandoned: their server-side cursors hold Base A's table locks
        for as long as the failure's traceback lives (see test_api_killed.py), which would block the
        teardown's DROP DATABASE."""
        for read in self.reads:
            with contextlib.suppress(ValueError):  # still running in a thread that is stuck: leave it
                read.close()


class FileStateStore:
    """The watermarks in a JSON file, written atomically: what a killed process leaves is what it committed."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.held_deletes = MemoryHeldDeletes()  # no events path in these tests

    def _all(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def name(self, entity: str) -> str:
        return f"the watermark of {entity} in {self.path}"

    def get(self, entity: str) -> Cursor | None:
        return Cursor.from_json(self._all().get(entity, {}).get("watermark"))

    def last_stats(self, entity: str) -> dict:
        return self._all().get(entity, {}).get("stats") or {}

    def set(self, entity: str, cursor: Cursor | None, stats: dict) -> None:
        saved = self._all()
        saved[entity] = {"watermark": cursor.to_json() if cursor else None, "stats": stats}
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(json.dumps(saved, default=str))
        os.replace(scratch, self.path)


# Checks on Base B


def count_synced(database_url: str, entity: str) -> int:
    """Live synced rows in Base B (a cheap progress probe while a load runs)."""
    table = TABLES[entity]
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                select(func.count()).where(table.c.source_id.is_not(None), table.c.deleted_at.is_(None))
            ).scalar_one()
    finally:
        engine.dispose()


def assert_no_duplicate_keys(database_url: str, entity: str) -> None:
    """Every Base A key is held by one Base B row at most (live or tombstoned)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows, keys = conn.execute(
                text(f"SELECT count(*), count(DISTINCT source_id) FROM {entity} WHERE source_id IS NOT NULL")
            ).one()
    finally:
        engine.dispose()
    assert rows == keys, f"{entity}: {rows} synced rows for {keys} keys"


def versions_held(database_url: str, entity: str) -> dict[int, tuple]:
    """{source_id: (source_updated_at, deleted)} of every synced row, tombstones included."""
    table = TABLES[entity]
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(table.c.source_id, table.c.source_updated_at, table.c.deleted_at.is_not(None)).where(
                    table.c.source_id.is_not(None)
                )
            )
            return {key: (utc(version), deleted) for key, version, deleted in rows}
    finally:
        engine.dispose()


def newest_cursor(engine: Engine, entity: str) -> Cursor:
    """Base A's last row in (updated_at, id) order: where a complete sync leaves the watermark."""
    with engine.connect() as conn:
        stamp, key = conn.execute(
            text(f"SELECT updated_at, id FROM {entity} ORDER BY updated_at DESC, id DESC LIMIT 1")
        ).one()
    return Cursor(utc(stamp), key)


def read_messages(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list:
    """Every message of a topic from the beginning, reading until `expected` arrived (then a little
    more, for any extra): one empty fetch does not end it."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-reader", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found, deadline = [], time.monotonic() + timeout
        while len(found) < expected and time.monotonic() < deadline:
            found += [m for m in consumer.consume(500, timeout=0.5) if not m.error()]
        found += [m for m in consumer.consume(500, timeout=1.0) if not m.error()]
        return found
    finally:
        consumer.close()


# A broker the tests can take away


@contextlib.contextmanager
def broker_behind_proxy(log_path: Path) -> Iterator[tuple[str, TcpProxy]]:
    """A Tansu broker that advertises a proxy's address, so every client connection goes through it.

    The proxy's `refuse()` then looks, to every client, like the broker stopped: connections reset,
    new ones refused. The broker keeps its (in-memory) log meanwhile, as a restarted broker with
    durable storage would have it. Yields (bootstrap.servers, proxy).
    """
    port = free_port()
    with TcpProxy(port) as proxy, kafka_broker(log_path, port, advertised_port=proxy.port) as bootstrap:
        yield bootstrap, proxy


# These histories delete far more than a run's share of a few hundred rows, as churn, not as a mistake:
# the mass-delete breaker (tests/sync/test_events_mass_delete.py) is not what they test.
NO_DELETE_LIMIT = DeleteBudget(share=1.0, min_rows=ANY_NUMBER)


def drain(bootstrap: str, settings, base_b, **config) -> events.DrainReport:
    """One run of the events DAG's drain against Base B's API, with extra consumer `config`; deletes unguarded."""
    config = {"bootstrap.servers": bootstrap, **config}
    consumer, producer = events.consumer_for(config, settings), events.producer_for(config)
    api = base_b.api()
    try:
        return events.drain(consumer, producer, api, settings, delete_budget=NO_DELETE_LIMIT, kafka_config=config)
    finally:
        consumer.close()
        api.close()

"""The batch path, the event path and CRUD clients write the same keys at the same time: new
keys, updates, deletes, re-inserts, versions out of order. Every answer is a well-formed 2xx or
4xx whose counts add up, and Base B ends exactly as a model of the version guard says: each key
as its newest version left it."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import requests
from sqlalchemy import create_engine, text

from base_sync.api_client import BaseBApi
from tests.concurrency.conftest import AUTH, TOKEN

KEYS = range(5_000_001, 5_000_081)
OPS_PER_KEY = 8
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
UPSERT_PARTS = ("inserted", "updated", "unchanged", "stale", "rejected")
DELETE_PARTS = ("deleted", "not_found", "unchanged", "stale", "rejected")


@dataclass(frozen=True)
class Op:
    """One change of Base A: an upsert (with its title) or a delete, at a version no other op has."""

    key: int
    version: int  # seconds after EPOCH
    title: str | None  # None: a delete

    @property
    def stamp(self) -> str:
        return (EPOCH + timedelta(seconds=self.version)).isoformat()

    def record(self) -> dict:
        if self.title is None:
            return {"source_id": self.key, "source_updated_at": self.stamp}
        return {"source_id": self.key, "source_updated_at": self.stamp, "title": self.title}


def _changes(rng: random.Random) -> list[Op]:
    versions = rng.sample(range(1, 10 * len(KEYS) * OPS_PER_KEY), len(KEYS) * OPS_PER_KEY)
    ops = []
    for number, version in enumerate(versions):
        key = KEYS[number % len(KEYS)]
        ops.append(Op(key, version, None if rng.random() < 0.3 else f"{key} at {version}"))
    rng.shuffle(ops)  # out of order: older versions often arrive after newer ones
    return ops


def _expected(ops: list[Op]) -> dict[int, Op]:
    """The version guard's model: every key ends as its newest version says (versions are unique)."""
    newest: dict[int, Op] = {}
    for op in ops:
        if op.key not in newest or op.version > newest[op.key].version:
            newest[op.key] = op
    return newest


def _check_counts(answer: dict, parts: tuple[str, ...], sent: int, problems: list) -> None:
    if answer["received"] != sent or sum(answer[p] for p in parts) != sent or answer["rejected"]:
        problems.append(f"counts do not add up: {answer}")
    if any(answer[p] < 0 for p in parts):
        problems.append(f"negative count: {answer}")


def _batch_path(base: str, ops: list[Op], problems: list) -> None:
    """As the batch DAG sends: big upsert batches and the deletes it found, through the sync library's client."""
    api = BaseBApi(base, TOKEN, sync_path="batch", retries=0)
    for start in range(0, len(ops), 40):
        chunk = ops[start : start + 40]
        upserts = [op.record() for op in chunk if op.title is not None]
        deletes = [op.record() for op in chunk if op.title is None]
        _check_counts(api.bulk_upsert("articles", orjson.dumps(upserts)), UPSERT_PARTS, len(upserts), problems)
        if deletes:
            _check_counts(api.bulk_delete("articles", deletes), DELETE_PARTS, len(deletes), problems)
    api.close()


def _event_path(base: str, ops: list[Op], rng: random.Random, problems: list) -> None:
    """As the events DAG sends: small runs of changes, upserts and deletes, each guarded by version."""
    api = BaseBApi(base, TOKEN, sync_path="events", retries=0)
    position = 0
    while position < len(ops):
        run = ops[position : position + rng.randint(1, 5)]
        position += len(run)
        upserts = [op.record() for op in run if op.title is not None]
        deletes = [op.record() for op in run if op.title is None]
        if upserts:
            _check_counts(api.bulk_upsert("articles", orjson.dumps(upserts)), UPSERT_PARTS, len(upserts), problems)
        if deletes:
            _check_counts(api.bulk_delete("articles", deletes), DELETE_PARTS, len(deletes), problems)
    api.close()


def _crud_client(base: str, rounds: int, problems: list) -> None:
    """A client of its own rows, which also tries to change the synced ones (always refused)."""
    with requests.Session() as http:
        http.headers.update(AUTH)
        for number in range(rounds):
            created = http.post(f"{base}/articles", json={"title": f"client {number}"}, timeout=30)
            _expect(created, {201}, problems)
            location = f"{base}{created.headers.get('Location', '')}"
            _expect(http.put(location, json={"title": f"client {number} again"}, timeout=30), {200}, problems)
            page = http.get(f"{base}/articles", params={"limit": 20}, timeout=30)
            _expect(page, {200}, problems)
            synced = [item["id"] for item in page.json()["items"] if item["source_id"] is not None]
            if synced:
                refused = http.put(f"{base}/articles/{synced[0]}", json={"title": "hijack"}, timeout=30)
                _expect(refused, {409, 404}, problems)  # 404: a delete won the race to it
            _expect(http.delete(location, timeout=30), {204}, problems)


def _expect(response: requests.Response, statuses: set[int], problems: list) -> None:
    if response.status_code not in statuses:
        problems.append(f"{response.request.method} {response.url}: {response.status_code} {response.text[:300]}")
    elif response.status_code >= 400 and response.headers.get("Content-Type") != "application/problem+json":
        problems.append(f"{response.status_code} without a problem document: {response.text[:300]}")


def test_batch_events_and_crud_writing_the_same_keys_end_as_the_newest_versions_say(server):
    rng = random.Random(18)
    seed = [Op(key, 0, f"{key} seeded") for key in KEYS]  # every key exists first, so deletes leave tombstones
    seeded = requests.post(f"{server.base}/articles/bulk", json=[op.record() for op in seed], headers=AUTH)
    assert seeded.json()["inserted"] == len(KEYS)
    ops = _changes(rng)
    batch_ops, event_ops = ops[: len(ops) // 2], ops[len(ops) // 2 :]
    halves = [event_ops[::2], event_ops[1::2]]
    problems: list[str] = []
    jobs = [
        lambda: _batch_path(server.base, batch_ops, problems),
        lambda: _event_path(server.base, halves[0], random.Random(1), problems),
        lambda: _event_path(server.base, halves[1], random.Random(2), problems),
        lambda: _crud_client(server.base, 15, problems),
    ]
    start = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job):
        start.wait(10)
        try:
            job()
        except BaseException as exc:  # an ApiError (a 5xx) or an assertion, reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not errors, errors
    assert not problems, problems

    engine = create_engine(server.database_url)
    with engine.connect() as conn:
        rows = {
            row.source_id: row
            for row in conn.execute(
                text("SELECT source_id, title, source_updated_at, deleted_at FROM articles WHERE source_id >= :low"),
                {"low": KEYS[0]},
            )
        }
    engine.dispose()
    expected = _expected([*seed, *ops])
    assert set(rows) == set(KEYS)
    wrong = []
    for key, op in expected.items():
        row = rows[key]
        version = int((row.source_updated_at - EPOCH).total_seconds())
        state = (version, row.title if row.deleted_at is None else None)
        if state != (op.version, op.title):
            wrong.append((key, state, (op.version, op.title)))
    assert not wrong, wrong

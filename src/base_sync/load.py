"""Load: push chunks of bulk records to the bulk endpoint, a few requests in flight, and add up the answers."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime

from base_sync.api_client import BaseBApi
from base_sync.dirty import Quarantined
from base_sync.errors import TerminalError
from base_sync.records import bodies, encode
from baseab_contract.bulk_format import SHARED_KEY, SOURCE_ID, SOURCE_ID_RANGE, VERSION

log = logging.getLogger(__name__)
OUTCOMES = ("inserted", "updated", "unchanged", "stale", "rejected")


class LoadError(TerminalError):
    """The API's counts do not add up to what was sent: a bug on one side, which a retry repeats."""


def push_chunks(
    api: BaseBApi,
    entity: str,
    chunks: Iterable[list[dict]],
    concurrency: int,
    on_chunk: Callable[[list[dict]], None] | None = None,
    restore_ties: bool = False,
) -> Counter:
    """Send every chunk of bulk records; returns the counts per outcome, plus `extracted` and
    `quarantined` (the `Quarantined` rows among them, which the mapping refused: sent to the API's
    rejections instead, with their reasons; `shared_key` of them because Base A holds their key in more
    than one row), and `unkeyed` (those with a NULL key: logged, `report_unkeyed`).

    At most `concurrency` requests are in flight, so memory holds at most that many bodies plus the
    chunk being read and its body; Base A's reads bound a chunk by rows and by bytes (SYNC_CHUNK_SIZE,
    SYNC_CHUNK_BYTES), and a body is at most SYNC_MAX_BODY_BYTES. Every record must come back counted
    exactly once, or the load fails. `restore_ties`: see `BaseBApi.bulk_upsert`.
    """
    totals: Counter = Counter()
    pending: set[Future] = set()

    def settle(done: set[Future]) -> None:
        for future in done:
            sent, answer = future.result()
            _account(entity, sent, answer, totals)

    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"push-{entity}") as pool:
            for chunk in chunks:
                if on_chunk:
                    on_chunk(chunk)
                totals["extracted"] += len(chunk)
                records = [r for r in chunk if not isinstance(r, Quarantined)]
                dirty = [r for r in chunk if isinstance(r, Quarantined)] if len(records) < len(chunk) else []
                if any(r.source_id is None for r in dirty):
                    unkeyed = [r for r in dirty if r.source_id is None]
                    report_unkeyed(entity, unkeyed)
                    totals["unkeyed"] += len(unkeyed)
                    dirty = [r for r in dirty if r.source_id is not None]
                if dirty:
                    quarantine(api, entity, dirty)
                    totals["quarantined"] += len(dirty)
                    if shared := sum(1 for r in dirty if _shares_its_key(r)):
                        totals["shared_key"] += shared
                for part, body in bodies(records, api.max_body_bytes):
                    if len(body) > api.max_body_bytes:  # one row alone: quarantined, not sent
                        quarantine(api, entity, [_too_large(part[0], len(body), api.max_body_bytes)])
                        totals["quarantined"] += 1
                        continue
                    if len(pending) >= concurrency:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        settle(done)
                    pending.add(pool.submit(_send, api, entity, body, len(part), restore_ties))
            settle(set(pending))
    finally:
        # A failed push must end Base A's streaming read now: the exception's traceback would keep
        # the generator, its server-side cursor and its table lock alive until garbage collection.
        if hasattr(chunks, "close"):
            chunks.close()
    return totals


def concat_chunks(*streams: Iterator[list[dict]]) -> Iterator[list[dict]]:
    """The streams one after the other, as a generator: closing it closes the stream being read
    (itertools.chain has no close(), so push_chunks could not end Base A's read on a failure)."""
    for stream in streams:
        yield from stream


def report_unkeyed(entity: str, rows: list[Quarantined]) -> None:
    """Rows refused for a NULL key: Base B keys its rejections by source_id, so they cannot be kept
    there. Logged as errors instead, each with its reasons and the row as read, on every run until
    Base A gives them a key (`SourceView.unkeyed`: no window holds them), and counted `unkeyed`."""
    for row in rows:
        log.error(
            "%s: a source row with a NULL key is neither synced nor kept as a rejection (Base B keys those by "
            "source_id); give it a key in Base A or keep it out with the mapping's filter: %s; the row: %s",
            entity,
            row.reasons,
            row.record,
        )


def quarantine(api: BaseBApi, entity: str, rows: list[Quarantined]) -> None:
    """Store dirty source rows as open rejections, with their reasons (the API keeps them until a
    later write of the key goes through: a fix in Base A, then a run or a replay)."""
    for row in rows:
        if row.source_id > SOURCE_ID_RANGE[1]:  # not even a BIGINT: the rejection store cannot key it
            raise LoadError(
                f"{entity}: the source row with key {row.source_id} (a BIGINT UNSIGNED above 2^63-1) can be "
                f"neither synced nor quarantined; keep such rows out with the mapping's filter (key <= "
                f"{SOURCE_ID_RANGE[1]})"
            )
        log.warning("%s source_id=%s quarantined: %s", entity, row.source_id, row.reasons)
    stored = 0
    # Split as bulk bodies are: a chunk of dirty rows with long texts is as large as a chunk of clean ones.
    for part, body in bodies(rows, api.max_body_bytes, Quarantined.to_json):
        small = body
        if len(body) > api.max_body_bytes:  # one row alone: kept by its key, version and reasons
            small = encode([_without_record(part[0], len(body), api.max_body_bytes).to_json()])
        stored += api.quarantine(entity, small)["quarantined"]
    if stored != len(rows):
        raise LoadError(f"{entity}: quarantined {len(rows)} rows, the API stored {stored}")


def _shares_its_key(row: Quarantined) -> bool:
    """Quarantined because Base A holds its key in more than one row (`base_sync.shared_keys`)."""
    return any(r.get("code") == SHARED_KEY for r in row.reasons)


def _too_large(record: dict, size: int, limit: int) -> Quarantined:
    """A row whose record alone is a bulk body over the limit: kept as a rejection with the reason,
    its key and version only (the whole record would be as large a request)."""
    version = record.get(VERSION)
    kept = {SOURCE_ID: record[SOURCE_ID], VERSION: version}
    why = f"{size} bytes as JSON: more than one bulk request may carry ({limit} bytes, SYNC_MAX_BODY_BYTES)"
    return Quarantined(record[SOURCE_ID], _iso(version), kept, [{"field": "record", "message": why}])


def _without_record(row: Quarantined, size: int, limit: int) -> Quarantined:
    why = f"the row as read is {size} bytes as JSON, more than one request may carry ({limit} bytes): not kept here"
    kept = {SOURCE_ID: row.source_id, VERSION: row.version}
    return Quarantined(row.source_id, row.version, kept, [*row.reasons, {"field": "record", "message": why}])


def _iso(value) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _send(api: BaseBApi, entity: str, body: bytes, count: int, restore_ties: bool) -> tuple[int, dict]:
    return count, api.bulk_upsert(entity, body, restore_ties)


def _account(entity: str, sent: int, answer: dict, totals: Counter) -> None:
    counted = sum(answer[k] for k in OUTCOMES)
    if answer["received"] != sent or counted != sent:
        raise LoadError(f"{entity}: sent {sent} records, the API counted {counted} of {answer['received']}")
    for key in OUTCOMES:
        totals[key] += answer[key]
    for error in answer["errors"]:
        log.warning("%s source_id=%s rejected: %s", entity, error["source_id"], error["reasons"])

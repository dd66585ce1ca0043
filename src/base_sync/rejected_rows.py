"""Open rejections sent again: Base A's current row of each key, or a delete when it holds none.

A rejected row never reached Base B, so neither the key comparison (it deletes only keys Base B
holds) nor a re-send (Base A lacks the row) would ever close its rejection once Base A deleted the
row, unless the delete log sent its delete. A delete of the key does: the API keeps a tombstone
of a key it never held, at the delete's version, and a write of the key at the rejected record's
version or a newer one closes the rejection (`api_service.rejections`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from base_sync.api_client import BaseBApi
from base_sync.load import push_chunks
from base_sync.settings import SyncSettings
from base_sync.source import BaseA

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resent:
    """What sending open rejections again did."""

    counts: dict  # the bulk counts of the rows Base A still holds, sent again
    resent: int  # how many keys Base A still holds were sent again
    closed_gone: int  # keys Base A no longer holds (deleted, filtered out, soft-deleted): deletes sent
    left_live: int  # of those, keys Base B holds live: left to the delete sources and their breaker


def resend(
    entity: str,
    base_a: BaseA,
    api: BaseBApi,
    settings: SyncSettings,
    rejections: list[dict],
    only: Callable[[dict], bool] | None = None,
) -> Resent:
    """Push Base A's current rows of the rejected keys (those `only` picks, when given); send a delete
    for each rejected key, picked or not, that Base A no longer holds."""
    held = base_a.live_keys_among(entity, sorted(r["source_id"] for r in rejections), settings.chunk_size)
    again = sorted(r["source_id"] for r in rejections if r["source_id"] in held and (only is None or only(r)))
    counts: dict = {}
    if again:
        records = base_a.records_by_keys(entity, again, settings.chunk_size)
        counts = dict(push_chunks(api, entity, records, settings.push_concurrency))
    gone = [r for r in rejections if r["source_id"] not in held]
    closed, live = _delete_gone(entity, base_a, api, settings, gone)
    return Resent(counts, len(again), closed, live)


def _delete_gone(
    entity: str, base_a: BaseA, api: BaseBApi, settings: SyncSettings, gone: list[dict]
) -> tuple[int, int]:
    """Delete the keys of rejections Base A no longer holds, at the rejected record's version (Base
    A's clock when it had none), so the tombstone supersedes the rejection; (sent, left live).

    A key Base B holds live is not deleted here: the delete log or the key comparison deletes it under
    the mass-delete breaker, and the next re-send closes the rejection (Base B then holds no live row)."""
    if not gone:
        return 0, 0
    clock = base_a.now().isoformat() if any(not r.get("source_updated_at") for r in gone) else None
    deletes = [{"source_id": r["source_id"], "source_updated_at": r.get("source_updated_at") or clock} for r in gone]
    sent = 0
    live: list[int] = []
    for start in range(0, len(deletes), settings.chunk_size):
        chunk = deletes[start : start + settings.chunk_size]
        would_delete, _ = api.plan_delete(entity, chunk)
        closing = [d for d in chunk if d["source_id"] not in would_delete]
        live += sorted(would_delete)
        if closing:
            api.bulk_delete(entity, closing)
            sent += len(closing)
    if sent:
        left = set(live)
        log.warning(
            "%s: %d rejected rows are no longer in Base A (deleted, or out of the mapping's scope): "
            "sent their deletes, which close the rejections: keys %s",
            entity,
            sent,
            _some(d["source_id"] for d in deletes if d["source_id"] not in left),
        )
    if live:
        log.warning(
            "%s: %d rejected rows no longer in Base A are live in Base B at an older version: left to the delete log "
            "and the key comparison (the mass-delete breaker counts them); the next re-send closes them: keys %s",
            entity,
            len(live),
            _some(live),
        )
    return sent, len(live)


def _some(keys, shown: int = 10) -> str:
    """The first keys, for a log line of any length."""
    keys = list(keys)
    return ", ".join(map(str, keys[:shown])) + (f", ... ({len(keys)} in all)" if len(keys) > shown else "")

"""Sync state: one watermark per entity, written only after a verified load, and the deletes of an
entity the events path holds (`delete_guard.HeldByEvents`), which the batch path reads.

The Airflow store keeps them in Variables (Admin → Variables in the UI), where an operator can read
them, and reset a watermark to re-sync from an earlier point.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from base_sync.delete_guard import HeldByEvents, HeldDeletesStore, Span
from base_sync.errors import ConfigurationError, TransientError
from base_sync.source import Cursor

VARIABLE_PREFIX = "base_a_to_base_b.watermark."
HELD_DELETES_PREFIX = "base_a_events.held_deletes."

# How far a stored watermark may lie past Base A's clock: a run commits at most the clock it read,
# so more than a clock correction's step (NTP) means the watermark was set by hand.
CLOCK_TOLERANCE = timedelta(minutes=5)


class WatermarkAhead(ConfigurationError):
    """The stored watermark lies past Base A's clock: every read after it finds nothing until then."""


class StateStore(Protocol):
    held_deletes: HeldDeletesStore

    def name(self, entity: str) -> str:
        """Where an operator finds and edits the entity's watermark."""
        ...

    def get(self, entity: str) -> Cursor | None: ...

    def last_stats(self, entity: str) -> dict:
        """The statistics saved with the watermark by the last committed run ({} before the first)."""
        ...

    def set(self, entity: str, cursor: Cursor | None, stats: dict) -> None: ...


class MemoryStateStore:
    """For tests and one-off runs."""

    def __init__(self):
        self.saved: dict[str, dict] = {}
        self.held_deletes = MemoryHeldDeletes()

    def name(self, entity: str) -> str:
        return f"the watermark of {entity} (memory)"

    def get(self, entity: str) -> Cursor | None:
        return Cursor.from_json(self.saved.get(entity, {}).get("watermark"))

    def last_stats(self, entity: str) -> dict:
        return self.saved.get(entity, {}).get("stats") or {}

    def set(self, entity: str, cursor: Cursor | None, stats: dict) -> None:
        self.saved[entity] = {"watermark": cursor.to_json() if cursor else None, "stats": stats}


class VariableStateStore:
    """Airflow Variables, through the Task SDK (works inside tasks)."""

    def __init__(self):
        self.held_deletes = VariableHeldDeletes()

    def name(self, entity: str) -> str:
        return f"Airflow Variable {VARIABLE_PREFIX + entity!r}"

    def _saved(self, entity: str) -> dict:
        from airflow.sdk import Variable

        name = VARIABLE_PREFIX + entity
        raw = Variable.get(name, default=None)
        return _position(name, raw) if raw else {}

    def get(self, entity: str) -> Cursor | None:
        return Cursor.from_json(self._saved(entity).get("watermark"))

    def last_stats(self, entity: str) -> dict:
        return self._saved(entity).get("stats") or {}

    def set(self, entity: str, cursor: Cursor | None, stats: dict) -> None:
        from airflow.sdk import Variable

        value = json.dumps({"watermark": cursor.to_json() if cursor else None, "stats": stats}, default=str)
        Variable.set(VARIABLE_PREFIX + entity, value, description=f"last verified sync position of {entity}")


def refuse_ahead(store: StateStore, entity: str, watermark: Cursor | None, clock: datetime) -> None:
    """Fail at once when the stored `watermark` lies past Base A's `clock` (beyond CLOCK_TOLERANCE).

    The sync caps a watermark it reaches at the clock, but one set by hand is read as stored: a read
    after it finds nothing, the watermark never moves back, and every run is green until then."""
    if watermark is None or watermark.updated_at <= clock + CLOCK_TOLERANCE:
        return
    raise WatermarkAhead(
        f"{store.name(entity)} holds the watermark {watermark.updated_at.isoformat()} (key {watermark.id}), "
        f"after Base A's clock {clock.isoformat()}: no run would read a change until then. Set it by hand, or "
        "Base A's clock went back (a failover, a clock correction)? Set it to a position at or before Base A's "
        f"clock, or delete it to load {entity} from the start (rows Base B holds come back unchanged); a "
        "full_refresh does not mend it (it keeps the watermark it finds)"
    )


def _position(name: str, raw: str) -> dict:
    """A saved position as the sync wrote it; an edit by hand that is not one fails at once, named."""
    try:
        saved = json.loads(raw)
        if not isinstance(saved, dict) or not isinstance(saved.get("stats") or {}, dict):
            raise ValueError("not an object with an object `stats`")
        watermark = saved.get("watermark")
        if watermark and datetime.fromisoformat(watermark["updated_at"]).tzinfo is None:
            raise ValueError(f"updated_at {watermark['updated_at']!r} has no zone (write +00:00 for UTC)")
        Cursor.from_json(watermark)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ConfigurationError(
            f"Airflow Variable {name!r} is no sync position ({type(error).__name__}: {error}): expected "
            '{"watermark": {"updated_at": "<ISO time with zone>", "id": <key>} or null, "stats": {...}}; '
            "correct it, or delete it to load the entity from the start"
        ) from None
    return saved


class _HeldDeletes(ABC):
    """The events path's holds: one record per hold (a batch of held deletes), named by entity and
    time, never rewritten by the batch path. Written by one side and settled by name, no hold
    recorded while the batch settles others is lost; a subclass says where records are kept."""

    @abstractmethod
    def _names(self, prefix: str) -> list[str]:
        """The names of the records that start with `prefix`."""

    @abstractmethod
    def _read(self, name: str) -> HeldByEvents | None: ...

    @abstractmethod
    def _write(self, entity: str, name: str, held: HeldByEvents | None) -> None: ...

    def get(self, entity: str) -> HeldByEvents | None:
        holds = {}
        for name in self._holds(entity):
            held = self._read(name)
            if held is None:  # settled since it was listed, or its store did not answer: not taken as none
                raise TransientError(f"the hold {name!r} of {entity}'s deletes was listed but could not be read")
            holds[name] = held
        return HeldByEvents.of(holds)

    def hold(self, entity: str, count: int, at: Sequence[Span] = ()) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{HELD_DELETES_PREFIX}{entity}.{stamp}-{uuid.uuid4().hex[:6]}"
        self._write(entity, name, HeldByEvents.now(count, at))

    def held_at(self, entity: str) -> tuple[Span, ...]:
        """Where the messages of the entity's holds sit (a record an earlier version wrote says nothing)."""
        at: list[Span] = []
        for name in self._holds(entity):
            held = self._read(name)
            if held is None:  # as `get`: a hold not read is never taken as none
                raise TransientError(f"the hold {name!r} of {entity}'s deletes was listed but could not be read")
            at += held.at
        return tuple(at)

    def approved(self, entity: str, count: int) -> None:
        """Applied approved replays take their count off the oldest holds first."""
        for name in self._holds(entity):
            if count <= 0:
                return
            held = self._read(name)
            if held is None:  # settled by the batch meanwhile
                continue
            taken = min(count, held.held)
            count -= taken
            self._write(entity, name, replace(held, held=held.held - taken) if held.held > taken else None)

    def release(self, entity: str, seen: HeldByEvents) -> None:
        for name in seen.names:
            self._write(entity, name, None)

    def _holds(self, entity: str) -> list[str]:
        """The entity's hold records, oldest first (an entity's name may start another's: `.` ends it;
        the bare name is the one record an earlier version kept)."""
        bare = HELD_DELETES_PREFIX + entity
        return sorted(name for name in self._names(bare) if name == bare or name.startswith(bare + "."))


class MemoryHeldDeletes(_HeldDeletes):
    """For tests and one-off runs."""

    def __init__(self):
        self.saved: dict[str, HeldByEvents] = {}

    def _names(self, prefix: str) -> list[str]:
        return [name for name in self.saved if name.startswith(prefix)]

    def _read(self, name: str) -> HeldByEvents | None:
        return self.saved.get(name)

    def _write(self, entity: str, name: str, held: HeldByEvents | None) -> None:
        if held is None:
            self.saved.pop(name, None)
        else:
            self.saved[name] = held


class VariableHeldDeletes(_HeldDeletes):
    """A Variable per hold while it waits (Admin → Variables), deleted once it is settled. Listing
    them fails loudly when Airflow does not answer; a read that fails is taken as a hold, never as none."""

    def _names(self, prefix: str) -> list[str]:
        from airflow.sdk import Variable

        return list(Variable.keys(prefix=prefix))

    def _read(self, name: str) -> HeldByEvents | None:
        from airflow.sdk import Variable

        raw = Variable.get(name, default=None)
        if not raw:
            return None
        try:
            return HeldByEvents.from_json(json.loads(raw))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ConfigurationError(
                f"Airflow Variable {name!r} is not what the events path writes ({type(error).__name__}: {error}): "
                'expected {"held": <count>, "since": "<ISO time>", "last": "<ISO time>", optionally "at": {"<topic>": '
                '{"<partition>": [<first offset>, <last offset>]}}}; delete it once the held '
                "deletes are settled (approved, or Base A fixed)"
            ) from None

    def _write(self, entity: str, name: str, held: HeldByEvents | None) -> None:
        from airflow.sdk import Variable

        if held is None:
            Variable.delete(name)
            return
        description = (
            f"deletes of {entity} the events path holds as MassDeleteHeld dead letters: the batch asks before "
            "deleting any row of it until they are approved"
        )
        Variable.set(name, json.dumps(held.to_json()), description=description)

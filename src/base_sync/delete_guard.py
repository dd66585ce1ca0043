"""The mass-delete circuit breaker: a run deletes at most a small share of an entity's synced rows
unless an operator approved more.

Whatever the cause (a truncated source table, a wrong soft-delete rule, a changed filter), the
deletes of a run are found before any is sent. Every delete source goes through the same two
steps, which is all a new source has to do:

1. **Find** (no writes): each record found is given to `PlannedDeletes.add` with its source's name.
   It counts every record and keeps at most `limit + 1` of them (and their keys, to count a key
   two sources both name once), so memory stays bounded whatever the run would delete.
2. **Send**, only when the total is within the `DeleteBudget` or approved: the records held (when
   they are all held), else a second pass over the sources in which every chunk is first taken
   from an `Allowance`, which stops the run before a chunk that would pass what was allowed (rows
   deleted since the plan are counted against it too).

Over the budget nothing is deleted: `MassDeleteBlocked` (terminal: a retry finds the same) carries
the `DeletePlan`, which says how many rows, which share of the synced rows, the limit and from
which source.

The events path (`base_sync.events`) cannot count a run's deletes before sending: they arrive in
batches. `RunDeleteGuard` keeps the same `DeleteBudget` per entity across one run's batches: the
deletes within it are sent, those past it are held (dead letters an operator approves by replaying
them). A mass delete in Base A reaches both paths: while the events path holds deletes of an entity
(`HeldByEvents`, kept in a `HeldDeletesStore` both paths read), every delete the batch path finds of
it needs approval, so the rest of a mass delete is never applied unasked, whatever its share.
Nothing here imports Airflow.
"""

from __future__ import annotations

import bisect
import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from base_sync.errors import TerminalError
from base_sync.settings import SyncSettings

# `approved=ANY_NUMBER`: an operator approved the run's deletes whatever their number (the DAG param).
ANY_NUMBER = sys.maxsize

# The delete sources' names, as the plan and the logs show them.
DELETE_LOG = "delete log"
KEY_COMPARISON = "key comparison"
LEFT_SCOPE = "soft deletes and filter"  # rows changed in the window that the mapping no longer syncs


@dataclass(frozen=True)
class DeleteBudget:
    """How many deletes a run may send unasked: max(SYNC_MASS_DELETE_MIN_ROWS, ceil(share × synced rows))."""

    share: float
    min_rows: int
    synced: int | None = None  # live synced rows of Base B; None when not needed (few deletes)

    @classmethod
    def of(cls, settings: SyncSettings, synced: int | None = None) -> DeleteBudget:
        return cls(settings.mass_delete_share, settings.mass_delete_min_rows, synced)

    @property
    def limit(self) -> int:
        if self.synced is None:
            return self.min_rows
        return max(self.min_rows, math.ceil(self.share * self.synced))

    def allowance(self, approved: int | None) -> int:
        """The most deletes a run may send: the limit, or what an operator approved if more."""
        return max(self.limit, approved or 0)


# Where a message sits: (topic, partition, offset).
Position = tuple[str, int, int]
# Where a hold's messages sit, per partition: (topic, partition, first offset, last offset).
Span = tuple[str, int, int, int]


def spans(held: Sequence[Position], admitted: Sequence[Position] = ()) -> tuple[Span, ...]:
    """Runs of the held messages' offsets per partition, cut wherever an admitted one lies between
    two held ones (a batch is in key order, not offset order): a delete admitted but never sent
    before a crash must be budgeted again when read again, not taken for a held one. A mass delete's
    held messages, one statement's, make one run."""
    by_partition: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in held:
        by_partition.setdefault((topic, partition), []).append(offset)
    cuts: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in admitted:
        cuts.setdefault((topic, partition), []).append(offset)
    runs = []
    for (topic, partition), offsets in sorted(by_partition.items()):
        offsets.sort()
        between = sorted(cuts.get((topic, partition), ()))
        first = last = offsets[0]
        for offset in offsets[1:]:
            if bisect.bisect_right(between, last) < bisect.bisect_left(between, offset):  # an admitted one between
                runs.append((topic, partition, first, last))
                first = offset
            last = offset
        runs.append((topic, partition, first, last))
    return tuple(runs)


def within(position: Position, held_at: Sequence[Span]) -> bool:
    topic, partition, offset = position
    return any(t == topic and p == partition and first <= offset <= last for t, p, first, last in held_at)


@dataclass(frozen=True)
class HeldByEvents:
    """Deletes of an entity the events path's breaker holds as dead letters no one approved yet: one
    hold (a batch of held deletes), or the sum of an entity's holds (`of`) with their `names`."""

    held: int
    since: str  # when the first of them was held (ISO 8601, UTC)
    last: str  # when the last of them was held
    names: tuple[str, ...] = ()  # the holds summed here, as their store names them (not in to_json)
    # One hold: where its held messages sit, per partition (a run that reads them again holds them
    # again, uncounted: `RunDeleteGuard.held_before`). Empty for a sum, and for a record an earlier
    # version wrote.
    at: tuple[Span, ...] = ()

    @classmethod
    def now(cls, held: int, at: Sequence[Span] = ()) -> HeldByEvents:
        now = datetime.now(UTC).isoformat()
        return cls(held, now, now, at=tuple(at))

    @classmethod
    def of(cls, holds: dict[str, HeldByEvents]) -> HeldByEvents | None:
        """The holds by name summed up; None for none."""
        if not holds:
            return None
        return cls(
            sum(h.held for h in holds.values()),
            min(h.since for h in holds.values()),
            max(h.last for h in holds.values()),
            tuple(sorted(holds)),
        )

    @classmethod
    def from_json(cls, data: dict) -> HeldByEvents:
        at = tuple(
            (str(topic), int(partition), int(first), int(last))
            for topic, partitions in (data.get("at") or {}).items()
            for partition, runs in partitions.items()
            for first, last in (runs if runs and isinstance(runs[0], list) else [runs])  # one run: [first, last]
        )
        return cls(int(data["held"]), str(data["since"]), str(data["last"]), at=at)

    def to_json(self) -> dict:
        data = {"held": self.held, "since": self.since, "last": self.last}
        if self.at:  # {topic: {partition: [[first offset, last offset], ...]}}
            at: dict[str, dict[str, list[list[int]]]] = {}
            for topic, partition, first, last in self.at:
                at.setdefault(topic, {}).setdefault(str(partition), []).append([first, last])
            data["at"] = at
        return data

    def text(self, entity: str) -> str:
        return (
            f"the events path holds {self.held} deletes of {entity} past its limit as MassDeleteHeld dead letters "
            f"(held from {self.since} to {self.last}): until they are approved, every delete of {entity} needs approval"
        )


class HeldDeletesStore(Protocol):
    """Where the events path says which entities' deletes it holds, and the batch path reads it."""

    def get(self, entity: str) -> HeldByEvents | None: ...

    def hold(self, entity: str, count: int, at: Sequence[Span] = ()) -> None:
        """The events path held `count` more deletes of `entity`, whose messages sit within `at`."""
        ...

    def held_at(self, entity: str) -> tuple[Span, ...]:
        """Where the messages of the entity's holds sit (the holds that say so)."""
        ...

    def approved(self, entity: str, count: int) -> None:
        """The events path applied `count` held deletes an operator approved by replaying them."""
        ...

    def release(self, entity: str, seen: HeldByEvents) -> None:
        """The batch path deleted with an approval after reading `seen`: the holds it names are settled
        (those made since are not)."""
        ...


DISTINCT_KEYS = 250_000  # keys a plan remembers to count each once: ~15 MB at the most


class PlannedDeletes:
    """The deletes found before any is sent: every one counted, at most `capacity` held.

    `counted=False` records are sent but not counted (the delete log's look-back: entries an
    earlier run applied already). A key several sources name counts once, and is held once, while
    at most DISTINCT_KEYS keys (or `capacity`, if more) are counted: a soft-deleted row is named by
    the key comparison and by the rows that left the scope, and the operator asked to approve must
    see the rows, not the sum (past that, a key named twice may count twice: `exact` turns False,
    the total is an upper bound). A key named again with another version (deleted, put back and
    deleted again in one window) is held again, uncounted: the older delete alone would lose
    against the row put back. Past `capacity` records the records are dropped (`complete`
    turns False): a second pass sends them."""

    def __init__(self, capacity: int, grow: Callable[[], int] | None = None):
        self.capacity = capacity
        self._grow = grow  # called once when the capacity is reached: the capacity it may grow to
        self.held: list[tuple[str, dict]] = []
        self._keys: dict[int, str] | None = {}  # key -> the version last held for it
        self.by_source: Counter[str] = Counter()
        self.complete = True

    @property
    def total(self) -> int:
        return sum(self.by_source.values())

    @property
    def exact(self) -> bool:
        return self._keys is not None

    def _room(self, used: int) -> bool:
        if used >= self.capacity and self._grow is not None:
            self.capacity, self._grow = max(self.capacity, self._grow()), None
        return used < self.capacity

    def add(self, source: str, records: list[dict], counted: bool = True) -> None:
        for record in records:
            if counted:
                key = record["source_id"]
                version = record["source_updated_at"]
                seen = self._keys.get(key) if self._keys is not None else None
                if seen == version:
                    continue  # another source named it: counted and held already
                if seen is not None:
                    self._keys[key] = version  # held again below, counted once
                else:
                    self.by_source[source] += 1
                    if self._keys is not None:
                        if len(self._keys) < max(self.capacity, DISTINCT_KEYS):
                            self._keys[key] = version
                        else:
                            self._keys = None
            if self.complete:
                if self._room(len(self.held)):
                    self.held.append((source, record))
                else:
                    self.complete, self.held = False, []

    def from_source(self, source: str) -> list[dict]:
        return [record for name, record in self.held if name == source]


@dataclass(frozen=True)
class DeletePlan:
    """What a run would delete, against its budget: the circuit breaker's decision and its reasons."""

    entity: str
    total: int
    by_source: dict[str, int]
    budget: DeleteBudget
    reasons: dict[str, str] = field(default_factory=dict)  # why a source ran (e.g. the key comparison's reason)
    exact: bool = True  # False: past the held records a key two sources named may count twice
    held_by_events: HeldByEvents | None = None  # any delete found needs approval while the events path holds some

    @property
    def limit(self) -> int:
        return self.budget.limit

    @property
    def share(self) -> float | None:
        """The deletes as a share of Base B's synced rows (None when Base B's count was not needed)."""
        if self.budget.synced is None:
            return None
        return self.total / self.budget.synced if self.budget.synced else (1.0 if self.total else 0.0)

    @property
    def within_budget(self) -> bool:
        """Deletes the run may make unasked: within the limit, and none while the events path holds
        deletes of the entity (a mass delete it met: its rest must reach a person once, not pass here)."""
        return self.total <= self.limit and not (self.held_by_events and self.total)

    def allowed(self, approved: int | None) -> bool:
        if approved is None:
            return self.within_budget
        # While the events path holds deletes, an approval covers the rows it answered and no more
        # (`approved_rows` adds no limit then): deletes held since the prompt must not pass unseen.
        return self.total <= (approved if self.held_by_events else self.budget.allowance(approved))

    def sources_text(self) -> str:
        parts = []
        for source, count in sorted(self.by_source.items()):
            why = f" ({self.reasons[source]})" if source in self.reasons else ""
            parts.append(f"{count} from {source}{why}")
        return ", ".join(parts) or "none found"

    @property
    def summary(self) -> str:
        """How many, which share of the synced rows, the limit, and from which source."""
        count = f"{'at most ' if not self.exact else ''}{self.total}"
        share = f" = {self.share:.1%} of the {self.budget.synced} synced rows" if self.share is not None else ""
        held = f"; {self.held_by_events.text(self.entity)}" if self.held_by_events else ""
        return (
            f"{self.entity}: {count} rows to delete in Base B{share}; limit {self.limit} = max("
            f"SYNC_MASS_DELETE_MIN_ROWS={self.budget.min_rows}, SYNC_MASS_DELETE_SHARE={self.budget.share} x synced "
            f"rows); {self.sources_text()}{held}"
        )

    @property
    def why_asked(self) -> str:
        """Why a person must approve (the plan is not within the budget)."""
        return "held by the events path" if self.total <= self.limit else "over the limit"

    @property
    def message(self) -> str:
        if self.within_budget:
            return f"{self.summary}. Within the budget"
        why = self.why_asked
        letters = (
            " (approving here deletes the held ones too: replaying their dead letters afterwards changes nothing)"
            if self.held_by_events
            else ""
        )
        return (
            f"{self.summary}. MASS DELETE BLOCKED, {why}; nothing was deleted. Check Base A (a truncated "
            f"table, a changed rule or filter), then approve: the approve_mass_delete task in the Airflow UI, or a "
            f"manual run with the param approve_mass_delete{letters}"
        )

    def to_json(self) -> dict:
        share = self.share
        return {
            "entity": self.entity,
            "total": self.total,
            "exact": self.exact,
            "by_source": dict(self.by_source),
            "reasons": dict(self.reasons),
            "synced": self.budget.synced,
            "share": round(share, 6) if share is not None else None,
            "limit": self.limit,
            "within_budget": self.within_budget,
            "held_by_events": self.held_by_events.to_json() if self.held_by_events else None,
            "summary": self.summary,
            "message": self.message,
        }


class MassDeleteBlocked(TerminalError):
    """A run would delete more than its budget (or than was approved): nothing more is deleted."""

    def __init__(self, plan: DeletePlan, detail: str | None = None):
        self.plan = plan
        super().__init__(detail or plan.message)


class Allowance:
    """The deletes a second pass may still send: each chunk is taken before it is sent."""

    def __init__(self, plan: DeletePlan, approved: int | None):
        self.plan = plan
        self.allowed = self.left = plan.budget.allowance(approved)
        self.sent: Counter[str] = Counter()

    def take(self, source: str, count: int) -> None:
        if count > self.left:
            found = sum(self.sent.values()) + count
            raise MassDeleteBlocked(
                self.plan,
                f"{self.plan.entity}: mass delete blocked while sending: {source} found more deletes than allowed "
                f"({found} so far, allowed {self.allowed}); "
                f"sent before the stop: {dict(self.sent)}. The plan was: {self.plan.message}",
            )
        self.left -= count
        self.sent[source] += count


@dataclass(frozen=True)
class Admission:
    """The breaker's answer to one batch of an entity's delete events: how many go, how many are held."""

    entity: str
    admitted: int
    held: int
    requested: int  # the run's counted deletes of the entity so far, this batch's included
    budget: DeleteBudget

    @property
    def reason(self) -> str:
        """Why deletes are held: how many, against which limit and why that limit."""
        synced = f" x {self.budget.synced:,} synced rows" if self.budget.synced is not None else ""
        return (
            f"mass delete held: {self.requested:,} deletes of {self.entity} in this run exceed its limit of "
            f"{self.budget.limit:,} = max(SYNC_MASS_DELETE_MIN_ROWS={self.budget.min_rows}, "
            f"SYNC_MASS_DELETE_SHARE={self.budget.share}{synced}); those past the limit are held, not deleted"
        )


class RunDeleteGuard:
    """The breaker on the events path: per entity, the deletes one run sends, across its batches.

    Deletes within the `DeleteBudget` go; past it `admit` holds them (the caller keeps them for an
    operator), so one run never deletes more than the limit of an entity unasked. Base B's synced
    rows are counted once per entity and run, and only once the run's deletes pass
    SYNC_MASS_DELETE_MIN_ROWS (the limit depends on them only then)."""

    def __init__(
        self, rule: DeleteBudget, synced_rows: Callable[[str], int], held_deletes: HeldDeletesStore | None = None
    ):
        self.rule = rule  # share and floor; its `synced` is filled per entity
        self._synced_rows = synced_rows
        self._held_deletes = held_deletes  # told of every hold before the letters exist: the batch path reads it
        self.requested: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self._budgets: dict[str, DeleteBudget] = {}
        self._held_at: dict[str, tuple[Span, ...]] = {}  # per entity, the holds of earlier runs, read once

    def admit(self, entity: str, count: int, at: Sequence[Position] = ()) -> Admission:
        """Of `count` more deletes of `entity`, how many may be sent: the rest are over the run's limit.
        `at`: where their messages sit, in the same order (the hold records where the held ones do)."""
        self.requested[entity] += count
        budget = self._budget(entity)
        admitted = max(0, min(count, budget.limit - self.sent[entity]))
        self.sent[entity] += admitted
        if count > admitted and self._held_deletes is not None:
            self._held_deletes.hold(entity, count - admitted, spans(at[admitted:], at[:admitted]))
        return Admission(entity, admitted, count - admitted, self.requested[entity], budget)

    def held_before(self, entity: str, positions: Sequence[Position]) -> list[bool]:
        """Which of these messages (deletes of rows Base B holds live) lie where an earlier run's hold
        of `entity` recorded its messages: read again (that run stopped before committing), they were
        held then and are held again, neither counted against this run's budget nor recorded anew.
        The holds are read once per entity and run (this run's own are never read again in it)."""
        if self._held_deletes is None or not positions:
            return [False] * len(positions)
        if entity not in self._held_at:
            self._held_at[entity] = tuple(self._held_deletes.held_at(entity))
        held_at = self._held_at[entity]
        return [bool(held_at) and within(position, held_at) for position in positions]

    def approved(self, entity: str, count: int) -> None:
        """`count` held deletes of `entity`, approved by a replay, were applied."""
        if count and self._held_deletes is not None:
            self._held_deletes.approved(entity, count)

    def _budget(self, entity: str) -> DeleteBudget:
        if entity in self._budgets:
            return self._budgets[entity]
        if self.requested[entity] <= self.rule.min_rows:
            return replace(self.rule, synced=None)  # within the floor whatever Base B holds: no count needed
        # Counted now, after the run's first deletes (at most the floor): add them back, as the run began.
        synced = self._synced_rows(entity) + self.sent[entity]
        budget = self._budgets[entity] = replace(self.rule, synced=synced)
        return budget

"""What each batch step returns: small typed results, serialised with `to_json` for XCom and state.

The JSON shapes are what the DAG runs store with the watermark (`stats`), so they stay stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from base_sync.key_ranges import KeyRange
from base_sync.source import Cursor


@dataclass
class LoadReport:
    """What a load did, and the window it covered: (since, until] in (updated_at, id) order."""

    entity: str
    previous: Cursor | None  # the watermark the load started from
    since: Cursor | None  # lower bound of the window (the watermark less the look-back)
    until: Cursor | None  # the last row extracted; None when nothing was
    clock: datetime | None = None  # Base A's time when the extract began: the watermark never passes it
    counts: dict = field(default_factory=dict)
    seconds: float = 0.0
    scan: BucketScan | None = None  # a table without a cursor: what its bucket checksums showed

    def to_json(self) -> dict:
        def c(cursor):
            return cursor.to_json() if cursor else None

        data = {
            "entity": self.entity,
            "previous": c(self.previous),
            "since": c(self.since),
            "until": c(self.until),
            "clock": self.clock.isoformat() if self.clock else None,
            "counts": dict(self.counts),
            "seconds": round(self.seconds, 3),
        }
        if self.scan is not None:
            data["scan"] = self.scan.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict) -> LoadReport:
        return cls(
            entity=data["entity"],
            previous=Cursor.from_json(data["previous"]),
            since=Cursor.from_json(data["since"]),
            until=Cursor.from_json(data["until"]),
            clock=datetime.fromisoformat(data["clock"]) if data.get("clock") else None,
            counts=data["counts"],
            seconds=data["seconds"],
            scan=BucketScan.from_json(data["scan"]) if data.get("scan") else None,
        )


@dataclass
class BucketScan:
    """A load of a table without a cursor (`base_sync.checksummed`): what it compared and re-read
    (the cost), and the checksums of the buckets Base B now holds, which the commit stores.

    `checksums` is {bucket: (live rows, checksum)} with bucket = key // bucket_size; `changed` the
    buckets re-read (every bucket on a first run or a full refresh), `gone` those no longer there."""

    bucket_size: int
    checksums: dict[int, tuple[int, str]]
    compared: int = 0  # buckets compared with the stored checksums (0: nothing stored, all read)
    changed: list[int] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    rows_reread: int = 0
    checksum_seconds: float = 0.0  # the aggregate over Base A's live rows

    def cost(self) -> dict:
        """What the run paid to find its changes, for the task log and the run's stats."""
        return {
            "bucket_size": self.bucket_size,
            "buckets_compared": self.compared,
            "buckets_changed": len(self.changed),
            "buckets_gone": len(self.gone),
            "rows_reread": self.rows_reread,
            "checksum_seconds": round(self.checksum_seconds, 3),
        }

    def state(self) -> dict:
        """The stored form: what the next run compares against."""
        return {"bucket_size": self.bucket_size, "buckets": {str(b): list(s) for b, s in self.checksums.items()}}

    def to_json(self) -> dict:
        return {**self.cost(), **self.state(), "changed": self.changed, "gone": self.gone}

    @classmethod
    def from_json(cls, data: dict) -> BucketScan:
        return cls(
            bucket_size=data["bucket_size"],
            checksums=checksums_of(data),
            compared=data["buckets_compared"],
            changed=list(data["changed"]),
            gone=list(data["gone"]),
            rows_reread=data["rows_reread"],
            checksum_seconds=data["checksum_seconds"],
        )


def checksums_of(state: dict) -> dict[int, tuple[int, str]]:
    """{bucket: (rows, checksum)} from a stored `BucketScan.state()`."""
    return {int(b): (int(rows), str(digest)) for b, (rows, digest) in state["buckets"].items()}


@dataclass(frozen=True)
class VerifyResult:
    """How the window compared: rows checked, re-sent, newer in Base B, moved on, in quarantine."""

    rows: int = 0
    repaired: int = 0
    ahead: int = 0  # rows Base B held newer (the events path was first, or Base A's stamp went back)
    moved_on: int = 0  # rows that changed again or were deleted in Base A since the extract
    quarantined: int = 0  # missing rows that are open rejections

    def to_json(self) -> dict:
        return {
            "rows": self.rows,
            "repaired": self.repaired,
            "ahead": self.ahead,
            "moved_on": self.moved_on,
            "quarantined": self.quarantined,
        }


@dataclass(frozen=True)
class DeleteCounts:
    """Deletes sent and how many of them applied."""

    deleted: int = 0
    not_applied: int = 0

    def __add__(self, other: DeleteCounts) -> DeleteCounts:
        return DeleteCounts(self.deleted + other.deleted, self.not_applied + other.not_applied)


@dataclass(frozen=True)
class LoggedDeletes:
    """What reading the delete log did: entries read, deletes applied, and the position reached."""

    position: Cursor
    read: int = 0
    counts: DeleteCounts = DeleteCounts()
    restored: int = 0  # logged deletes not sent: Base A holds their keys again, their rows sent and kept


@dataclass(frozen=True)
class KeyComparison:
    """What comparing every key did: buckets on Base B's side, those that differed, deletes sent."""

    buckets: int
    suspect_buckets: int
    counts: DeleteCounts = DeleteCounts()
    resent: int = 0  # rows Base B lacked (or held older, when versions were compared) than Base A: re-sent
    replaced: int = 0  # rows Base B held newer than Base A (its stamp went back): Base A's state written
    ahead: int = 0  # rows Base B holds newer than Base A, still (no write mended them)


@dataclass(frozen=True)
class RunMark:
    """The sync mark a run wrote in Base B before its first write (`sync.mark_run`), and whether Base B
    held an older mark than the last commit's then (restored since: the run compares every key)."""

    token: str | None  # None: the API keeps no sync marks
    went_back: str | None = None

    def to_json(self) -> dict:
        return {"token": self.token, "went_back": self.went_back}

    @classmethod
    def from_json(cls, data: dict | None) -> RunMark | None:
        return cls(data.get("token"), data.get("went_back")) if data else None


@dataclass(frozen=True)
class DeleteReport:
    """What `propagate_deletes` did; `log_position` and `keys_compared_at` are what the next run needs."""

    counts: DeleteCounts = DeleteCounts()
    from_log: int = 0
    log_position: Cursor | None = None
    keys_compared_at: str | None = None
    comparison: KeyComparison | None = None  # None when this run did not compare keys
    plan: dict | None = None  # the circuit breaker's count and budget (`delete_guard.DeletePlan.to_json`)
    left_scope: int = 0  # rows deleted because they changed and the mapping's soft-delete rule or filter drops them
    resent_unique: int = 0  # rejected rows sent again (a unique value another row held, maybe let go since)
    closed_rejections: int = 0  # rejected rows gone from Base A: deletes sent, closing their rejections
    restored: int = 0  # logged deletes whose keys Base A holds again (put back): rows sent, not deletes

    @property
    def deleted(self) -> int:
        return self.counts.deleted

    def to_json(self) -> dict:
        data = {
            "deleted": self.counts.deleted,
            "not_applied": self.counts.not_applied,
            "from_log": self.from_log,
            "log_position": self.log_position.to_json() if self.log_position else None,
            "keys_compared_at": self.keys_compared_at,
        }
        if self.comparison is not None:
            data.update(buckets=self.comparison.buckets, suspect_buckets=self.comparison.suspect_buckets)
            if self.comparison.resent or self.comparison.replaced or self.comparison.ahead:
                data.update(
                    resent_behind=self.comparison.resent,
                    replaced_ahead=self.comparison.replaced,
                    ahead=self.comparison.ahead,
                )
        if self.plan is not None:
            data["planned"] = self.plan
        if self.left_scope:
            data["left_scope"] = self.left_scope
        if self.resent_unique:
            data["resent_unique"] = self.resent_unique
        if self.closed_rejections:
            data["closed_rejections"] = self.closed_rejections
        if self.restored:
            data["restored"] = self.restored
        return data


@dataclass(frozen=True)
class ReplayReport:
    """Rejected rows sent again, the bulk counts of that send, how many stay rejected, and how many
    were gone from Base A (deletes sent, closing their rejections)."""

    replayed: int
    counts: dict
    still_rejected: int
    closed_rejections: int = 0

    def to_json(self) -> dict:
        return {
            "replayed": self.replayed,
            **self.counts,
            "closed_rejections": self.closed_rejections,
            "still_rejected": self.still_rejected,
        }


@dataclass(frozen=True)
class Partition:
    """One key range of a partitioned load: what a mapped task receives.

    `clock` is Base A's time when the load was planned, before any partition read: the watermark
    of the whole load never passes it, whatever a partition retried later reads."""

    entity: str
    index: int
    of: int  # how many partitions the load has
    keys: KeyRange
    clock: datetime

    @property
    def label(self) -> str:
        """How the UI names its mapped task: which range of how many, and its keys."""
        return f"{self.index + 1}/{self.of}: keys {self.keys.low}..{self.keys.high}"

    def to_json(self) -> dict:
        return {
            "entity": self.entity,
            "index": self.index,
            "of": self.of,
            **self.keys.to_json(),
            "clock": self.clock.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict) -> Partition:
        return cls(
            data["entity"], data["index"], data["of"], KeyRange.from_json(data), datetime.fromisoformat(data["clock"])
        )


@dataclass(frozen=True)
class PartitionReport:
    """What one partition loaded (its highest (updated_at, id) read) and how its key range verified."""

    partition: Partition
    until: Cursor | None
    counts: dict
    verified: VerifyResult
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {
            "partition": self.partition.to_json(),
            "until": self.until.to_json() if self.until else None,
            "counts": dict(self.counts),
            "verify": self.verified.to_json(),
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_json(cls, data: dict) -> PartitionReport:
        return cls(
            Partition.from_json(data["partition"]),
            Cursor.from_json(data["until"]),
            data["counts"],
            VerifyResult(**data["verify"]),
            data["seconds"],
        )

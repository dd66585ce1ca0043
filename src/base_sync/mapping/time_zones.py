"""Local wall-clock DATETIMEs to UTC, by one rule both paths apply, in Python and in SQL.

A wall time is read with the offset in force at it; around a daylight-saving change:

- **ambiguous** (the hour repeated when clocks go back): the earlier reading, the offset before
  the change (what `zoneinfo` does with `fold=0`);
- **non-existent** (the hour skipped when clocks go forward): the offset before the change, so
  02:30 on a spring-forward night in Europe/Berlin is 01:30 UTC, the same instant as 03:30 CEST.

Both cases reduce to one boundary per change: the wall time `T + max(before, after)` (T the UTC
instant of the change); at or after it the new offset applies. The batch extract pushes the rule
into SQL as nested CASEs that bisect those boundaries, and the events path applies the same
boundaries with a binary search, so a row's version is the same number on both paths. Bisecting
costs every value about log2(changes) comparisons (7 for Europe/Berlin); a flat CASE, newest
boundary first, took dozens for a row of a few years ago and all of them for a NULL (a nullable
cursor column), which made the mapped extract of bench/batch_sync.py several times slower.
Changes are listed from 1970 to five years ahead; a wall time after the last one keeps its offset.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from sqlalchemy import case, not_

FIRST_YEAR = 1970
YEARS_AHEAD = 5


@dataclass(frozen=True)
class ZoneRule:
    """Wall-time boundaries (ascending) and the offset (seconds) in force from each; `first` before them."""

    name: str
    first: int
    boundaries: tuple[datetime, ...]
    offsets: tuple[int, ...]

    @property
    def fixed(self) -> bool:
        return not self.boundaries

    @property
    def lowest(self) -> int:
        return min((self.first, *self.offsets))

    @property
    def highest(self) -> int:
        return max((self.first, *self.offsets))

    def from_wall(self, floor: datetime) -> ZoneRule:
        """The same rule for wall times at or after `floor` only: the boundaries before it dropped."""
        index = bisect_right(self.boundaries, floor)
        first = self.first if index == 0 else self.offsets[index - 1]
        return ZoneRule(self.name, first, self.boundaries[index:], self.offsets[index:])

    def repeat_started(self, instant: datetime) -> datetime | None:
        """Where the earlier reading of a repeated hour starts (UTC), if `instant` lies in it or in
        the hour of its second pass; None otherwise. A row written in the second pass is read
        (earlier reading) up to an hour before the instants already seen: until the second pass
        is over, a read after `instant` must start there instead."""
        naive = instant.astimezone(UTC).replace(tzinfo=None)
        before = self.first
        for boundary, after in zip(self.boundaries, self.offsets, strict=True):
            if before > after:  # clocks went back at `change` (UTC) by `span`
                change, span = boundary - timedelta(seconds=before), timedelta(seconds=before - after)
                if change - span <= naive < change + span:
                    return (change - span).replace(tzinfo=UTC)
            before = after
        return None

    def offset_at(self, wall: datetime) -> int:
        index = bisect_right(self.boundaries, wall.replace(tzinfo=None))
        return self.first if index == 0 else self.offsets[index - 1]

    def to_utc(self, wall: datetime) -> datetime:
        """The UTC instant (aware) of a naive wall time in this zone; past datetime's end (an "open
        end" sentinel, 9999-12-31 23:59:59 west of UTC), that end: the end of time stays the end."""
        naive = wall.replace(tzinfo=None)
        offset = self.offset_at(naive)
        if naive > _last_wall(offset):
            return datetime.max.replace(tzinfo=UTC)
        return (naive - timedelta(seconds=offset)).replace(tzinfo=UTC)

    def sql_to_utc(self, wall, backend):
        """The same as a SQL expression over a wall-time column, in Base A's `backend`'s SQL."""
        if self.fixed:
            return _shifted(wall, backend, self.first) if self.first else backend.comparable_stamp(wall)
        return self._bisect(wall, backend, 0, len(self.boundaries))

    def _bisect(self, wall, backend, low: int, high: int):
        """The stretches low..high (stretch 0 before the first boundary, stretch i from boundary i-1),
        halved by a CASE until one is left; a NULL takes the ELSE side down to a NULL."""
        if low == high:
            offset = self.first if low == 0 else self.offsets[low - 1]
            # Only the last stretch reaches datetime's end: the others end at a boundary (years ahead at most).
            return (
                _shifted(wall, backend, offset) if low == len(self.boundaries) else backend.shift_seconds(wall, -offset)
            )
        middle = (low + high + 1) // 2
        later = self._bisect(wall, backend, middle, high)
        from_boundary = not_(backend.wall_before(wall, self.boundaries[middle - 1]))  # whole seconds: exact
        return case((from_boundary, later), else_=self._bisect(wall, backend, low, middle - 1))


def _last_wall(offset: int) -> datetime:
    """The last wall time at `offset` whose UTC instant datetime (and DATETIME) can hold."""
    return datetime.max + timedelta(seconds=offset) if offset < 0 else datetime.max


def _shifted(wall, backend, offset: int):
    """`wall` at `offset` in UTC, as SQL; west of UTC a wall time past `_last_wall` (the database
    would give NULL: no version) is held at datetime's end, as `ZoneRule.to_utc` holds it."""
    moved = backend.shift_seconds(wall, -offset)
    if offset >= 0:
        return moved
    return case((backend.wall_after(wall, _last_wall(offset)), backend.datetime_value(datetime.max)), else_=moved)


@cache
def zone_rule(name: str) -> ZoneRule:
    zone = ZoneInfo(name)
    changes = list(_changes(zone))
    first = int(datetime(FIRST_YEAR, 1, 1, tzinfo=UTC).astimezone(zone).utcoffset().total_seconds())
    boundaries, offsets, before = [], [], first
    for instant, after in changes:
        boundaries.append((instant + timedelta(seconds=max(before, after))).replace(tzinfo=None))
        offsets.append(after)
        before = after
    return ZoneRule(name, first, tuple(boundaries), tuple(offsets))


def _offset(zone: ZoneInfo, instant: datetime) -> int:
    return int(instant.astimezone(zone).utcoffset().total_seconds())


def _changes(zone: ZoneInfo):
    """(UTC instant, new offset) of every offset change from 1970 to a few years ahead."""
    step = timedelta(days=1)
    instant = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
    end = datetime(datetime.now(UTC).year + YEARS_AHEAD + 1, 1, 1, tzinfo=UTC)
    current = _offset(zone, instant)
    while instant < end:
        following = instant + step
        offset = _offset(zone, following)
        if offset != current:
            # The change lies in (low, high]: bisect it to the second, in whole epoch seconds.
            low, high = int(instant.timestamp()), int(following.timestamp())
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(zone, datetime.fromtimestamp(middle, UTC)) == current:
                    low = middle
                else:
                    high = middle
            high = datetime.fromtimestamp(high, UTC)
            yield high, offset
            current = offset
        instant = following

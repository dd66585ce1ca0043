"""Key ranges of a partitioned load, and where to cut a table into them.

Pure functions over Base A's key buckets (`BaseA.key_buckets`: rows per `id // size`), so the
boundaries follow where the keys really are (quantiles), not just min and max: a table whose
early keys were mostly deleted still splits into partitions of about equal rows. A nearly gapless
key (an AUTO_INCREMENT with few deletes) is cut into equal widths without counting buckets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class KeyRange:
    """Keys low <= id <= high."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"empty key range [{self.low}, {self.high}]")

    def to_json(self) -> dict:
        return {"low": self.low, "high": self.high}

    @classmethod
    def from_json(cls, data: dict) -> KeyRange:
        return cls(int(data["low"]), int(data["high"]))


# Buckets per partition when planning: the cut is at most one bucket (1/32 of a partition) off.
BUCKETS_PER_PARTITION = 32


def bucket_size(low: int, high: int, partitions: int) -> int:
    """Keys per bucket so that the key span [low, high] makes about 32 buckets per partition."""
    return max(1, math.ceil((high - low + 1) / (partitions * BUCKETS_PER_PARTITION)))


def split(bucket_rows: dict[int, int], size: int, partitions: int) -> list[KeyRange]:
    """Cut the keys into at most `partitions` contiguous ranges of about equal rows, at bucket edges.

    `bucket_rows` is {bucket: rows} with bucket = id // size (buckets without rows may be absent).
    The ranges cover every key from the first bucket's start to the last bucket's end, with no gap
    and no overlap; none is empty of rows. Fewer ranges come back when there are fewer buckets
    with rows than partitions; none when there are no rows.
    """
    if partitions < 1 or size < 1:
        raise ValueError(f"partitions ({partitions}) and size ({size}) must be at least 1")
    filled = sorted((bucket, rows) for bucket, rows in bucket_rows.items() if rows > 0)
    total = sum(rows for _, rows in filled)
    if not total:
        return []
    ranges: list[KeyRange] = []
    start, seen = filled[0][0] * size, 0
    for position, (bucket, rows) in enumerate(filled):
        seen += rows
        last = position == len(filled) - 1
        # Close a range once it reached its share of the rows (the next cut's quantile).
        if last or (len(ranges) < partitions - 1 and seen * partitions >= total * (len(ranges) + 1)):
            end = bucket * size + size - 1
            ranges.append(KeyRange(start, end))
            start = end + 1
    return ranges


def nearly_gapless(low: int, high: int, rows: int, partitions: int) -> bool:
    """Fewer keys missing from [low, high] than one planning bucket spans: equal widths are then no
    further from equal rows than the buckets' cut (one bucket), and the bucket count, an aggregate
    over every key, can be skipped."""
    return high - low + 1 - rows <= bucket_size(low, high, partitions)


def even(low: int, high: int, partitions: int) -> list[KeyRange]:
    """[low, high] cut into `partitions` contiguous ranges of equal width (fewer if it holds fewer keys)."""
    if partitions < 1:
        raise ValueError(f"partitions ({partitions}) must be at least 1")
    span = high - low + 1
    count = min(partitions, span)
    edges = [low + span * i // count for i in range(count + 1)]
    return [KeyRange(edges[i], edges[i + 1] - 1) for i in range(count)]

"""The checksum the pipelines and the API compute the same way over (source_id, version) pairs.

It is a sum, modulo 2**64, of a 64-bit hash of each pair: independent of order, so each side can
stream its rows as its database returns them, and a single missing, extra or differently versioned
row changes it. The sync library (plugins/) imports this module so both sides share one definition.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from hashlib import blake2b

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MASK = (1 << 64) - 1


def version_micros(version: datetime) -> int:
    """Microseconds since the epoch of a version (naive values are UTC)."""
    if version.tzinfo is None:
        version = version.replace(tzinfo=UTC)
    return (version - _EPOCH) // _MICROSECOND


class VersionDigest:
    """Count and order-independent checksum of (source_id, version) pairs."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0

    def add(self, source_id: int, version: datetime) -> None:
        key = b"%d:%d" % (source_id, version_micros(version))
        self.total = (self.total + int.from_bytes(blake2b(key, digest_size=8).digest(), "big")) & _MASK
        self.count += 1

    @property
    def hexdigest(self) -> str:
        return f"{self.total:016x}"

    def as_dict(self) -> dict:
        return {"count": self.count, "digest": self.hexdigest}

"""The range a version (`source_updated_at`) may lie in: not before a floor, not further ahead of
the server's clock than a tolerance. A version outside it would win the version guard against
every correct write after it (year 7945) or sit below every real one (year 21)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from api_service.settings import ApiSettings


@dataclass(frozen=True)
class VersionBounds:
    low: datetime
    high: datetime
    # The records were read from Base A after the tombstones of their version were written (a repair):
    # as new as a tombstone, they restore the row. Otherwise the tombstone wins the tie (in an event
    # stream the delete came after the write of its version).
    restore_at_ties: bool = False

    @classmethod
    def now(cls, settings: ApiSettings, restore_at_ties: bool = False) -> VersionBounds:
        """The range for a request arriving now."""
        ahead = timedelta(seconds=settings.version_max_future_seconds)
        return cls(settings.version_floor, datetime.now(UTC) + ahead, restore_at_ties)

    def admits(self, version: datetime) -> bool:
        return self.low <= version <= self.high

    def describe(self) -> str:
        return f"from {self.low.isoformat()} to {self.high.isoformat()} (the server's clock plus its tolerance)"

    def trusted(self, column):
        """SQL: a stored version inside the range (one outside it loses to any valid write)."""
        return column.between(self.low, self.high)

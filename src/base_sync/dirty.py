"""Dirty source values: the one rule both paths apply to a date or time Base A cannot stand behind.

MariaDB under a lax `sql_mode` stores values that are no date at all: the zero date `0000-00-00`,
the zero timestamp `0000-00-00 00:00:00`, dates with a zero part (`2024-00-10`) or, with
ALLOW_INVALID_DATES, impossible ones (`2024-02-30`). Drivers hide them: mysqlclient and the binlog
decoder return None, the same as SQL NULL. Writing such a value as NULL would change the data
silently; crashing on it would stall every run. The rule instead:

    A row with an invalid value in a column the mapping reads as a date or time (its version stamp
    `updated_at`, `created_at`, a date field) is quarantined: it is not written to Base B, it is
    stored as an open rejection with the source row and one reason per bad column (for example
    "hired_at is the zero date 0000-00-00"), and the run goes on. A text field made of such a
    column (`cast: string`, a concat) takes its text, as MariaDB writes it.

The batch path finds them in SQL (`mapping.render` flags each invalid column while MySQL
renders the record), the events path in the decoded change (`debezium.decode`); both make the
reasons here. A TIMESTAMP column holds no valid value before 1970-01-01 00:00:01 UTC, so a stamp at
the epoch itself is the zero timestamp as the binlog (and Debezium, for a NOT NULL column) shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from baseab_contract.bulk_format import SOURCE_ID

# A TIMESTAMP's first valid value: anything before it (the zero timestamp) is no version.
FIRST_VERSION = datetime(1970, 1, 1, 0, 0, 1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ZERO_DATE = "0000-00-00"
ZERO_TIMESTAMP = "0000-00-00 00:00:00"
# The rendered record's extra key (batch path, MySQL) naming the invalid columns (mapping.render).
INVALID = "_invalid"
STAMPS = ("created_at", "updated_at")


@dataclass(frozen=True)
class Quarantined:
    """A source row refused for dirty values: what the API's rejection store keeps."""

    source_id: int
    version: str | None  # the row's version when it is usable, else None
    record: dict  # the source row as read (invalid values as their text)
    reasons: list[dict]  # [{"field", "message"}]

    def to_json(self) -> dict:
        return {
            "source_id": self.source_id,
            "source_updated_at": self.version,
            "record": self.record,
            "reasons": self.reasons,
        }


def key_of(row: dict | Quarantined) -> int | None:
    """The key of a chunk's row: a bulk record's `source_id`, or a quarantined row's."""
    return row.source_id if isinstance(row, Quarantined) else row[SOURCE_ID]


def reason(name: str, text: str | None, stamp: bool | None = None, version: bool | None = None) -> dict:
    """Why the value of column `name` (its text as Base A shows it, None if unknown) is refused.

    `stamp`: the column is a point in time (a TIMESTAMP or DATETIME); `version`: the row's version
    comes from it. By default, the platform's own stamps `created_at` and `updated_at` are both."""
    stamp = name in STAMPS if stamp is None else stamp
    version = name == "updated_at" if version is None else version
    if stamp:
        if text is None or text.startswith(("0000-00-00", "1970-01-01T00:00:00.000000")):
            message = f"{name} is the zero timestamp {ZERO_TIMESTAMP}"
        else:
            message = f"{name} is not a valid timestamp: {text}"
        if version:
            message += ": the row has no usable version"
        return {"field": name, "message": message}
    if text is None or text == ZERO_DATE:
        return {"field": name, "message": f"{name} is the zero date {ZERO_DATE}"}
    return {"field": name, "message": f"{name} is not a valid date: {text}"}


def iso_date(text: str) -> date | None:
    """The date a text writes as YYYY-MM-DD; None for any other text ('2024-1-5', '20240105',
    '2024-01-05 x') or no real date. What `mapping.render` tests in SQL: DATE_FORMAT gives the
    text back, and date arithmetic on it is not NULL."""
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.isoformat() == text else None


def valid_date_text(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def is_zero_stamp(value: datetime | None) -> bool:
    """The zero timestamp as a driver or the binlog gives it: None (mysqlclient) or the epoch."""
    if value is None:
        return True
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return aware < FIRST_VERSION.replace(tzinfo=UTC)

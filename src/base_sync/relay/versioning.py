"""MariaDB's system-versioned tables (`WITH SYSTEM VERSIONING`) as the batch path reads them: current rows.

Such a table keeps every row's history in the table itself, between its row start and row end
columns; a current row ends at the largest value of its type. The binlog holds what MariaDB does to
keep it: a DELETE is an UPDATE that sets the row end to now, an UPDATE also INSERTs the old image as
a history row (row end now), DELETE HISTORY deletes history rows. Read as they come, a delete would be
published as an upsert and every update followed by an upsert of the old image. `Versioned` reads
them as changes of the current rows the batch path's SELECT sees: an update that ends a row is a
delete of its key; a history row written, changed or deleted is no change. The implicit row start
and end columns (a table made `WITH SYSTEM VERSIONING` without naming them) are invisible, never in
SELECT * or information_schema.COLUMNS, so they are left out of the published images; named ones
are columns like any other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from base_sync.relay.rows import RowChange

# The row end of a current row: the largest TIMESTAMP(6) (MariaDB up to 11.4, and 11.5+ on 32-bit),
# the largest of 11.5+ on 64-bit, as mysql-replication reads them (naive UTC); the largest BIGINT
# UNSIGNED for a table versioned by transaction id.
CURRENT_ENDS = frozenset({datetime(2038, 1, 19, 3, 14, 7, 999999), datetime(2106, 2, 7, 6, 28, 15, 999999), 2**64 - 1})
SYSTEM_VERSIONED = "SYSTEM VERSIONED"  # information_schema.TABLES.TABLE_TYPE


@dataclass(frozen=True)
class Versioned:
    """A system-versioned table: its row end column, and the columns invisible to the batch path."""

    end: str
    hidden: frozenset[str] = frozenset()

    @classmethod
    def of(cls, binlog_columns: list[str], catalogue: dict[str, str | None]) -> Versioned | None:
        """From the binlog's column names and information_schema.COLUMNS ({name: GENERATION_EXPRESSION})
        of a system-versioned table; None when its row end is not among the binlog's columns."""
        named = {expression.upper(): name for name, expression in catalogue.items() if expression}
        end = named.get("ROW END", "row_end")  # unnamed: MariaDB's invisible row_start, row_end
        if end not in binlog_columns:
            return None
        return cls(end, frozenset(name for name in binlog_columns if name not in catalogue))

    def history(self, op: str, row: dict) -> bool:
        """The binlog row is of a history row: written (the old image of an update or delete), changed
        or deleted (DELETE HISTORY), never a current row's change."""
        image = row.get("before_values" if op == "u" else "values") or {}
        return self.end in image and image[self.end] not in CURRENT_ENDS

    def current(self, change: RowChange) -> RowChange:
        """The change as one of current rows: an update whose after image ends the row is a delete
        of the key (MariaDB's DELETE); the invisible columns left out."""
        ends = change.problem is None and change.op == "u" and self.end in change.after
        if ends and change.after[self.end] not in CURRENT_ENDS:
            change = dataclasses.replace(change, op="d", after=None, invalid=(change.invalid[0], ()))
        return dataclasses.replace(change, before=self._visible(change.before), after=self._visible(change.after))

    def _visible(self, image: dict | None) -> dict | None:
        if image is None or not self.hidden:
            return image
        return {name: value for name, value in image.items() if name not in self.hidden}

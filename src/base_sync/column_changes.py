"""The live definitions of the columns an entity's mapping reads, as each commit records them.

An ALTER by Base A's owners may rewrite every stored value of a mapped column without touching a
stamp (`MODIFY gehalt DECIMAL(10,0)` rounds 500.25 to 500): the binlog holds the DDL alone, no
window reads the rows, and the key comparison (keys and versions) finds nothing. The next batch run
compares the definitions with the recorded ones, and a change makes it a full refresh, as a
changed mapping does (`sync.refresh_wanted`). The definitions come from the schema check every
batch task makes anyway (`mapping.check`): no read of their own."""

from __future__ import annotations

import re

COLUMN_DEFINITIONS = "column_definitions"  # in the committed stats: {column: definition} the load read with
NOT_READ = "not read"  # a column only one side holds (the mapping changed too)


def changes(table: str, recorded: dict[str, str], live: dict[str, str]) -> list[str]:
    """Each column whose definition differs, for the log:
    `personal.gehalt: DECIMAL(10,2) NULL, now DECIMAL(10,0) NULL`."""
    found = []
    for column in dict.fromkeys([*recorded, *live]):
        before, now = recorded.get(column, NOT_READ), live.get(column, NOT_READ)
        if canonical(before) != canonical(now):
            found.append(f"{table}.{column}: {before}, now {now}")
    return found


# What a server upgrade writes otherwise in the catalogue without a value changing: MariaDB 10.6 and
# MySQL 8.0.30 say utf8mb3 for utf8; MySQL 8.0.19 drops integer display widths (keeping TINYINT(1))
# and YEAR(4)'s. Compared in this form on both sides, recorded and live, so neither a server upgrade
# nor a platform version writing definitions otherwise re-reads every entity at once.
_SAME = [
    (re.compile(r"\bCHARACTER SET utf8\b", re.IGNORECASE), "CHARACTER SET utf8mb3"),
    (re.compile(r"\b((?:small|medium|big)?int|integer|tinyint(?!\(1\))|year)\(\d+\)", re.IGNORECASE), r"\1"),
]


def canonical(definition: str) -> str:
    """`definition` in one form for every server version (a ZEROFILL column keeps its display width:
    it pads the value's text)."""
    for pattern, same in _SAME if "ZEROFILL" not in definition.upper() else _SAME[:1]:
        definition = pattern.sub(same, definition)
    return definition.lower()

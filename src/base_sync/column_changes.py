"""The live definitions of the columns an entity's mapping reads, as each commit records them.

An ALTER by Base A's owners may rewrite every stored value of a mapped column without touching a
stamp (`MODIFY gehalt DECIMAL(10,0)` rounds 500.25 to 500): the binlog holds the DDL alone, no
window reads the rows, and the key comparison (keys and versions) finds nothing. The next batch run
compares the definitions with the recorded ones, and a change makes it a full refresh, as a
changed mapping does (`sync.refresh_wanted`). The definitions come from the schema check every
batch task makes anyway (`mapping.check`): no read of their own."""

from __future__ import annotations

COLUMN_DEFINITIONS = "column_definitions"  # in the committed stats: {column: definition} the load read with
NOT_READ = "not read"  # a column only one side holds (the mapping changed too)


def changes(table: str, recorded: dict[str, str], live: dict[str, str]) -> list[str]:
    """Each column whose definition differs, for the log:
    `personal.gehalt: DECIMAL(10,2) NULL, now DECIMAL(10,0) NULL`."""
    found = []
    for column in dict.fromkeys([*recorded, *live]):
        before, now = recorded.get(column, NOT_READ), live.get(column, NOT_READ)
        if before != now:
            found.append(f"{table}.{column}: {before}, now {now}")
    return found

"""What one RENAME statement does to each table name, its renames taken in order.

`RENAME TABLE a TO _a_old, _a_new TO a` (the cut-over of pt-online-schema-change and gh-ost) moves
the table `a` away and another table into its name in one atomic step: a swap. Nothing is ever
written under another name, so it is no loss for the relay, unlike a rename away alone (changes
then made under the other name are not published) or a table renamed into a mapped name.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Moves:
    """`away`: the names whose table the statement renamed (it may have come back to the name);
    `holds`: {name renamed to: the name its table had before the statement}."""

    away: frozenset
    holds: dict

    def swapped(self, name: Hashable) -> Hashable | None:
        """The former name of the table now under `name` when the statement moved `name`'s table
        away and another into the name (a swap); else None."""
        before = self.holds.get(name)
        return before if name in self.away and before not in (None, name) else None

    def away_only(self, name: Hashable) -> bool:
        """The statement moved `name`'s table away and left no table under the name."""
        return name in self.away and name not in self.holds

    def arrived(self, name: Hashable) -> Hashable | None:
        """The former name of a table the statement renamed into `name`, which held none before."""
        return self.holds.get(name) if name not in self.away else None


def moves(renames: Iterable[tuple[Hashable, Hashable]]) -> Moves:
    """The moves of a statement's renames (old name, new name), in their order: MariaDB and MySQL
    apply them one after the other, so `a TO t, b TO a, t TO b` swaps a and b."""
    holds: dict = {}
    away: set = set()
    for old, new in renames:
        holds[new] = holds.pop(old, old)
        away.add(old)
    return Moves(frozenset(away), holds)

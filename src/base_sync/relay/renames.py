"""What one RENAME statement does to each table name, its renames taken in order.

`RENAME TABLE a TO _a_old, _a_new TO a` moves the table `a` away and another table into its name in
one atomic step: a swap. Nothing is ever written under another name. When the table swapped in is an
online schema change's shadow copy of `a` (`shadow_copies`: the cut-over of pt-online-schema-change
or gh-ost) it holds `a`'s rows, kept current, so the swap is no loss for the relay. Any other swap
(`RENAME TABLE a TO a_2025, a_empty TO a`: an archival) replaces `a`'s rows wholesale without a row
event: a loss, as are a rename away alone (changes then made under the other name are not
published) and a table renamed into a mapped name.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

SWAP = "swap"  # relay_unpublished_statements_total's kind of a swap that is no online schema change's cut-over
MAX_NAME = 64  # MySQL's and MariaDB's longest table name: gh-ost shortens a longer shadow name to it


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


def shadow_copies(table: str) -> frozenset[str]:
    """The names an online schema change gives its shadow copy of `table` by default, the table its
    cut-over swaps in: pt-online-schema-change's `_<table>_new` (`--new-table-name` `%T_new`, with
    up to 10 leading underscores to find a free name), gh-ost's `_<table>_gho` (the table name
    shortened to fit 64 characters). Other names (gh-ost's `--force-table-names`, a custom
    `--new-table-name`) are not known here: their swap counts as any other, the loud side."""
    pt_osc = {"_" * n + table + "_new" for n in range(1, 11)}
    gh_ost = "_" + table[: MAX_NAME - len("__gho")] + "_gho"
    return frozenset({*pt_osc, gh_ost})

"""Schema and table names compared as Base A's server compares them.

With lower_case_table_names 1 the server stores names in lower case and its binlog writes them so;
with 2 it stores them as created and looks them up without case. A mapping names a table as its
owners write it (`Personal`), as SQL on such a server may: the relay matches the binlog's names
to the mapping's, and the batch sync the catalogue's (information_schema), without case there,
with it where lower_case_table_names is 0. The one place that rule is written: both import it
(a module of neither, as the relay imports the backends).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

from sqlalchemy import Connection, text


class ServerNames:
    def __init__(self, folded: bool = False):
        self.folded = folded

    @classmethod
    def of(cls, conn: Connection) -> ServerNames:
        """How the MySQL or MariaDB server of `conn` compares names (@@lower_case_table_names 1 or 2: without case)."""
        return cls(bool(conn.execute(text("SELECT @@lower_case_table_names")).scalar_one()))

    def key(self, name: str) -> str:
        return name.lower() if self.folded else name

    def same(self, one: str, other: str) -> bool:
        return self.key(one) == self.key(other)

    def watched(self, names: Iterable[str]) -> Collection[str]:
        """The names as the binlog reader's `only_schemas`/`only_tables` take them (it tests `in`)."""
        return _Folded(names) if self.folded else sorted(set(names))


class _Folded(Collection[str]):
    """Names that hold another spelling of themselves too."""

    def __init__(self, names: Iterable[str]):
        self.names = frozenset(name.lower() for name in names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.names))

    def __len__(self) -> int:
        return len(self.names)

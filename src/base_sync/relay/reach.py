"""Which mapped tables a statement-logged DML may change without naming them: through a trigger of a
table it writes, a view it writes through, or a stored function it calls.

The binlog holds such a statement as its SQL text; the rows the trigger, view or function changes are
in no row event. A table, view or routine is read as every name its body mentions (`statements.names`),
followed through the triggers, views and routines of those names in turn: more tables than it
writes, never fewer, but for SQL it builds at run time (PREPARE) and a body the relay's account
cannot read (then every mapped table). Each schema's catalogue is read once, again after a
statement that creates, drops or alters a trigger, view or routine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from base_sync.relay import statements

Name = tuple[str, str]  # schema, name


@dataclass
class SchemaObjects:
    """A schema's objects whose SQL runs when a statement writes or calls them, by lowercase name;
    a body None when the account may not read it."""

    triggers: dict[str, list[str | None]] = field(default_factory=dict)  # {table: its triggers' bodies}
    views: dict[str, str | None] = field(default_factory=dict)
    functions: dict[str, str | None] = field(default_factory=dict)


class Reach:
    def __init__(
        self,
        read: Callable[[str], SchemaObjects],
        mapped: Callable[[str, str], str | None],
        every_mapped: Iterable[str],
    ):
        self.read, self.mapped, self.every_mapped = read, mapped, frozenset(every_mapped)
        self.schemas: dict[str, SchemaObjects] = {}

    def forget(self) -> None:
        """The catalogue changed: read it again when next needed."""
        self.schemas.clear()

    def of_statement(self, sql: str, session: str, written: Iterable[tuple[str | None, str]]) -> dict[str, str]:
        """{mapped table: the object it is reached through} for a statement writing `written`."""
        reached: dict[str, str] = {}
        starts = [(schema or session, name, False) for schema, name in written]
        starts += [(schema or session, name, True) for schema, name in statements.calls(sql)]
        for schema, name, called in starts:
            objects = self._objects(schema)
            key = name.lower()
            through = objects.functions if called else {**objects.views, **{t: t for t in objects.triggers}}
            if key not in through:
                continue  # a base table without triggers (or a built-in function): nothing hidden
            for table in self._reached(schema, name, called, set()):
                reached.setdefault(table, name)
        return reached

    def _objects(self, schema: str) -> SchemaObjects:
        if schema not in self.schemas:
            self.schemas[schema] = self.read(schema)
        return self.schemas[schema]

    def _reached(self, schema: str, name: str, called: bool, seen: set) -> set[str]:
        key = (schema, name.lower(), called)
        if key in seen:
            return set()
        seen.add(key)
        objects = self._objects(schema)
        found = set()
        if not called and (table := self.mapped(schema, name)) is not None:
            found.add(table)
        if called:
            bodies = [objects.functions[key[1]]] if key[1] in objects.functions else []
        else:
            bodies = list(objects.triggers.get(key[1], []))
            if key[1] in objects.views:
                bodies.append(objects.views[key[1]])
        for body in bodies:
            if body is None:  # not readable by the relay's account: it may reach any mapped table
                return set(self.every_mapped)
            for other_schema, other in statements.names(body):
                found |= self._reached(other_schema or schema, other, False, seen)
            for other_schema, other in statements.calls(body):
                found |= self._reached(other_schema or schema, other, True, seen)
        return found

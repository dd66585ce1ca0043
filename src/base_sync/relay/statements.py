"""What a statement in the binlog (a QueryEvent) does to tables: the few kinds the relay must not pass over.

With ROW format a row change is a row event; a statement shows up as a QueryEvent when it is DDL,
or when a session logs its DML as a statement (`SET SESSION binlog_format=STATEMENT` or MIXED):
then the binlog holds the SQL text, not the rows, and the relay cannot publish them. `effects`
reads such a statement far enough to name the tables it writes (INSERT, REPLACE, UPDATE, DELETE),
empties (TRUNCATE), renames (RENAME TABLE, ALTER TABLE ... RENAME), drops (DROP TABLE, CREATE
OR REPLACE TABLE, DROP DATABASE), whose columns an ALTER TABLE ... DROP [COLUMN] drops (`column`
names one), or whose rows an ALTER TABLE removes or adds without row events
(TRUNCATE, DROP, REORGANIZE, EXCHANGE or CONVERT PARTITION; `keeps_rows` says which of those keep
every current row on a table of a given partitioning method). It is not a SQL parser: a statement
it does not know has no effects, and a multi-table UPDATE or DELETE names every table of its table references (the ones
only read too), so a warning may name a table too many, never one too few of those it handles.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

DML = "statement_dml"
TRUNCATE = "truncate"
RENAME = "rename"
DROP = "drop"
PARTITION = "partition"
COLUMN_DROP = "column_drop"

# What an ALTER TABLE's DROP clause drops when it is no column: `DROP PARTITION p`, `DROP INDEX i`, ...
_DROPS_NO_COLUMN = frozenset(
    {
        "PARTITION",
        "INDEX",
        "KEY",
        "PRIMARY",
        "FOREIGN",
        "CONSTRAINT",
        "CHECK",
        "UNIQUE",
        "FULLTEXT",
        "SPATIAL",
    }
)
# The words that make a DROP clause no column's only before the next word: `DROP PERIOD FOR p`,
# `DROP SYSTEM VERSIONING`. Neither word is reserved: `DROP COLUMN period` drops a column so named.
_DROPS_NO_COLUMN_BEFORE = {"PERIOD": "FOR", "SYSTEM": "VERSIONING"}

# information_schema.PARTITIONS.PARTITION_METHOD of the tables whose REORGANIZE PARTITION keeps every
# row: MariaDB refuses a RANGE reorganize that changes the ranges covered (but the last one's, which
# it may only extend), and HASH and KEY redistribute the rows; a LIST reorganize drops the rows of
# values no new partition lists, without an error or a row event.
_REORGANIZE_KEEPS = frozenset({"RANGE", "RANGE COLUMNS", "HASH", "LINEAR HASH", "KEY", "LINEAR KEY"})

_TOKENS = re.compile(
    r"(?P<skip>/\*M?!\d*|\*/|/\*.*?\*/|--(?=\s|$)[^\n]*|\#[^\n]*|\s+)"  # comments (an executable one's text is kept)
    r"|(?P<quoted>`(?:[^`]|``)*`)"
    r"|(?P<string>'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\")"
    r"|(?P<word>[\w$]+)"
    r"|(?P<other>.)",
    re.S,
)
_ENDS_TABLES = {
    "UPDATE": {"SET"},
    "DELETE": {"WHERE", "ORDER", "LIMIT", "RETURNING"},
}


@dataclass(frozen=True)
class Effect:
    """`kind` (DML, TRUNCATE, RENAME, DROP, PARTITION, COLUMN_DROP) done to `table` ((schema or None,
    name)); a rename's new name; a partition effect's clause (TRUNCATE, DROP, REORGANIZE, EXCHANGE,
    CONVERT); the column a COLUMN_DROP drops (`column`)."""

    kind: str
    table: tuple[str | None, str]
    to: tuple[str | None, str] | None = None
    clause: str | None = None
    column: str | None = None


def keeps_rows(effect: Effect, method: str | None) -> bool:
    """The partition effect keeps every current row of its table, partitioned by `method`
    (information_schema.PARTITIONS.PARTITION_METHOD; None when unknown: then it may not): a
    REORGANIZE PARTITION of a RANGE, HASH or KEY table, and a DROP PARTITION of a SYSTEM_TIME one
    (MariaDB drops history partitions only, never the CURRENT one). A TRUNCATE PARTITION of a
    SYSTEM_TIME table may name the CURRENT partition (or ALL), which empties the current rows."""
    if effect.kind != PARTITION or method is None:
        return False
    if effect.clause == "REORGANIZE":
        return method.upper() in _REORGANIZE_KEEPS
    return effect.clause == "DROP" and method.upper() == "SYSTEM_TIME"


@dataclass(frozen=True)
class _Token:
    kind: str  # word, quoted, string, other
    text: str

    @property
    def keyword(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def name(self) -> str | None:
        """The identifier it is, if any."""
        if self.kind == "quoted":
            return self.text[1:-1].replace("``", "`")
        return self.text if self.kind == "word" else None


def tokens(sql: str) -> list[_Token]:
    return [_Token(match.lastgroup, match.group()) for match in _TOKENS.finditer(sql) if match.lastgroup != "skip"]


def effects(sql: str) -> list[Effect]:
    """The tables the statement writes, empties, renames or drops (see the module's note)."""
    found = tokens(sql)
    if not found:
        return []
    first = found[0].keyword
    if first in ("INSERT", "REPLACE"):
        return _insert(found)
    if first in _ENDS_TABLES:
        return [Effect(DML, table) for table in _table_references(found, _ENDS_TABLES[first])]
    if first == "LOAD":
        return _load(found)
    if first == "TRUNCATE":
        at = 2 if _keyword(found, 1) == "TABLE" else 1
        table = _qualified(found, at)
        return [Effect(TRUNCATE, table[0])] if table else []
    if first == "RENAME" and _keyword(found, 1) in ("TABLE", "TABLES"):
        return _renames(found, 2)
    if first == "ALTER":
        return _alter(found)
    if first == "DROP":
        return _drop(found)
    if first == "CREATE" and [_keyword(found, i) for i in (1, 2, 3)] == ["OR", "REPLACE", "TABLE"]:
        table = _qualified(found, _skip(found, 4, ("IF", "NOT", "EXISTS")))
        return [Effect(DROP, table[0])] if table else []  # the old table's rows are gone
    return []


def _keyword(found: list[_Token], at: int) -> str:
    return found[at].keyword if at < len(found) else ""


def _skip(found: list[_Token], at: int, words: tuple[str, ...]) -> int:
    while _keyword(found, at) in words and at < len(found):
        at += 1
    return at


def _qualified(found: list[_Token], at: int) -> tuple[tuple[str | None, str], int] | None:
    """The table name at `at` (`t`, `db.t`, quoted or not) and the position after it."""
    first = found[at].name if at < len(found) else None
    if first is None:
        return None
    if at + 2 < len(found) and found[at + 1].text == "." and found[at + 2].name is not None:
        return (first, found[at + 2].name), at + 3
    return (None, first), at + 1


def _insert(found: list[_Token]) -> list[Effect]:
    at = _skip(found, 1, ("LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO"))
    table = _qualified(found, at)
    return [Effect(DML, table[0])] if table else []


def _load(found: list[_Token]) -> list[Effect]:
    """LOAD DATA|XML ... INTO TABLE t."""
    for at in range(len(found) - 2):
        if found[at].keyword == "INTO" and found[at + 1].keyword == "TABLE":
            table = _qualified(found, at + 2)
            return [Effect(DML, table[0])] if table else []
    return []


def _table_references(found: list[_Token], ends: set[str]) -> list[tuple[str | None, str]]:
    """The tables of an UPDATE's or DELETE's table references: each name that starts a reference
    (after the verb and its modifiers, FROM, USING, JOIN or a top-level comma), up to `ends`."""
    tables, depth = [], 0
    at = _skip(found, 1, ("LOW_PRIORITY", "QUICK", "IGNORE"))
    starts = True
    while at < len(found):
        token = found[at]
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        elif depth == 0 and token.keyword in ends:
            break
        elif depth == 0 and (token.text == "," or token.keyword in ("FROM", "USING", "JOIN")):
            starts = True
            at += 1
            continue
        if starts and depth == 0 and token.name is not None:
            table = _qualified(found, at)
            if table:
                tables.append(table[0])
                at = table[1]
                starts = False
                continue
        starts = False
        at += 1
    return list(dict.fromkeys(tables))


def _renames(found: list[_Token], at: int) -> list[Effect]:
    """`a TO b, c TO d` (MariaDB: IF EXISTS, WAIT n, NOWAIT between)."""

    def rename(at: int) -> tuple[Effect, int] | None:
        old = _qualified(found, at)
        if old is None:
            return None
        at = old[1]
        while at < len(found) and found[at].keyword != "TO":
            at += 1
        new = _qualified(found, at + 1)
        return (Effect(RENAME, old[0], new[0]), new[1]) if new else None

    return _listed(found, _skip(found, at, ("IF", "EXISTS")), rename)


def _listed(found: list[_Token], at: int, item: Callable[[int], tuple[Effect, int] | None]) -> list[Effect]:
    """The effects of a comma-separated list: `item(at)` reads one (and where it ends), or None."""
    effects_found = []
    while (read := item(at)) is not None:
        effects_found.append(read[0])
        at = read[1]
        if at < len(found) and found[at].text == ",":
            at += 1
        else:
            break
    return effects_found


def _alter(found: list[_Token]) -> list[Effect]:
    """ALTER [ONLINE] [IGNORE] TABLE [IF EXISTS] t [WAIT n | NOWAIT] clause, clause...: a RENAME
    [TO|AS] u (not RENAME COLUMN/INDEX/KEY), a DROP [COLUMN] c, and the partition clauses that
    remove or add rows without row events."""
    at = _skip(found, 1, ("ONLINE", "IGNORE"))
    if _keyword(found, at) != "TABLE":
        return []
    table = _qualified(found, _skip(found, at + 1, ("IF", "EXISTS")))
    if table is None:
        return []
    effects_found, depth, at = [], 0, _lock_wait(found, table[1])
    starts = True  # at a clause's first word
    while at < len(found):
        token = found[at]
        depth += token.text == "("
        depth -= token.text == ")"
        if depth == 0 and token.keyword == "RENAME" and _keyword(found, at + 1) not in ("COLUMN", "INDEX", "KEY"):
            new = _qualified(found, _skip(found, at + 1, ("TO", "AS")))
            if new:
                effects_found.append(Effect(RENAME, table[0], new[0]))
        elif depth == 0:
            effects_found += _partition_clause(found, at, table[0])
            if starts and token.keyword == "DROP":
                effects_found += _column_drop(found, at + 1, table[0])
        starts = depth == 0 and token.text == ","
        at += 1
    return list(dict.fromkeys(effects_found))


def _lock_wait(found: list[_Token], at: int) -> int:
    """Past MariaDB's `WAIT n` (`n` any number: `5`, `0.5`, `.5`, `1e1`) or `NOWAIT` at `at`, between
    an ALTER TABLE's name and its first clause: that clause's first word is where the clauses start."""
    if _keyword(found, at) == "NOWAIT":
        return at + 1
    if _keyword(found, at) == "WAIT":
        at += 1
        while at < len(found) and (found[at].text == "." or found[at].text[:1].isdigit()):
            at += 1
    return at


def _column_drop(found: list[_Token], at: int, table: tuple[str | None, str]) -> list[Effect]:
    """`DROP [COLUMN] [IF EXISTS] c` from `at` (after DROP): the column is gone with its values, and
    no row event says so; added back, it holds its default in every row (MariaDB's instant DDL).
    After the word COLUMN any name is a column's (`DROP COLUMN system`, `DROP COLUMN period`)."""
    first = _keyword(found, at)
    if first == "COLUMN":
        at += 1
    elif first in _DROPS_NO_COLUMN or _DROPS_NO_COLUMN_BEFORE.get(first) == _keyword(found, _if_exists(found, at + 1)):
        return []  # `DROP PERIOD [IF EXISTS] FOR p`
    at = _if_exists(found, at)
    column = found[at].name if at < len(found) else None
    return [Effect(COLUMN_DROP, table, column=column)] if column else []


def _if_exists(found: list[_Token], at: int) -> int:
    """Past `IF EXISTS` at `at`, if there."""
    return at + 2 if (_keyword(found, at), _keyword(found, at + 1)) == ("IF", "EXISTS") else at


def _partition_clause(found: list[_Token], at: int, table: tuple[str | None, str]) -> list[Effect]:
    """The effects of an ALTER TABLE clause starting at `at` that removes or adds rows without row
    events: TRUNCATE or DROP PARTITION (the rows are gone), REORGANIZE PARTITION p INTO (...) (a LIST
    partition's rows no new partition takes are dropped; `keeps_rows` tells the other methods
    apart), EXCHANGE PARTITION p WITH TABLE u (the two swap rows), CONVERT PARTITION p TO TABLE u
    and CONVERT TABLE u TO PARTITION p (rows move between the tables). COALESCE PARTITION and a
    bare REORGANIZE PARTITION (HASH, KEY) keep every row."""
    verb, second = found[at].keyword, _keyword(found, at + 1)
    if verb in ("TRUNCATE", "DROP") and second == "PARTITION":
        return [Effect(PARTITION, table, clause=verb)]
    if verb == "REORGANIZE" and second == "PARTITION" and at + 2 < len(found) and found[at + 2].text != ",":
        return [Effect(PARTITION, table, clause=verb)]
    if verb == "EXCHANGE" and second == "PARTITION":
        other = _after(found, at + 2, ("WITH", "TABLE"))
        return [Effect(PARTITION, table, clause=verb), *([Effect(PARTITION, other, clause=verb)] if other else [])]
    if verb == "CONVERT" and second == "PARTITION":
        other = _after(found, at + 2, ("TO", "TABLE"))
        return [Effect(PARTITION, table, clause=verb), *([Effect(PARTITION, other, clause=verb)] if other else [])]
    if verb == "CONVERT" and second == "TABLE":
        other = _qualified(found, at + 2)
        effect = Effect(PARTITION, table, clause=verb)
        return [effect, *([Effect(DROP, other[0])] if other else [])]  # the other is gone
    return []


def _after(found: list[_Token], at: int, words: tuple[str, str]) -> tuple[str | None, str] | None:
    """The table named after the first `words` pair (WITH TABLE, TO TABLE) from `at` on, before the
    clause ends (a top-level comma)."""
    while at + 1 < len(found) and found[at].text != ",":
        if (found[at].keyword, found[at + 1].keyword) == words:
            table = _qualified(found, at + 2)
            return table[0] if table else None
        at += 1
    return None


def _drop(found: list[_Token]) -> list[Effect]:
    at = _skip(found, 1, ("TEMPORARY",))
    if _keyword(found, 1) == "TEMPORARY":
        return []  # a temporary table shadows, never replaces, the real one
    if _keyword(found, at) in ("DATABASE", "SCHEMA"):
        at = _skip(found, at + 1, ("IF", "EXISTS"))
        schema = found[at].name if at < len(found) else None
        return [Effect(DROP, (schema, "*"))] if schema else []  # every table of the schema
    if _keyword(found, at) != "TABLE":
        return []

    def drop(at: int) -> tuple[Effect, int] | None:
        table = _qualified(found, at)
        return (Effect(DROP, table[0]), table[1]) if table else None

    return _listed(found, _skip(found, at + 1, ("IF", "EXISTS")), drop)


def excerpt(sql: str, limit: int = 200) -> str:
    """A statement for a log line: one line, at most `limit` characters."""
    text = " ".join(sql.split())
    return text if len(text) <= limit else text[:limit] + "…"


def names(sql: str) -> list[tuple[str | None, str]]:
    """Every identifier of the text, qualified where it is (`db.t`): a trigger's, view's or stored
    routine's body read for the tables it may reach (more than it writes: the loud side)."""
    found, named, at = tokens(sql), [], 0
    while at < len(found):
        if found[at].kind in ("word", "quoted"):
            table = _qualified(found, at)
            named.append(table[0])
            at = table[1]
        else:
            at += 1
    return list(dict.fromkeys(named))


def calls(sql: str) -> list[tuple[str | None, str]]:
    """The names the statement calls as functions (`f(`, `db.f(`): stored functions among them run
    SQL of their own, which a statement-logged binlog does not show."""
    found, called = tokens(sql), []
    for at in range(len(found) - 1):
        if found[at + 1].text == "(" and found[at].name is not None:
            dotted = at >= 2 and found[at - 1].text == "." and found[at - 2].name is not None
            called.append((found[at - 2].name, found[at].name) if dotted else (None, found[at].name))
    return list(dict.fromkeys(called))


_RUNS_ROUTINES = frozenset({"INSERT", "REPLACE", "UPDATE", "DELETE", "LOAD", "SELECT", "DO", "SET"})


def may_run_routines(sql: str) -> bool:
    """DML, or a SELECT, DO or SET that may call a stored function: what a trigger, view or function
    can carry to a table the statement does not name."""
    found = tokens(sql)
    return bool(found) and found[0].keyword in _RUNS_ROUTINES


_CHANGES_CATALOGUE = re.compile(r"\s*(CREATE|DROP|ALTER)\b.{0,300}?\b(TRIGGER|VIEW|FUNCTION|PROCEDURE)\b", re.I | re.S)


def changes_catalogue(sql: str) -> bool:
    """The statement creates, drops or alters a trigger, view or stored routine."""
    return bool(_CHANGES_CATALOGUE.match(sql))

"""The mapping file: how Base A's own tables become Base B's entities, declared once in YAML.

The shape follows dbt sources and Sling replications: one section per Base B entity, naming the
source table, its key, its change cursor, an optional row filter and soft-delete rule, and how each
Base B field is made from the source columns. `load_mapping` validates the whole file on load and
every error names the file, the line and column of the node at fault, the entity and the key
(`path:LINE:COLUMN: message`, one error a line). Nothing here touches a database:
checking the file against the live Base A is `mapping.check`.

    source:
      time_zone: Europe/Berlin          # the zone of DATETIME columns unless a column says otherwise
    entities:
      employees:
        table: mitarbeiter
        key: pers_nr
        cursor:                         # the first non-NULL column wins; `cursor: none` for no cursor
          - {column: geaendert_am, type: datetime}
          - {column: angelegt_am, type: datetime}
        created: {column: angelegt_am, type: datetime}
        filter: "mandant = 1"
        soft_delete: {column: aktiv, deleted_when: 0}
        fields:
          first_name: {column: vorname, trim: true}
          email: {column: mail, trim: true, case: lower}
          department: {column: abt_code, map: {V: Sales, E: Engineering}, unmapped: reject}

docs/mapping.md is the reference of every key.
"""

from __future__ import annotations

import difflib
import importlib
import math
import re
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from base_sync.dirty import iso_date
from base_sync.errors import TerminalError
from baseab_contract.entities import ENTITIES, Entity, Kind

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_$]*$"


class MappingError(TerminalError):
    """The mapping file is unreadable or invalid; the message names the file, the entity and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StampColumn(_Strict):
    """A source column holding a point in time: a UTC `timestamp` or a local `datetime`."""

    column: str = Field(pattern=IDENTIFIER)
    type: Literal["timestamp", "datetime"] = "datetime"
    time_zone: str | None = None  # a DATETIME's zone; default: the file's `source.time_zone`

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return _zone(value)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """`created: angelegt_am` as `cursor: geaendert_am` is read: a column name alone, a datetime."""
        return {"column": value} if isinstance(value, str) else value


def _no_bare_null(value: Any, meaning: str) -> Any:
    """`value`, unless it is a bare YAML `null` (no value at all) where the text "null" means `meaning`."""
    if value is None:
        raise ValueError(f'write "null" (quoted) for "{meaning}": a bare null is YAML\'s nothing')
    return value


class SoftDelete(_Strict):
    """A row is deleted when `column` holds `deleted_when` (a value, or `not_null` / `null`)."""

    column: str = Field(pattern=IDENTIFIER)
    deleted_when: str | int | bool = "not_null"

    @field_validator("deleted_when", mode="before")
    @classmethod
    def _quoted_null(cls, value: Any) -> Any:
        # One clear message instead of the union's three (str, int, bool).
        return _no_bare_null(value, "the column is NULL")


class FieldMapping(_Strict):
    """How one Base B field is made. Exactly one of `column`, `concat`, `python` gives the value;
    the transforms then apply in this order: cast, trim, case, map, default, zero_date, too_long."""

    column: str | None = Field(None, pattern=IDENTIFIER)
    concat: list[str] | None = Field(None, min_length=2)  # columns joined by `separator`, NULLs skipped
    separator: str = " "
    python: str | None = None  # "package.module:function" (or dotted), called with the source row
    inputs: list[str] | None = None  # the columns the python function reads
    cast: Literal["string", "integer"] | None = None
    trim: bool = False
    case: Literal["lower", "upper"] | None = None
    map: dict[str, str | None] | None = None  # source value (as text) -> Base B value
    unmapped: Literal["keep", "null", "reject"] = "keep"  # a value the map does not list
    default: str | int | float | None = None  # when the value is NULL
    zero_date: Literal["reject", "null"] = "reject"  # a date field's 0000-00-00 (and other invalid dates)
    too_long: Literal["reject", "truncate"] = "reject"  # text longer than the Base B field allows

    @field_validator("zero_date", mode="before")
    @classmethod
    def _quoted_null_policy(cls, value: Any) -> Any:
        # Not the policy "null": pydantic's "should be 'reject' or 'null'" read as a contradiction (outside probe).
        return _no_bare_null(value, "store NULL")

    @field_validator("map", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        # YAML reads `1: Sales` with an integer key; the map compares the source value as text.
        if isinstance(value, dict):
            return {_text_key(k): v for k, v in value.items()}
        return value

    @field_validator("concat", "inputs")
    @classmethod
    def _identifiers(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"{name!r} is not a column name")
        return value

    @field_validator("python")
    @classmethod
    def _importable(cls, value: str | None) -> str | None:
        if value is not None:
            resolve_function(value)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> FieldMapping:
        given = [k for k in ("column", "concat", "python") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of column, concat, python (got {', '.join(given) or 'none'})")
        if self.python is not None and not self.inputs:
            raise ValueError("a python field needs `inputs`: the source columns its function reads")
        return self

    def source_columns(self) -> list[str]:
        if self.column:
            return [self.column]
        return list(self.concat or self.inputs or [])


class EntityMapping(_Strict):
    """One Base B entity's source: table, key, cursor, filter, soft delete, fields."""

    table: str = Field(pattern=IDENTIFIER)
    key: str = Field("id", pattern=IDENTIFIER)
    # The mapping asserts the key names one row (a view's `id * 100 + tenant AS id`): no task asks Base A
    # which keys rows share (`shared_keys`); verification still fails a run on a key Base A holds twice.
    key_unique: bool = False
    cursor: list[StampColumn] | None = Field(None, min_length=1)  # None: no cursor (checksum buckets)
    created: StampColumn | None = None  # Base B's created_at; default: the version
    filter: str | None = None  # SQL condition on the source table: rows outside it are not synced
    soft_delete: SoftDelete | None = None
    fields: dict[str, FieldMapping] = Field(default_factory=dict)

    @field_validator("key", mode="before")
    @classmethod
    def _one_key_column(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            raise ValueError(
                "a composite key is not supported: `key` is one integer column; name a unique integer column, "
                "or map a view of the table that gives each row a single integer key (docs/mapping.md, `key`)"
            )
        return value

    @field_validator("cursor", mode="before")
    @classmethod
    def _cursor_forms(cls, value: Any) -> Any:
        if value in ("none", "None", False):
            return None
        if isinstance(value, str | dict):
            return [value]
        return value


class SourceSection(_Strict):
    time_zone: str = "UTC"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone(value)


class MappingFile(_Strict):
    source: SourceSection = SourceSection()
    entities: dict[str, EntityMapping]

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, value: dict[str, EntityMapping]) -> dict[str, EntityMapping]:
        # `parse_mapping` names each unknown entity at its own key first (`_unknown_entities`).
        unknown = sorted(set(value) - set(ENTITIES))
        if unknown:
            raise ValueError(f"unknown entities {unknown}; Base B has {', '.join(sorted(ENTITIES))}")
        return value


def _unknown_entities(document: dict) -> list[tuple[tuple, str]]:
    """Each entity Base B does not have, at its own key, with the closest Base B entity."""
    entities = document.get("entities")
    known = sorted(ENTITIES)
    problems = []
    for name in entities if isinstance(entities, dict) else []:
        if name in ENTITIES:
            continue
        close = difflib.get_close_matches(str(name).lower(), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(
            (
                ("entities", name, "[key]"),
                f"entities.{name}: Base B has no entity {name!r}{hint}; it has {', '.join(known)}",
            )
        )
    return problems


_TEXT_KINDS = (Kind.STRING, Kind.TEXT, Kind.EMAIL)


def _as_written(document: dict) -> tuple[dict, list[tuple[tuple, str]]]:
    """The document with the values the mapping compares or writes as text taken as written
    (`deleted_when`, a text field's `default`): `2.50` is "2.50", not 2.5, and `010` "010", not 10;
    a value that reads as no text its author could mean (`0x1F`, `.inf`, a text field's `default:
    true`) is a problem, with what to write. Every other number is a plain int or float again."""
    problems: list[tuple[tuple, str]] = []
    entities = document.get("entities")
    if not isinstance(entities, dict):
        return _plain(document), problems
    out = {}
    for name, given in entities.items():
        if not isinstance(given, dict):
            out[name] = given
            continue
        spec = dict(given)
        soft = spec.get("soft_delete")
        if isinstance(soft, dict) and "deleted_when" in soft:
            loc = ("entities", name, "soft_delete", "deleted_when")
            spec["soft_delete"] = {**soft, "deleted_when": _text_value(soft["deleted_when"], loc, problems, True)}
        fields = spec.get("fields")
        declared = {f.name: f for f in ENTITIES[name].fields} if name in ENTITIES else {}
        if isinstance(fields, dict):
            spec["fields"] = dict(fields)
            for field_name, field in fields.items():
                kind = getattr(declared.get(field_name), "kind", None)
                if isinstance(field, dict) and "default" in field and kind in _TEXT_KINDS:
                    loc = ("entities", name, "fields", field_name, "default")
                    spec["fields"][field_name] = {
                        **field,
                        "default": _text_value(field["default"], loc, problems, False),
                    }
        out[name] = spec
    return _plain({**document, "entities": out}), problems


def _text_value(value: Any, loc: tuple, problems: list, booleans: bool) -> Any:
    """`value` where the mapping means text: a number as written; a number or boolean written so
    that its text is not what its author likely meant, a problem (the value stays)."""
    where = ".".join(str(part) for part in loc)
    if isinstance(value, _WrittenInt | _WrittenFloat):
        if _NOT_DECIMAL.match(value.text):
            number = _text_key(int(value) if isinstance(value, int) else float(value))
            problems.append(
                (
                    loc,
                    f'{where}: {value.text} reads as the number {number}: quote it ("{value.text}") '
                    f"for that text{_or_write(value)}",
                )
            )
            return value
        return value.text
    if isinstance(value, float):  # 1.0: not the integer 1 (a text column's "1.0" is not "1")
        return repr(value)
    if isinstance(value, bool) and not booleans:
        word = "true" if value else "false"
        problems.append((loc, f'{where}: {word} is YAML\'s boolean, not text: quote it ("{word}") for that text'))
    return value


def _or_write(number: float) -> str:
    """ ", or write 31" of 0x1F: the number in the form read as written (none of .inf and .nan)."""
    return f", or write {_text_key(_plain(number))}" if math.isfinite(number) else ""


def _plain(value: Any) -> Any:
    """`value` with every `_WrittenInt` / `_WrittenFloat` an int or float again (pydantic and SQL
    take them as their own types)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, _WrittenInt):
        return int(value)
    if isinstance(value, _WrittenFloat):
        return float(value)
    return value


def _text_key(key: Any) -> str:
    if isinstance(key, bool):
        return "1" if key else "0"
    return str(key)


def _zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin, or UTC)") from None
    return value


def resolve_function(path: str):
    """The function a `python:` transform names ("package.module:function" or "package.module.function")."""
    module_name, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not name:
        raise ValueError(f"{path!r} is not a dotted path to a function")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {path!r}: {exc}") from None
    if not callable(function):
        raise ValueError(f"{path!r} is not callable")
    return function


def parse_mapping(document: Any, origin: str = "<mapping>", node: yaml.Node | None = None) -> MappingFile:
    """Validate a parsed mapping document; every error names `origin`, the entity and the key, and
    with the document's composed `node` (`read_mapping`) the line and column of the node at fault,
    one error a line in the `file:LINE:COLUMN: message` form editors and CI annotate."""
    marks = Marks(origin, node)
    if not isinstance(document, dict):  # pydantic would say "a valid dictionary or instance of MappingFile"
        found = "is empty" if document is None else f"holds a {type(document).__name__}, not a mapping"
        raise MappingError(f"{marks.where()}: the document {found}: it starts with `entities:` (docs/mapping.md)")
    document, written = _as_written(document)
    unknown = _unknown_entities(document)
    if unknown:  # named each at its key; the known entities are still validated, their errors said too
        document = {**document, "entities": {k: v for k, v in document["entities"].items() if k in ENTITIES}}
    try:
        mapping = MappingFile.model_validate(document)
    except ValidationError as exc:
        errors = [
            (_error_loc(error), _describe(error, marks.written(*error["loc"])))
            for error in _one_per_union(exc.errors())
        ]
        raise MappingError(marks.report(unknown + written + errors)) from None
    problems = unknown + written
    problems += [
        (("entities", name, *loc), f"entities.{name}: {problem}")
        for name, spec in mapping.entities.items()
        for loc, problem in _field_problems(spec, name)
    ]
    if problems:
        raise MappingError(marks.report(problems))
    return mapping


class Marks:
    """Where a key of the mapping file is: its line and column, from the YAML node tree PyYAML
    composed (no node: the file's name alone, as for a document given as a dict)."""

    def __init__(self, origin: str, node: yaml.Node | None = None):
        self.origin = origin
        self.node = node

    def where(self, *loc: str | int) -> str:
        """`origin:LINE:COLUMN` of the node at `loc` (pydantic's error path: keys and list indexes),
        or of the deepest node on the way when the rest is not in the file (a missing key: the line
        of the mapping that lacks it)."""
        mark = self._mark(loc)
        return f"{self.origin}:{mark.line + 1}:{mark.column + 1}" if mark else self.origin

    def report(self, errors: list[tuple[tuple, str]]) -> str:
        """The errors, each `where: text`: one line each with a node tree, else "; "-joined after the file."""
        if self.node is None:
            return f"{self.origin}: " + "; ".join(text for _, text in errors)
        return "\n".join(f"{self.where(*loc)}: {text}" for loc, text in errors)

    def written(self, *loc: str | int) -> str | None:
        """The text of the scalar at `loc` as the file writes it (`2.50`, not 2.5); None if there is none."""
        node = self._walk(loc)[1]
        return node.value if isinstance(node, yaml.ScalarNode) else None

    def _mark(self, loc: tuple) -> yaml.Mark | None:
        return self._walk(loc)[0]

    def _walk(self, loc: tuple) -> tuple[yaml.Mark | None, yaml.Node | None]:
        """The mark to name for `loc`, and its node when the file has it."""
        if self.node is None:
            return None, None
        node, mark, key = self.node, self.node.start_mark, None
        for part in loc:
            if part == "[key]" and key is not None:  # the key itself failed (pydantic names it, then this)
                return key.start_mark, key
            if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node, key = node.value[part], None
                mark = node.start_mark
                continue
            found = _entry(node, part) if isinstance(node, yaml.MappingNode) else None
            if found is not None:
                key, node = found
                mark = node.start_mark if isinstance(node, yaml.ScalarNode) else key.start_mark
            elif part != 0:  # 0: a short form read as a list of one (`cursor: geaendert_am`), the node itself
                return mark, None  # a missing key (or a union member's name): the line of the mapping lacking it
        return mark, node


def _entry(node: yaml.MappingNode, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """The key and value nodes of `part` in a mapping node, merge keys (`<<: *anchor`) followed."""
    found = None
    for key, value in node.value:
        if key.tag == "tag:yaml.org,2002:merge":
            for merged in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                if isinstance(merged, yaml.MappingNode) and found is None:
                    found = _entry(merged, part)
        elif isinstance(key, yaml.ScalarNode) and key.value == str(part):
            found = (key, value)  # the mapping's own key wins over a merged one, as PyYAML constructs it
    return found


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, reading plain scalars by YAML 1.2's core schema and refusing a key given
    twice in one mapping.

    PyYAML resolves YAML 1.1's implicit types: `NO:` and `ON:` were the booleans false and true (a
    value map's "0" and "1"), `010` the octal 8, `1:30` the sexagesimal 90, `2.50` the float 2.5,
    `deleted_when: YES` true and `default: no` 0, and `base-a check` said ok (outside probe). Here
    only true/false (True, TRUE, False, FALSE) are booleans, only null/Null/NULL/~ and nothing are
    null, integers are decimal (or 0o/0x), floats 1.2's, and dates stay text. A key written as a
    number is its text as written (a value map compares text: `2.50:` is "2.50", `010:` "010"), and
    a number written otherwise than Python writes it is kept with its text (`_Written`) for the
    places that read text (`_as_written`). PyYAML also kept the last of a key given twice without a
    word, so a second `position:` silently replaced the first field's column."""


_CORE_SCHEMA = [  # YAML 1.2.2, 10.3.2: tag, regular expression, the first characters it can start with
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
]
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_NOT_DECIMAL = re.compile(r"[-+]?(0[ox]|\.(inf|nan))", re.IGNORECASE)  # 0x1F, 0o17, .inf, .nan

# Only the merge key (`<<: *anchor`) of PyYAML's own resolvers stays: no 1.1 booleans, numbers,
# nulls, timestamps or `=`.
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag == "tag:yaml.org,2002:merge"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _regexp, _first in _CORE_SCHEMA:
    _UniqueKeyLoader.add_implicit_resolver(_tag, re.compile(_regexp), _first)


class _WrittenInt(int):
    """An integer written otherwise than Python writes it (`010`, `+5`, `0x1F`), with its text."""

    text: str


class _WrittenFloat(float):
    """A float written otherwise than Python writes it (`2.50`, `1e3`, `.5`), with its text."""

    text: str


def _written(value: int | float, text: str) -> int | float:
    if (repr(value) if isinstance(value, float) else str(value)) == text:
        return value
    written = (_WrittenFloat if isinstance(value, float) else _WrittenInt)(value)
    written.text = text
    return written


def _core_int(loader: _UniqueKeyLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    return _written(_core_int_text(text), text)


def _core_float(loader: _UniqueKeyLoader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node)
    value = float(text.lower().replace(".inf", "inf").replace(".nan", "nan"))
    return _written(value, text)


class _Unclear(yaml.MarkedYAMLError):
    """A scalar YAML reads otherwise than its author likely meant: refused at its line, with what to write."""


def _key(loader: _UniqueKeyLoader, node: yaml.Node) -> Any:
    """A mapping key: a plain number as its text as written (a value map compares text); a key that
    reads as no text an author could mean (null, 0x1F, .inf) refused with what to write."""
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
        raise _Unclear(
            problem=f"the key {node.value or '(nothing)'} is YAML's null, which no value is: a value map never "
            f'matches NULL (`default:` gives NULL a value); quote it ("{node.value or "null"}") for that text',
            problem_mark=node.start_mark,
        )
    if isinstance(node, yaml.ScalarNode) and node.tag in _NUMBER_TAGS:
        if _NOT_DECIMAL.match(node.value):
            number = loader.construct_object(node)
            raise _Unclear(
                problem=f"the key {node.value} reads as the number {_text_key(number)}: quote it "
                f'("{node.value}") for that text{_or_write(number)}',
                problem_mark=node.start_mark,
            )
        return node.value
    return loader.construct_object(node, deep=True)


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    own = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)  # `<<: *anchor`: the merged keys first, the mapping's own after (they win)
    merged = len(node.value) - own
    seen: dict = {}  # the mapping's own keys: a merged key is there to be replaced
    mapping: dict = {}
    for index, (key_node, value_node) in enumerate(node.value):
        key = _key(loader, key_node)
        try:
            same = _text_key(key) if isinstance(key, bool) else key  # `true:` and `1:` both mean "1"
            hash(same)
        except TypeError:  # a list or mapping as a key
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, "found a key that is not text", key_node.start_mark
            ) from None
        if index < merged:
            mapping[key] = loader.construct_object(value_node, deep=deep)
            continue
        if same in seen:
            first = seen[same]
            differs = isinstance(first, yaml.ScalarNode) and first.value != key_node.value
            also = f", written {first.value!r}" if differs else ""
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"found the key {key_node.value!r} a second time (first on line {first.start_mark.line + 1}{also}): "
                "each key once, or the later one silently replaces the earlier",
                key_node.start_mark,
            )
        seen[same] = key_node
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _core_int)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", _core_float)


def load_mapping(path: str | Path) -> MappingFile:
    """Read and validate a mapping file (no database, no network: safe at DAG parse time)."""
    return read_mapping(path)[0]


def read_mapping(path: str | Path) -> tuple[MappingFile, Marks]:
    """`load_mapping`, with where each key of the file is (`Marks`): every error names the file and
    the line and column of the node at fault (`path:LINE:COLUMN: message`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MappingError(f"{path}: cannot read the mapping file: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:  # latin1, UTF-16 (Notepad's "Unicode"): PyYAML's own would be a traceback
        raise MappingError(f"{path}:{_not_utf8(data, exc)}") from None
    try:
        loader = _UniqueKeyLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character (a pasted BEL, a NUL)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise MappingError(
            f"{path}:{line}:{column}: the character #x{exc.character:04X} is a control character, which a YAML "
            "file may not hold: remove it, and save the mapping file as UTF-8 text"
        ) from None
    loader.name = str(path)  # PyYAML's marks say "<unicode string>" of a text
    try:
        node = loader.get_single_node()
        _refuse_yaml11_readings(node)
        document = None if node is None else loader.construct_document(node)
    except _Unclear as exc:
        mark = exc.problem_mark
        raise MappingError(f"{path}:{mark.line + 1}:{mark.column + 1}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise MappingError(_not_yaml(path, exc)) from None
    finally:
        loader.dispose()
    if node is None or document is None:  # nothing, comments, `---` or `null` alone: no mapping to place it at
        raise MappingError(f"{path}:1:1: the mapping file is empty: it starts with `entities:` (docs/mapping.md)")
    return parse_mapping(document, str(path), node), Marks(str(path), node)


_YAML11 = yaml.resolver.Resolver()  # how the platform read mapping files before YAML 1.2's core schema
_BOOLEAN_WORDS = {"true": "true", "false": "false", "yes": "true", "no": "false", "on": "true", "off": "false"}


def _refuse_yaml11_readings(node: yaml.Node | None, is_key: bool = False) -> None:
    """Refuse an unquoted value that YAML 1.1 (the loader of earlier versions) read otherwise than
    1.2 reads it: an upgrade would silently change what a mapping means (`deleted_when: yes` was
    true, a value map's `NO:` the text "0", `01:` "1", `1:30:` "90"; now "yes", "NO", "01", "1:30",
    which a TINYINT or INT column never reads as). Quoted, it is the text; else write what is meant.
    A date stays as written (both read the same day), `2.50` keeps its digits, and 0x1F, .inf are
    refused where they are read (review)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _refuse_yaml11_readings(key, is_key=True)
            _refuse_yaml11_readings(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_yaml11_readings(item)
    elif isinstance(node, yaml.ScalarNode) and node.style is None and not _NOT_DECIMAL.match(node.value):
        before = _YAML11.resolve(yaml.ScalarNode, node.value, (True, False))
        if before in (node.tag, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:str"):
            if before != "tag:yaml.org,2002:int":
                return
            old = yaml.safe_load(node.value)
            # An integer key is its text as written now (`01:` is "01", `+1:` "+1"): it was the number's.
            if old == _core_int_text(node.value) and not (is_key and _text_key(old) != node.value):
                return
        old = yaml.safe_load(node.value)
        meant = _BOOLEAN_WORDS.get(node.value.lower()) if isinstance(old, bool) else _text_key(old)
        raise _Unclear(
            problem=f"{node.value} was read as {meant!r} by YAML 1.1, which earlier versions of the platform used, and "
            f'is the text {node.value!r} now: quote it ("{node.value}") for that text, or write {meant}',
            problem_mark=node.start_mark,
        )


def _core_int_text(text: str) -> int:
    prefix = text[:2].lower()
    return int(text[2:], 16) if prefix == "0x" else int(text[2:], 8) if prefix == "0o" else int(text)


def _not_yaml(path: Path, exc: yaml.YAMLError) -> str:
    """One line: where, PyYAML's problem, and what to do for the usual slips (the mapping probe: its
    several lines showed the problem on lines CI does not annotate, a tab or an unclosed quote
    without a word of what to write, the quote at the end of the file)."""
    problem = getattr(exc, "problem", None) or str(exc)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    context = getattr(exc, "context", None)
    hint = f" ({context})" if context else ""
    if context == "while scanning a quoted scalar" and exc.context_mark is not None:
        mark, hint = exc.context_mark, ": this quote is never closed (close it on its line)"
    elif "'\\t'" in problem:
        hint = ": indent with spaces, never tabs"
    elif problem.startswith("mapping values are not allowed here"):
        hint = ': quote a value holding ": " ("a: b"), or indent the line as its neighbours'
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    return f"{where}: not valid YAML: {problem}{hint}"


def _not_utf8(data: bytes, exc: UnicodeDecodeError) -> str:
    """`LINE:COLUMN: ...` of the first byte that is not UTF-8, saying what to do."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return '1:1: the mapping file is UTF-16 text (Notepad\'s "Unicode"), not UTF-8: save it as UTF-8 text'
    before = data[: exc.start]
    line = before.count(b"\n") + 1
    column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
    return (
        f"{line}:{column}: the byte 0x{data[exc.start]:02X} is not UTF-8 text (the file is in another encoding, "
        "such as Latin-1 or Windows-1252): save the mapping file as UTF-8 text"
    )


def _error_loc(error: dict) -> tuple:
    """Where the error is in the file: an unknown key at the key, not at its value."""
    return (*error["loc"], "[key]") if error["type"] == "extra_forbidden" else error["loc"]


_UNION_MEMBERS = {"str": "text", "int": "a whole number", "float": "a number", "bool": "true/false"}


def _one_per_union(errors: list[dict]) -> list[dict]:
    """pydantic reports a value no member of a union (`deleted_when: str | int | bool`) takes once per
    member, at the member's name (`deleted_when.str`, `.int`, `.bool`): one error at the key instead,
    naming what it takes (the mapping probe)."""
    members: dict[tuple, list[dict]] = {}
    for error in errors:
        if error["loc"] and error["loc"][-1] in _UNION_MEMBERS:
            members.setdefault(error["loc"][:-1], []).append(error)
    # A union's members all judged the one value; keys named so (a value map's `int:`, `str:`) did not.
    members = {loc: found for loc, found in members.items() if all(e["input"] is found[0]["input"] for e in found)}
    merged, said = [], set()
    for error in errors:
        parent = error["loc"][:-1]
        if len(members.get(parent, ())) < 2 or error not in members[parent]:
            merged.append(error)
        elif parent not in said:
            said.add(parent)
            kinds = [_UNION_MEMBERS[e["loc"][-1]] for e in members[parent]]
            takes = ", ".join(kinds[:-1]) + f" or {kinds[-1]}"
            merged.append({**error, "loc": parent, "type": "union", "msg": f"Input should be {takes}"})
    return merged


def _describe(error: dict, written: str | None = None) -> str:
    """pydantic's error in the mapping author's words; `written`: the value's text in the file."""
    location = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    kind, given = error["type"], error.get("input")
    if kind == "extra_forbidden":
        message = _unknown_key(error["loc"])
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        # pydantic's "a valid dictionary or instance of FieldMapping" named our classes, not the remedy
        keys = _keys_at(error["loc"])
        message = "expected a mapping" + (f" of keys ({', '.join(keys)})" if keys else "") + f", found {_found(given)}"
        if error["loc"] and error["loc"][-1] in keys:  # `column:` one level too shallow, under `fields:`
            message += f"; `{error['loc'][-1]}` is one of those keys: indent it one level deeper, under the key above"
        elif given is None:
            message += ": indent its keys under it"
        elif isinstance(given, list):
            message += ": write `key: value` lines, not a list"
    elif kind == "union" or (kind.endswith(("_type", "_parsing")) and given is not None):
        message += f", found {written if written and isinstance(given, int | float) else _found(given)}"
        if kind == "string_type" and isinstance(given, int | float):  # bool is an int
            message += f': quote it ("{written or _found(given)}") for the text'
    if given is None and kind == "literal_error" and "'null'" in message:
        message += ', found nothing (a bare null is YAML\'s nothing): write "null" (quoted)'
    return f"{location}: {message}" if location else message


def _found(value: Any) -> str:
    """What a value read as, in the mapping author's words."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return f"the text {value!r}"
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else type(value).__name__


def _unknown_key(loc: tuple) -> str:
    """ "unknown key", with the closest key allowed there and all of them (the probe: a typo's
    message named neither)."""
    allowed = _keys_at(loc[:-1])
    if not allowed:
        return "unknown key"
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    meant = f": did you mean {close[0]!r}?" if close else ""
    return f"unknown key{meant} (the keys here: {', '.join(allowed)})"


def _keys_at(path: tuple) -> list[str]:
    """The keys the mapping file's schema allows at `path` (an entity's name, a field's, a list's
    index step through a dict or list); [] where it cannot tell."""
    kind: Any = MappingFile
    for part in path:
        kind = _model_or_item(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(str(part))
            if field is None:
                return []
            kind = field.annotation
        elif get_origin(kind) is dict:
            kind = get_args(kind)[1]
        elif get_origin(kind) is list:
            kind = get_args(kind)[0]
        else:
            return []
    kind = _model_or_item(kind)
    return list(kind.model_fields) if isinstance(kind, type) and issubclass(kind, BaseModel) else []


def _model_or_item(kind: Any) -> Any:
    """`X | None` as X (the first of a union that is a model, a dict or a list)."""
    if get_origin(kind) in (Union, UnionType):
        for arg in get_args(kind):
            if get_origin(arg) in (dict, list) or (isinstance(arg, type) and issubclass(arg, BaseModel)):
                return arg
    return kind


def _field_problems(spec: EntityMapping, name: str) -> list[tuple[tuple[str, ...], str]]:
    """What Base B's entity refuses of the entity's mapping, each with its path under the entity."""
    entity: Entity = ENTITIES[name]
    declared = {f.name: f for f in entity.fields}
    problems = [
        (("fields", f), f"fields.{f}: Base B's {name} has no field {f!r}") for f in spec.fields if f not in declared
    ]
    problems += [
        (("fields", f.name), f"fields.{f.name}: required by Base B's {name} but not mapped")
        for f in entity.fields
        if f.required and f.name not in spec.fields
    ]
    for field_name, mapping in spec.fields.items():
        field = declared.get(field_name)
        if field is None:
            continue
        if mapping.too_long == "truncate" and field.max_length is None:
            loc = ("fields", field_name, "too_long")
            problems.append((loc, f"fields.{field_name}.too_long: {field_name} has no length limit to truncate to"))
        if mapping.zero_date == "null" and field.kind != Kind.DATE:
            loc = ("fields", field_name, "zero_date")
            problems.append((loc, f"fields.{field_name}.zero_date: only date fields hold dates"))
        if field.kind == Kind.DATE:
            problems += _date_values(field_name, mapping)
        if field.kind == Kind.DECIMAL and not _a_number(mapping.default):  # `default: no` was YAML 1.1's 0
            loc = ("fields", field_name, "default")
            problems.append(
                (loc, f"fields.{field_name}.default: {mapping.default!r} is no number (as {field_name} takes)")
            )
    return problems


def _a_number(value: Any) -> bool:
    """None (no default), or a number: a bool is not one here, nor text that is not a plain decimal."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value is None or math.isfinite(value)
    return isinstance(value, str) and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value) is not None


def _date_values(name: str, mapping: FieldMapping) -> list[tuple[tuple[str, ...], str]]:
    """A date field's map values and default must be dates written YYYY-MM-DD: MySQL's DATE_FORMAT
    would read '2024-1-5' as 2024-01-05 and 'soon' as NULL, with a warning only."""
    problems = []
    wrong = "is no date written YYYY-MM-DD (as the date field takes)"
    if mapping.default is not None and not (isinstance(mapping.default, str) and iso_date(mapping.default)):
        problems.append((("fields", name, "default"), f"fields.{name}.default: {mapping.default!r} {wrong}"))
    for key, value in (mapping.map or {}).items():
        if value is not None and not iso_date(value):
            problems.append((("fields", name, "map", key), f"fields.{name}.map.{key}: {value!r} {wrong}"))
    return problems

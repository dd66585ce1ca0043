"""The mapping file's validation and the time zone rule: no database needed."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from base_sync.mapping import IDENTITY, MappingError, SourceMapping, load_mapping, parse_mapping
from base_sync.mapping.time_zones import zone_rule

MINIMAL = {
    "entities": {
        "employees": {
            "table": "personal",
            "key": "pers_nr",
            "cursor": [{"column": "geaendert_am"}, {"column": "angelegt_am"}],
            "fields": {
                "first_name": {"column": "vorname"},
                "last_name": {"column": "nachname"},
                "email": {"column": "mail", "trim": True, "case": "lower"},
                "department": {"column": "abt", "map": {1: "Sales", "E": "Engineering"}, "unmapped": "reject"},
            },
        }
    }
}


def with_entity(**changes) -> dict:
    entity = {**MINIMAL["entities"]["employees"], **changes}
    return {"entities": {"employees": entity}}


def error_of(document, origin="m.yaml") -> str:
    with pytest.raises(MappingError) as caught:
        parse_mapping(document, origin)
    return str(caught.value)


def test_a_valid_mapping_loads_with_its_defaults(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text(
        "source: {time_zone: Europe/Berlin}\n"
        "entities:\n"
        "  employees:\n"
        "    table: personal\n"
        "    key: pers_nr\n"
        "    cursor: geaendert_am\n"
        "    soft_delete: {column: aktiv, deleted_when: 0}\n"
        "    fields:\n"
        "      first_name: {column: vorname}\n"
        "      last_name: {column: nachname}\n"
        "      email: {column: mail}\n"
        "      department: {column: abt, map: {1: Sales}}\n"
    )
    mapping = SourceMapping.from_file(path)
    spec = mapping.spec.entities["employees"]
    assert mapping.entities == ("employees",)
    assert mapping.table_of("employees") == "personal"
    assert spec.cursor[0].column == "geaendert_am" and spec.cursor[0].type == "datetime"
    assert spec.fields["department"].map == {"1": "Sales"}  # YAML's integer key, compared as text
    assert mapping.spec.source.time_zone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"entities": {"staff": MINIMAL["entities"]["employees"]}}, "Base B has no entity 'staff'"),
        (with_entity(tabel="x"), "entities.employees.tabel: unknown key"),
        (with_entity(table="drop table;"), "entities.employees.table: String should match pattern"),
        (with_entity(cursor=[{"column": "c", "type": "date"}]), "entities.employees.cursor.0.type"),
        (with_entity(cursor=[{"column": "c", "time_zone": "Mars/Olympus"}]), "unknown time zone 'Mars/Olympus'"),
        (
            with_entity(fields={**MINIMAL["entities"]["employees"]["fields"], "first_name": {}}),
            "entities.employees.fields.first_name: give exactly one of column, concat, python (got none)",
        ),
        (
            with_entity(fields={"first_name": {"column": "v"}, "email": {"column": "m"}}),
            "entities.employees: fields.last_name: required by Base B's employees but not mapped",
        ),
        (
            with_entity(fields={**MINIMAL["entities"]["employees"]["fields"], "salary_eur": {"column": "g"}}),
            "fields.salary_eur: Base B's employees has no field 'salary_eur'",
        ),
        (
            with_entity(fields={**MINIMAL["entities"]["employees"]["fields"], "salary": {"python": "nowhere:f"}}),
            "cannot import 'nowhere:f'",
        ),
        (
            with_entity(
                fields={**MINIMAL["entities"]["employees"]["fields"], "salary": {"column": "g", "zero_date": "null"}}
            ),
            "fields.salary.zero_date: only date fields hold dates",
        ),
        (  # MariaDB's DATE_FORMAT would read it as 2024-01-05, with a warning only
            with_entity(
                fields={
                    **MINIMAL["entities"]["employees"]["fields"],
                    "hired_at": {"column": "e", "default": "2024-1-5"},
                }
            ),
            "fields.hired_at.default: '2024-1-5' is no date written YYYY-MM-DD",
        ),
        (
            with_entity(
                fields={**MINIMAL["entities"]["employees"]["fields"], "hired_at": {"column": "e", "default": 20240105}}
            ),
            "fields.hired_at.default: 20240105 is no date written YYYY-MM-DD",
        ),
        (  # as NULL
            with_entity(
                fields={
                    **MINIMAL["entities"]["employees"]["fields"],
                    "hired_at": {"column": "e", "map": {"A": "2024-01-05", "B": "soon", "C": None}, "unmapped": "null"},
                }
            ),
            "fields.hired_at.map.B: 'soon' is no date written YYYY-MM-DD",
        ),
    ],
)
def test_errors_name_the_file_the_entity_and_the_key(document, expected):
    message = error_of(document)
    assert message.startswith("m.yaml: ")
    assert expected in message


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (  # pydantic's three union errors (str, int, bool) said nothing of quoting
            with_entity(soft_delete={"column": "aktiv", "deleted_when": None}),
            'm.yaml: entities.employees.soft_delete.deleted_when: write "null" (quoted) for "the column is NULL": '
            "a bare null is YAML's nothing",
        ),
        (  # was "Input should be 'reject' or 'null'", of a value that read as null (outside probe)
            with_entity(
                fields={**MINIMAL["entities"]["employees"]["fields"], "hired_at": {"column": "e", "zero_date": None}}
            ),
            'm.yaml: entities.employees.fields.hired_at.zero_date: write "null" (quoted) for "store NULL": a bare '
            "null is YAML's nothing",
        ),
        (  # was "Input should be a valid string"
            with_entity(key=["store_id", "staff_id"]),
            "m.yaml: entities.employees.key: a composite key is not supported: `key` is one integer column; "
            "name a unique integer column, or map a view of the table that gives each row a single integer key "
            "(docs/mapping.md, `key`)",
        ),
    ],
)
def test_what_onboarding_writes_wrong_first_is_refused_with_one_message_saying_what_to_write(document, expected):
    """Found from outside, onboarding a Sakila-style schema: a bare `deleted_when: null` and a
    composite key met pydantic's type errors, which named neither cause nor remedy."""
    assert error_of(document) == expected


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        (
            "    key: pers_nr\n",
            "\tkey: pers_nr\n",
            "6:1: not valid YAML: found character '\\t' that cannot start any token: indent with spaces, never tabs",
        ),
        (  # the file's last quote (an earlier one would run on to the next quote, as YAML allows)
            'zero_date: "null"',
            'zero_date: "null',
            "17:20: not valid YAML: found unexpected end of stream: this quote is never closed (close it on its line)",
        ),
        (
            "table: personal",
            "table: personal: staff",
            '5:20: not valid YAML: mapping values are not allowed here: quote a value holding ": " ("a: b"), or',
        ),
    ],
)
def test_a_yaml_slip_is_one_line_at_its_place_saying_what_to_do(tmp_path, old, new, said):
    """The mapping probe: PyYAML's several lines put the problem where CI does not annotate it, said
    nothing of tabs or quotes, and placed an unclosed quote at the end of the file."""
    (refusal,) = _refused(tmp_path, LINED.replace(old, new, 1))
    assert refusal.startswith(said), refusal


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(MappingError, match="cannot read the mapping file"):
        load_mapping(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("entities: [unclosed")
    with pytest.raises(MappingError, match=f"{broken}:1:20: not valid YAML"):
        load_mapping(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(MappingError, match=f"{empty}:1:1: the mapping file is empty: it starts with `entities:`"):
        load_mapping(empty)
    for nothing in ("---\n", "null\n"):  # a document that is nothing reads as an empty file (the review)
        empty.write_text(nothing)
        with pytest.raises(MappingError, match=f"{empty}:1:1: the mapping file is empty"):
            load_mapping(empty)
    empty.write_text("- entities\n")
    with pytest.raises(MappingError, match=f"{empty}:1:1: the document holds a list, not a mapping"):
        load_mapping(empty)


@pytest.mark.parametrize(
    ("text", "key", "first", "second"),
    [
        # A field mapped twice: PyYAML kept the second column, and `base-a check` said ok.
        (
            "entities:\n  articles:\n    table: a\n    fields:\n      title: {column: t}\n      title: {column: b}\n",
            "title",
            5,
            6,
        ),
        # An entity given twice: the second replaced the first, and the error named a missing field.
        ("entities:\n  articles:\n    table: a\n  articles:\n    table: b\n", "articles", 2, 4),
    ],
)
def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path, text, key, first, second):
    """Outside probe: duplicate keys in a mapping file were silently last-wins (data synced into the
    wrong field)."""
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(MappingError) as refused:
        load_mapping(path)
    said = str(refused.value)
    assert f"found the key {key!r} a second time (first on line {first})" in said
    assert said.startswith(f"{path}:{second}:") and "\n" not in said  # one line, at the second


LINED = """\
source:
  time_zone: Europe/Berlin
entities:
  employees:
    table: personal
    key: pers_nr
    cursor:
      - {column: geaendert_am}
      - {column: angelegt_am, type: datetime}
    fields:
      first_name: {column: vorname}
      last_name: {column: nachname}
      email: {column: mail, trim: true}
      department: {column: abt, map: {1: Sales}}
      hired_at:
        column: eintritt
        zero_date: "null"
"""


# What a field may hold, as an unknown key's message lists them.
FIELD_KEYS = "column, concat, separator, python, inputs, cast, trim, case, map, unmapped, default, zero_date, too_long"


def _refused(tmp_path, text: str) -> list[str]:
    path = tmp_path / "lined.yaml"
    path.write_text(text)
    with pytest.raises(MappingError) as refused:
        load_mapping(path)
    return [line.removeprefix(f"{path}:") for line in str(refused.value).splitlines()]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (  # a nested column option: at its value
            'zero_date: "null"',
            "zero_date: nul",
            "17:20: entities.employees.fields.hired_at.zero_date: Input should be 'reject' or 'null'",
        ),
        (  # an unknown option of a column: at the key itself
            "{column: mail, trim: true}",
            "{column: mail, trimm: true}",
            "13:29: entities.employees.fields.email.trimm: unknown key",
        ),
        (  # an entity-level option
            "key: pers_nr",
            "key: [a, b]",
            "6:5: entities.employees.key: a composite key is not supported",  # a list: at its key
        ),
        ("table: personal", "tabel: personal", "5:5: entities.employees.tabel: unknown key"),  # and table missing
        ("time_zone: Europe/Berlin", "time_zone: Europe/Berln", "2:14: source.time_zone: unknown time zone"),
        (  # a list item: the cursor's second
            "type: datetime}",
            "type: date}",
            "9:37: entities.employees.cursor.1.type: Input should be 'timestamp' or 'datetime'",
        ),
        (  # a missing required key: the line of the mapping lacking it
            "    table: personal\n",
            "",
            "4:3: entities.employees.table: Field required",
        ),
        (  # a field without its column: the field's line
            "      last_name: {column: nachname}",
            "      last_name: {}",
            "12:7: entities.employees.fields.last_name: give exactly one of column, concat, python (got none)",
        ),
        (  # Base B's rules, checked after pydantic's: a field Base B requires, at the mapping lacking it
            "      last_name: {column: nachname}\n",
            "",
            "10:5: entities.employees: fields.last_name: required by Base B's employees but not mapped",
        ),
        (
            "{1: Sales}",
            "{1: Sales}, zero_date: 'null'",
            "14:61: entities.employees: fields.department.zero_date: only date fields hold dates",
        ),
        ("  employees:", "  staff:", "4:3: entities.staff: Base B has no entity 'staff'; it has articles, employees"),
    ],
)
def test_each_error_names_the_file_and_the_line_of_the_node_at_fault(tmp_path, old, new, expected):
    """`path:LINE:COLUMN: message`, the form editors and CI annotate: a field path alone left the
    author hunting through a long file."""
    assert LINED.count(old) == 1
    said = _refused(tmp_path, LINED.replace(old, new))
    assert any(line.startswith(expected) for line in said), said


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (  # an option one level too shallow: the field reads as nothing, the option as a field
            "      email: {column: mail, trim: true}\n",
            "      email:\n      column: mail\n",
            [
                f"13:13: entities.employees.fields.email: expected a mapping of keys ({FIELD_KEYS}), found nothing: "
                "indent its keys under it",
                f"14:15: entities.employees.fields.column: expected a mapping of keys ({FIELD_KEYS}), found the text "
                "'mail'; `column` is one of those keys: indent it one level deeper, under the key above",
            ],
        ),
        (  # a section written as a list
            "  time_zone: Europe/Berlin",
            "  - time_zone: Europe/Berlin",
            ["1:1: source: expected a mapping of keys (time_zone), found a list: write `key: value` lines, not a list"],
        ),
        (  # a union's value: one error, not one per member (.str, .int, .bool)
            "    key: pers_nr\n",
            "    key: pers_nr\n    soft_delete: {column: aktiv, deleted_when: [0, 1]}\n",
            [
                "7:34: entities.employees.soft_delete.deleted_when: Input should be text, a whole number or "
                "true/false, found a list"
            ],
        ),
        (  # a map's value written as a number (a text field's), as written
            "{1: Sales}",
            "{1: 2.50}",
            [
                "14:42: entities.employees.fields.department.map.1: Input should be a valid string, found 2.50: "
                'quote it ("2.50") for the text'
            ],
        ),
        (  # value-map keys named like a union's members are no union (the review)
            "{1: Sales}",
            "{int: [a], str: [b]}",
            [
                "14:39: entities.employees.fields.department.map.int: Input should be a valid string, found a list",
                "14:49: entities.employees.fields.department.map.str: Input should be a valid string, found a list",
            ],
        ),
        (  # a bare null where the text "null" is a choice
            "{1: Sales}",
            "{1: Sales}, unmapped: null",
            [
                "14:60: entities.employees.fields.department.unmapped: Input should be 'keep', 'null' or 'reject', "
                """found nothing (a bare null is YAML's nothing): write "null" (quoted)"""
            ],
        ),
    ],
)
def test_a_value_of_the_wrong_shape_says_what_was_found_and_what_to_write(tmp_path, old, new, expected):
    """The mapping probe: pydantic's own words named the platform's classes ("a valid dictionary or
    instance of FieldMapping"), split a union's error in three, and said nothing of quoting."""
    assert LINED.count(old) == 1
    said = _refused(tmp_path, LINED.replace(old, new))
    assert [line for line in said if any(line.startswith(e[:30]) for e in expected)] == expected, said


def test_several_errors_are_one_line_each_at_their_own_lines(tmp_path):
    text = LINED.replace("key: pers_nr", "key: pers_nr\n    colour: red").replace("trim: true", "case: title")
    assert _refused(tmp_path, text) == [
        "14:35: entities.employees.fields.email.case: Input should be 'lower' or 'upper'",
        "7:5: entities.employees.colour: unknown key (the keys here: table, key, key_unique, cursor, created, filter, "
        "soft_delete, fields)",
    ]


def test_a_key_of_a_merged_mapping_is_found_where_the_anchor_is(tmp_path):
    text = LINED.replace("      email: {column: mail, trim: true}", "      email: {<<: *text, column: mail}").replace(
        "first_name: {column: vorname}", "first_name: &text {column: vorname, trim: maybe}"
    )
    first, email = _refused(tmp_path, text)
    assert first.startswith("11:49: entities.employees.fields.first_name.trim: Input should be a valid boolean")
    assert email.startswith("11:49: entities.employees.fields.email.trim: Input should be a valid boolean")


def test_where_names_the_line_of_an_entity_and_of_a_column(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text(LINED)
    mapping = SourceMapping.from_file(path)
    assert mapping.where("entities", "employees", "table") == f"{path}:5:12"
    assert mapping.where("entities", "employees", "cursor", 1, "column") == f"{path}:9:18"
    assert mapping.where("entities", "employees", "fields", "hired_at", "column") == f"{path}:16:17"
    assert mapping.where("entities", "employees", "soft_delete", "column") == f"{path}:4:3"  # not given: the entity
    with pytest.raises(MappingError, match=f"^{path}:3:1: entity 'articles' is not mapped"):
        mapping.view("articles", None)
    assert SourceMapping().where("entities", "employees") == "identity"


def test_anchors_and_merge_keys_still_load(tmp_path):
    """The duplicate-key check passes YAML's merge key by (the review found it refused `<<: *x`)."""
    path = tmp_path / "merged.yaml"
    path.write_text(
        "entities:\n  articles:\n    table: a\n    fields:\n"
        "      title: &text {column: t, trim: true}\n      content: {<<: *text, column: c}\n"
    )
    mapping = load_mapping(path)
    assert mapping.entities["articles"].fields["content"].column == "c"
    assert mapping.entities["articles"].fields["title"].trim


def test_without_a_file_the_mapping_is_the_platforms_own_base_a(monkeypatch):
    monkeypatch.delenv("BASE_A_MAPPING_FILE", raising=False)
    mapping = SourceMapping.from_settings()
    assert mapping.is_identity and mapping.spec is IDENTITY
    assert mapping.table_of("employees") == "employees"
    assert mapping.spec.entities["employees"].cursor[0].type == "timestamp"


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"])
def test_the_time_zone_rule_is_zoneinfos_earlier_reading(zone):
    """Ambiguous wall times take the offset before the change (fold=0), skipped ones too."""
    rule, info = zone_rule(zone), ZoneInfo(zone)
    rng = random.Random(zone)
    walls = [datetime(1971, 1, 1) + timedelta(seconds=rng.randrange(60 * 365 * 86400)) for _ in range(20000)]
    for boundary in rule.boundaries:  # around every change, to the second
        walls += [boundary + timedelta(seconds=delta) for delta in (-3601, -1, 0, 1, 1800, 3600)]
    for wall in walls:
        assert rule.to_utc(wall) == wall.replace(tzinfo=info).astimezone(UTC), wall


def test_daylight_saving_edges_in_berlin():
    rule = zone_rule("Europe/Berlin")
    # Clocks go back at 03:00 CEST on 2024-10-27: 02:30 happens twice; the earlier (CEST) is taken.
    assert rule.to_utc(datetime(2024, 10, 27, 2, 30)) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    # Clocks go forward at 02:00 CET on 2024-03-31: 02:30 never happens; read with CET, = 03:30 CEST.
    assert rule.to_utc(datetime(2024, 3, 31, 2, 30)) == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)


def test_stamps_take_the_short_form_everywhere():
    """A column name alone is a datetime column, for `created` and each cursor item as for `cursor`."""
    spec = parse_mapping(with_entity(cursor=["geaendert_am", "angelegt_am"], created="angelegt_am"), "m.yaml")
    entity = spec.entities["employees"]
    assert [(c.column, c.type) for c in entity.cursor] == [("geaendert_am", "datetime"), ("angelegt_am", "datetime")]
    assert (entity.created.column, entity.created.type) == ("angelegt_am", "datetime")


ROOT = Path(__file__).resolve().parents[2]


def _loaded(tmp_path, text: str):
    path = tmp_path / "written.yaml"
    path.write_text(text)
    return load_mapping(path).entities["employees"]


def test_yaml_1_1s_implicit_types_no_longer_rewrite_what_the_author_wrote(tmp_path):
    """Outside probe: PyYAML's YAML 1.1 resolvers read the map keys `NO:`/`ON:` as false/true ("0",
    "1"), `2.50:` as 2.5, `010:` as octal 8, `1:30:` as sexagesimal 90, `deleted_when: YES` as true
    and `default: no` as 0, and `base-a check` said ok. A mapping file is read as YAML 1.2 (core
    schema), and where it means text, as written; what YAML 1.1 read otherwise must be quoted (below)."""
    text = (
        LINED.replace(
            "{1: Sales}", '{"NO": Norway, "ON": Ontario, 2.50: Sales, "010": X, "1:30": Y, 1e3: Z, 1: A, 1.0: B}'
        )
        .replace("    fields:\n", '    soft_delete: {column: geloescht, deleted_when: "YES"}\n    fields:\n')
        .replace("first_name: {column: vorname}", 'first_name: {column: vorname, default: "no"}')
        .replace("last_name: {column: nachname}", 'last_name: {column: nachname, default: "010"}')
        .replace('zero_date: "null"', 'zero_date: "null"\n        default: 2024-01-05')
        + "      position: {column: stelle, default: 2.50}\n      salary: {column: gehalt, default: 2.50}\n"
    )
    spec = _loaded(tmp_path, text)
    assert spec.fields["department"].map == {
        "NO": "Norway",
        "ON": "Ontario",
        "2.50": "Sales",
        "010": "X",
        "1:30": "Y",
        "1e3": "Z",
        "1": "A",
        "1.0": "B",
    }
    assert spec.soft_delete.deleted_when == "YES"
    assert spec.fields["first_name"].default == "no"
    assert spec.fields["last_name"].default == "010"  # a text field's default: its text
    assert spec.fields["position"].default == "2.50"
    assert spec.fields["hired_at"].default == "2024-01-05"  # no YAML 1.1 timestamp: a date written as text
    salary = spec.fields["salary"].default  # a number field's default: the number
    assert salary == 2.5 and type(salary) is float


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("{1: Sales}", "{NO: Norway}", "NO was read as 'false' by YAML 1.1"),
        ("{1: Sales}", "{01: Sales}", "01 was read as '1' by YAML 1.1"),
        ("{1: Sales}", "{1:30: Sales}", "1:30 was read as '90' by YAML 1.1"),
        ("    fields:\n", "    soft_delete: {column: geloescht, deleted_when: yes}\n    fields:\n", "yes was read as"),
        ("key: pers_nr", "key: pers_nr\n    cursor: off", "off was read as 'false' by YAML 1.1"),
    ],
)
def test_an_unquoted_value_yaml_1_1_read_otherwise_is_refused_at_its_line(tmp_path, old, new, said):
    """Earlier versions read mapping files as YAML 1.1: after an upgrade `deleted_when: yes` (true, a
    TINYINT flag's 1) would be the text "yes", which the column never reads as, and every row would
    sync as live, with no word (review). Quoted it is the text; unquoted it is refused, saying both."""
    (refusal,) = _refused(tmp_path, LINED.replace(old, new, 1))
    assert said in refusal and "quote it" in refusal and "or write" in refusal, refusal


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("0", 0),  # as before: the number, compared with a number column as a number, a text one as text
        ("2.50", "2.50"),
        ("1.0", "1.0"),  # was the integer 1, the text "1"
        ('"010"', "010"),
        ("true", True),
        ("FALSE", False),
        ('"yes"', "yes"),
        ("'Off'", "Off"),
        ('"J"', "J"),
        ("'null'", "null"),
    ],
)
def test_deleted_when_is_the_value_as_written(tmp_path, written, value):
    text = LINED.replace(
        "    fields:\n", f"    soft_delete: {{column: geloescht, deleted_when: {written}}}\n    fields:\n"
    )
    deleted_when = _loaded(tmp_path, text).soft_delete.deleted_when
    assert deleted_when == value and type(deleted_when) is type(value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (  # NULL is no value a map can match
            "{1: Sales}",
            "{1: Sales, null: Other}",
            "14:49: the key null is YAML's null, which no value is: a value map never matches NULL "
            '(`default:` gives NULL a value); quote it ("null") for that text',
        ),
        ("{1: Sales}", "{~: Other}", "14:39: the key ~ is YAML's null, which no value is: a value map never matches"),
        (  # the number 31, or the text "0x1F"?
            "{1: Sales}",
            "{1: Sales, 0x1F: X}",
            '14:49: the key 0x1F reads as the number 31: quote it ("0x1F") for that text, or write 31',
        ),
        ("{1: Sales}", "{.inf: X}", '14:39: the key .inf reads as the number inf: quote it (".inf") for that text'),
        (
            "{column: vorname}",
            "{column: vorname, default: 0o17}",
            "11:46: entities.employees.fields.first_name.default: 0o17 reads as the number 15: quote it "
            '("0o17") for that text, or write 15',
        ),
        (
            "{column: vorname}",
            "{column: vorname, default: true}",
            "11:46: entities.employees.fields.first_name.default: true is YAML's boolean, not text: quote it "
            '("true") for that text',
        ),
        (
            "    fields:\n",
            "    soft_delete: {column: aktiv, deleted_when: 0x1}\n    fields:\n",
            "10:48: entities.employees.soft_delete.deleted_when: 0x1 reads as the number 1: quote it",
        ),
        (  # `true:` and `1:` are both "1": one would silently replace the other
            "{1: Sales}",
            "{true: Sales, 1: Marketing}",
            "14:52: not valid YAML: found the key '1' a second time (first on line 14, written 'true')",
        ),
        ("{1: Sales}", '{1: Sales, "1": Marketing}', "14:49: not valid YAML: found the key '1' a second time"),
    ],
)
def test_a_value_that_reads_as_no_text_its_author_could_mean_is_refused_at_its_line(tmp_path, old, new, expected):
    assert LINED.count(old) == 1
    said = _refused(tmp_path, LINED.replace(old, new))
    assert said[0].startswith(expected), said


def test_a_key_written_twice_as_different_texts_is_two_keys(tmp_path):
    """`1:` and `1.0:` are the texts "1" and "1.0", which a DECIMAL(2,1) and an INT column give:
    the duplicate check compared Python's 1 == 1.0 (outside probe)."""
    spec = _loaded(tmp_path, LINED.replace("{1: Sales}", "{1: Sales, 1.0: Marketing}"))
    assert spec.fields["department"].map == {"1": "Sales", "1.0": "Marketing"}


def _documents():
    """Each mapping the repository ships: mappings/*.yaml, the tests' fixtures and the examples in the docs."""
    for path in sorted([*(ROOT / "mappings").glob("*.yaml"), *(ROOT / "tests/sync/fixtures").glob("*mapping*.yaml")]):
        yield str(path.relative_to(ROOT)), path.read_text()
    for doc in ("docs/mapping.md", "README.md"):
        for number, block in enumerate(re.findall(r"```yaml\n(.*?)```", (ROOT / doc).read_text(), re.DOTALL)):
            if block.startswith(("source:", "entities:")):
                yield f"{doc} example {number + 1}", block


@pytest.mark.parametrize(("name", "text"), list(_documents()), ids=lambda v: v if "\n" not in v else "")
def test_the_shipped_mappings_read_as_they_did_under_yaml_1_1(tmp_path, name, text):
    """The switch to YAML 1.2 changes nothing any shipped mapping wrote: each reads as PyYAML's
    YAML 1.1 safe loader read it."""
    path = tmp_path / "shipped.yaml"
    path.write_text(text)
    assert load_mapping(path) == parse_mapping(yaml.safe_load(text), name)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (  # latin1 (or Windows-1252): "Straße" on line 2
            "entities:\n  employees: {table: personal, filter: \"ort = 'Straße'\"}\n".encode("latin-1"),
            "2:52: the byte 0xDF is not UTF-8 text (the file is in another encoding, such as Latin-1 or "
            "Windows-1252): save the mapping file as UTF-8 text",
        ),
        (  # Notepad's "Unicode"
            "entities:\n  employees: {table: personal}\n".encode("utf-16"),
            '1:1: the mapping file is UTF-16 text (Notepad\'s "Unicode"), not UTF-8: save it as UTF-8 text',
        ),
        (  # a pasted BEL
            b"entities:\n  employees:\n    table: pers\x07onal\n",
            "3:16: the character #x0007 is a control character, which a YAML file may not hold: remove it, "
            "and save the mapping file as UTF-8 text",
        ),
    ],
)
def test_a_file_that_is_not_utf8_text_is_refused_at_its_line_not_with_a_traceback(tmp_path, data, expected):
    """Outside probe: UnicodeDecodeError and PyYAML's ReaderError escaped as tracebacks (and, not
    being MappingErrors, were retried by the DAGs)."""
    path = tmp_path / "encoded.yaml"
    path.write_bytes(data)
    with pytest.raises(MappingError) as refused:
        load_mapping(path)
    assert str(refused.value) == f"{path}:{expected}"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("employee", "entities.employee: Base B has no entity 'employee' (did you mean 'employees'?); "),
        ("Employees", "entities.Employees: Base B has no entity 'Employees' (did you mean 'employees'?); "),
        ("customers", "entities.customers: Base B has no entity 'customers'; it has articles, employees"),
    ],
)
def test_an_unknown_entity_is_named_at_its_own_line_with_the_closest_one(tmp_path, name, expected):
    """Outside probe: an unknown entity was reported at the `entities:` line, with no suggestion."""
    said = _refused(tmp_path, LINED.replace("  employees:\n", f"  {name}:\n"))
    assert said == [f"4:3: {expected}" + ("it has articles, employees" if "did you mean" in expected else "")]


def test_an_unknown_entity_does_not_hide_the_errors_of_the_known_ones(tmp_path):
    text = LINED.replace("trim: true", "trimm: true") + "  customers:\n    table: kunden\n"
    assert _refused(tmp_path, text) == [
        "18:3: entities.customers: Base B has no entity 'customers'; it has articles, employees",
        "13:29: entities.employees.fields.email.trimm: unknown key: did you mean 'trim'? (the keys here: "
        f"{FIELD_KEYS})",
    ]


@pytest.mark.parametrize("written", ["'no'", "'off'", "'12,50'", ".nan"])
def test_a_number_fields_default_that_is_no_number_is_refused(tmp_path, written):
    """`default: no` on salary was YAML 1.1's 0; in YAML 1.2 it is the text "no", which no NULL
    salary can become."""
    said = _refused(tmp_path, LINED + f"      salary: {{column: gehalt, default: {written}}}\n")
    shown = written.strip("'")
    assert said[0].startswith("18:41: entities.employees: fields.salary.default: "), said
    assert said[0].endswith("is no number (as salary takes)"), said
    assert repr(shown) in said[0] or shown == ".nan"


def test_key_unique_leaves_the_mapping_digest_as_it_was():
    """A changed digest makes every entity a full refresh on deploy. `key_unique` changes no record
    (only whether a task asks Base A which keys rows share): a mapping keeps the digest it had before
    the option existed (computed by that version), left at its default or set."""
    before = {"employees": "26658fdb8ea45e2f", "identity": "33343aa523679e57"}  # as the version before it computed
    assert SourceMapping(parse_mapping(MINIMAL)).digest("employees") == before["employees"]
    assert SourceMapping().digest("employees") == before["identity"]
    asserted = SourceMapping(parse_mapping(with_entity(key_unique=True)))
    assert asserted.spec.entities["employees"].key_unique
    assert asserted.digest("employees") == before["employees"]
    assert SourceMapping(parse_mapping(with_entity(table="other"))).digest("employees") != before["employees"]


def test_key_unique_is_a_yes_or_no():
    said = error_of(with_entity(key_unique="perhaps"))
    assert "key_unique" in said, said

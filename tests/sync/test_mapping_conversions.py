"""Values a mapping cannot convert, and text of other character sets, on the real MariaDB: the batch
extract's SQL, `apply` on the rows as read and the events path's decoding of the relay's envelopes of
the same rows give the same records, and refuse the same rows with the same reasons.

MariaDB converts silently where Python raises or refuses: CAST(... AS SIGNED) reads '12abc' as 12,
CONVERT of bytes that are no UTF-8 writes '?', DATE_FORMAT reads '2024-1-5' as 2024-01-05, and text
of a latin1 column never equals a utf8mb4 literal byte for byte. Each case here failed that way."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import mysql

from api_service.schemas import SCHEMAS
from base_sync.backends import MySQLBaseA
from base_sync.debezium import EnvelopeWriter, SourceColumn, Topics
from base_sync.dirty import Quarantined
from base_sync.mapping import SourceMapping, parse_mapping
from base_sync.records import encode
from base_sync.source import BaseA, source_engine

TABLE = """
CREATE TABLE kraft (
    nr INT NOT NULL PRIMARY KEY,
    stand TIMESTAMP(6) NOT NULL DEFAULT '2024-06-01 08:00:00',
    vorname VARCHAR(50) CHARACTER SET latin1 NOT NULL DEFAULT 'Ann',
    nachname VARCHAR(50) CHARACTER SET latin1 NOT NULL DEFAULT 'Lee',
    zusatz VARCHAR(50) CHARACTER SET latin1 NULL,
    mail VARCHAR(100) NOT NULL DEFAULT 'ann@example.com',
    abt VARCHAR(20) CHARACTER SET latin1 NULL,
    stelle VARBINARY(300) NULL,
    gehalt VARCHAR(100) NULL,
    bonus DECIMAL(12, 2) NULL,
    eintritt_jahr CHAR(4) NULL,
    eintritt_tag VARCHAR(20) NULL
) DEFAULT CHARSET = utf8mb4
"""
# The relay's encoding of the table (Debezium's MySQL type mapping).
COLUMNS = [
    SourceColumn("nr", "int32", optional=False),
    SourceColumn("stand", "timestamp", optional=False),
    *(SourceColumn(name, "string") for name in ("vorname", "nachname", "zusatz", "mail", "abt")),
    SourceColumn("stelle", "bytes"),
    SourceColumn("gehalt", "string"),
    SourceColumn("bonus", "decimal", scale=2, precision=12),
    SourceColumn("eintritt_jahr", "string"),
    SourceColumn("eintritt_tag", "string"),
]
REQUIRED = {"first_name": {"column": "vorname"}, "last_name": {"column": "nachname"}, "email": {"column": "mail"}}
TEXT = {
    "first_name": {"column": "vorname", "trim": True, "case": "upper"},
    "last_name": {"concat": ["nachname", "zusatz"], "separator": " → "},  # no arrow in latin1
    "department": {"column": "abt", "map": {"Büro": "Office", "Lager": "Stock"}, "unmapped": "reject"},
}
POSITION = {"column": "stelle", "cast": "string", "too_long": "truncate"}
SALARY = {"column": "gehalt", "cast": "integer"}
HIRED = {"concat": ["eintritt_jahr", "eintritt_tag"], "separator": "-"}
VERSION = "2024-06-01T08:00:00.000000Z"
RANGE = "-9223372036854775808..9223372036854775807"


def mapping(table: str = "kraft", **fields) -> SourceMapping:
    """The employees from `table`: the required fields read plainly, `fields` as given."""
    entity = {"table": table, "key": "nr", "cursor": {"column": "stand", "type": "timestamp"}}
    return SourceMapping(parse_mapping({"entities": {"employees": {**entity, "fields": {**REQUIRED, **fields}}}}))


@pytest.fixture
def engine(make_mariadb_database):
    engine = source_engine(make_mariadb_database())
    with engine.begin() as conn:
        conn.execute(text(TABLE))
    yield engine
    engine.dispose()


def insert(engine, *rows: dict) -> None:
    with engine.begin() as conn:
        for row in rows:
            names = ", ".join(row)
            conn.execute(text(f"INSERT INTO kraft ({names}) VALUES ({', '.join(':' + n for n in row)})"), row)


def outcomes(base_a: BaseA, columns: list[SourceColumn] = COLUMNS) -> tuple[dict, dict, dict]:
    """{key: outcome} of every row: as the batch extract renders it on MariaDB, as `apply` maps the
    row read as it is, as the events path decodes the relay's envelope of it (`columns`: how the
    relay types the table). An outcome is the record as the API reads it, or ("refused", version, reasons)."""
    view = base_a.view("employees")
    table = view.spec.table
    batch = {_key(r): r for chunk in base_a.extract("employees", None, 100) for r in chunk}
    rows = {r["nr"]: r for chunk in base_a.rows_by_keys("employees", sorted(batch), 100) for r in chunk}
    python = {key: view.apply(row) for key, row in rows.items()}
    topics = Topics("p", "legacy", base_a.mapping)
    writer = EnvelopeWriter(table, columns, server_name="p", database="legacy")
    events = {}
    for key, row in rows.items():
        change = topics.decode(f"p.legacy.{table}", writer.envelope("c", None, row, {"ts_ms": 1}, 1))
        events[key] = change.quarantined if change.action == "quarantine" else change.record
    return tuple({k: _outcome(v) for k, v in sorted(found.items())} for found in (batch, python, events))


def _key(record) -> int:
    return record.source_id if isinstance(record, Quarantined) else record["source_id"]


def _outcome(record):
    if isinstance(record, Quarantined):
        return ("refused", record.version, record.reasons)
    read = SCHEMAS["employees"].fast.decode(encode([record]))  # None: not a record the fast path reads
    return read[0] if read else ("a record the API's fast path does not read", record)


def assert_same_on_every_path(base_a: BaseA, columns: list[SourceColumn] = COLUMNS) -> dict:
    batch, python, events = outcomes(base_a, columns)
    assert batch == python
    assert events == python
    return batch


def refused(*reasons: tuple[str, str]) -> tuple:
    return ("refused", VERSION, [{"field": field, "message": message} for field, message in reasons])


def test_cast_integer_takes_whole_numbers_and_refuses_any_other_text_with_the_reason(engine):
    insert(
        engine,
        {"nr": 1, "gehalt": " 42 "},  # spaces around a whole number: no doubt about it
        {"nr": 2, "gehalt": "+7"},
        {"nr": 3, "gehalt": "007"},
        {"nr": 4, "gehalt": None},
        {"nr": 5, "gehalt": "1.234,56"},  # MariaDB: 1
        {"nr": 6, "gehalt": "12abc"},  # 12
        {"nr": 7, "gehalt": "abc"},  # 0
        {"nr": 8, "gehalt": "99999999999999999999"},  # -1
        {"nr": 9, "gehalt": ""},  # 0
        {"nr": 10, "gehalt": "12\n"},  # 12
        {"nr": 11, "gehalt": "１２"},  # fullwidth digits: Python's int() reads 12
        {"nr": 12, "gehalt": "1_000"},  # Python's int() reads 1000
        {"nr": 13, "gehalt": "9" * 60},  # a long value: the reason quotes its start
        {"nr": 14, "gehalt": "9223372036854775808"},  # one above BIGINT
    )
    found = assert_same_on_every_path(BaseA(engine, mapping(salary=SALARY)))
    assert [found[k].salary for k in (1, 2, 3)] == [42, 7, 7]
    assert found[4].salary is None

    def not_whole(value: str) -> tuple:
        return refused(("salary", f"salary: cast integer: {value} is not a whole number ({RANGE})"))

    assert found[5] == not_whole("'1.234,56'")
    assert found[6] == not_whole("'12abc'")
    assert found[7] == not_whole("'abc'")
    assert found[8] == not_whole("'99999999999999999999'")
    assert found[9] == not_whole("''")
    assert found[10] == not_whole("'12\\n'")
    assert found[11] == not_whole("'１２'")
    assert found[12] == not_whole("'1_000'")
    assert found[13] == not_whole("'" + "9" * 40 + "'…")
    assert found[14] == not_whole("'9223372036854775808'")


def test_cast_integer_refuses_a_decimal_with_a_fraction_rather_than_round_it(engine):
    insert(engine, {"nr": 1, "bonus": "12.50"}, {"nr": 2, "bonus": "-0.40"}, {"nr": 3, "bonus": None})
    found = assert_same_on_every_path(BaseA(engine, mapping(salary={"column": "bonus", "cast": "integer"})))
    # MariaDB's CAST(12.50 AS SIGNED) is 13, Python's int(Decimal("12.50")) 12: neither is the value.
    assert found[1] == refused(("salary", f"salary: cast integer: '12.50' is not a whole number ({RANGE})"))
    assert found[2] == refused(("salary", f"salary: cast integer: '-0.40' is not a whole number ({RANGE})"))
    assert found[3].salary is None


def test_cast_string_of_bytes_that_are_no_utf8_refuses_the_row_on_both_paths(engine):
    insert(
        engine,
        {"nr": 1, "stelle": "Müller-Analyst".encode()},
        {"nr": 2, "stelle": b"\xc3(\xff"},  # MariaDB's CONVERT writes '?(?'
        {"nr": 3, "stelle": b"\xed\xa0\x80"},  # a UTF-16 surrogate: MariaDB takes it, Python does not
        {"nr": 4, "stelle": b"\xc0\x80"},  # an overlong NUL
        {"nr": 5, "stelle": "ü".encode() * 150},  # 300 bytes, 150 characters: truncated to 100 characters
        {"nr": 6, "stelle": b"ok " * 30 + b"\xff"},  # the reason shows the first 20 bytes
    )
    found = assert_same_on_every_path(BaseA(engine, mapping(position=POSITION)))
    assert found[1].position == "Müller-Analyst"
    assert found[2] == refused(("stelle", "stelle is not UTF-8 text: X'C328FF'"))
    assert found[3] == refused(("stelle", "stelle is not UTF-8 text: X'EDA080'"))
    assert found[4] == refused(("stelle", "stelle is not UTF-8 text: X'C080'"))
    assert found[5].position == "ü" * 100
    assert found[6] == refused(("stelle", "stelle is not UTF-8 text: X'" + "6F6B20" * 6 + "6F6B…'"))


def test_text_of_a_latin1_column_is_mapped_compared_and_transformed_as_unicode(engine):
    insert(
        engine,
        {"nr": 1, "abt": "Büro", "vorname": "  ÿvonne µ ", "nachname": "Groß", "zusatz": "Weiß"},
        {"nr": 2, "abt": "Lager", "zusatz": None},
        {"nr": 3, "abt": "Küche"},
    )
    found = assert_same_on_every_path(BaseA(engine, mapping(**TEXT)))
    assert found[1].department == "Office"  # the batch path refused it: 'Büro' never matched
    assert found[1].first_name == "ŸVONNE Μ"  # latin1's UPPER leaves ÿ and µ
    assert found[1].last_name == "Groß → Weiß"  # MariaDB refused the query: an illegal mix of collations
    assert found[2].department == "Stock" and found[2].last_name == "Lee"
    assert found[3] == refused(("department", "department: the value 'Küche' is not in the mapping's value map"))


def test_a_date_made_of_text_must_be_a_real_date_written_yyyy_mm_dd(engine):
    insert(
        engine,
        {"nr": 1, "eintritt_jahr": "2024", "eintritt_tag": "01-15"},
        {"nr": 2, "eintritt_jahr": "2024", "eintritt_tag": "1-5"},  # DATE_FORMAT: 2024-01-05
        {"nr": 3, "eintritt_jahr": "2024", "eintritt_tag": "02-30"},  # NULL
        {"nr": 4, "eintritt_jahr": "2024", "eintritt_tag": "01-15 garbage"},  # 2024-01-15
        {"nr": 5, "eintritt_jahr": None, "eintritt_tag": None},  # nothing to read: no date
        {"nr": 6, "eintritt_jahr": "0000", "eintritt_tag": "00-00"},
    )
    found = assert_same_on_every_path(BaseA(engine, mapping(hired_at=HIRED)))
    assert str(found[1].hired_at) == "2024-01-15"
    assert found[2] == refused(("hired_at", "hired_at is not a valid date: 2024-1-5"))
    assert found[3] == refused(("hired_at", "hired_at is not a valid date: 2024-02-30"))
    assert found[4] == refused(("hired_at", "hired_at is not a valid date: 2024-01-15 garbage"))
    assert found[5].hired_at is None
    assert found[6] == refused(("hired_at", "hired_at is the zero date 0000-00-00"))
    lenient = assert_same_on_every_path(BaseA(engine, mapping(hired_at={**HIRED, "zero_date": "null"})))
    assert [lenient[k].hired_at for k in (2, 3, 4, 6)] == [None] * 4


def test_every_refusal_of_a_row_is_named_in_the_order_of_its_fields(engine):
    insert(
        engine, {"nr": 1, "abt": "Küche", "stelle": b"\xff", "gehalt": "x", "eintritt_jahr": "1", "eintritt_tag": "2"}
    )
    every = {**TEXT, "position": POSITION, "salary": SALARY, "hired_at": HIRED}
    found = assert_same_on_every_path(BaseA(engine, mapping(**every)))
    assert found[1] == refused(
        ("department", "department: the value 'Küche' is not in the mapping's value map"),
        ("stelle", "stelle is not UTF-8 text: X'FF'"),
        ("salary", f"salary: cast integer: 'x' is not a whole number ({RANGE})"),
        ("hired_at", "hired_at is not a valid date: 1-2"),
    )


FLAGGED = """
CREATE TABLE flagged (
    nr INT NOT NULL PRIMARY KEY,
    stand TIMESTAMP(6) NOT NULL DEFAULT '2024-06-01 08:00:00',
    vorname VARCHAR(50) NOT NULL DEFAULT 'Ann',
    nachname VARCHAR(50) NOT NULL DEFAULT 'Lee',
    mail VARCHAR(100) NOT NULL DEFAULT 'ann@example.com',
    text_flag VARCHAR(5) COLLATE utf8mb4_general_ci NULL,
    char_flag CHAR(3) COLLATE utf8mb4_general_ci NULL,
    int_flag INT NULL,
    decimal_flag DECIMAL(5, 2) NULL,
    latin1_flag VARCHAR(5) CHARACTER SET latin1 NULL
) DEFAULT CHARSET = utf8mb4
"""
FLAGGED_COLUMNS = [
    SourceColumn("nr", "int32", optional=False),
    SourceColumn("stand", "timestamp", optional=False),
    *(SourceColumn(name, "string") for name in ("vorname", "nachname", "mail", "text_flag", "char_flag")),
    SourceColumn("int_flag", "int32"),
    SourceColumn("decimal_flag", "decimal", scale=2, precision=5),
    SourceColumn("latin1_flag", "string"),
]


def deleted_on_every_path(
    engine, flag: str, deleted_when, table: str = "flagged", columns: list[SourceColumn] = FLAGGED_COLUMNS
) -> set[int]:
    """The keys of the rows `soft_delete: {column: flag, deleted_when: ...}` deletes: as the batch
    extract leaves them out (SQL), as `is_deleted` finds them on the rows read as they are, as the
    events path decodes the relay's envelopes of them (a delete); the same on every path."""
    entity = {"table": table, "key": "nr", "cursor": {"column": "stand", "type": "timestamp"}}
    entity["soft_delete"] = {"column": flag, "deleted_when": deleted_when}
    base_a = BaseA(engine, SourceMapping(parse_mapping({"entities": {"employees": {**entity, "fields": REQUIRED}}})))
    with engine.connect() as conn:
        keys = [k for (k,) in conn.execute(text(f"SELECT nr FROM {table} ORDER BY nr"))]
    live = {_key(r) for chunk in base_a.extract("employees", None, 100) for r in chunk}
    batch = set(keys) - live
    view = base_a.view("employees")
    rows = {r["nr"]: r for chunk in base_a.rows_by_keys("employees", keys, 100) for r in chunk}
    python = {key for key, row in rows.items() if view.is_deleted(row)}
    topics = Topics("p", "legacy", base_a.mapping)
    writer = EnvelopeWriter(table, columns, server_name="p", database="legacy")
    events = set()
    for key, row in rows.items():
        if topics.decode(f"p.legacy.{table}", writer.envelope("u", None, row, {"ts_ms": 1}, 1)).is_delete:
            events.add(key)
    assert batch == python
    assert events == python
    return batch


def test_a_soft_delete_flag_compares_text_exactly_and_numbers_as_numbers_on_every_path(engine):
    """A case-insensitive collation made the batch delete 'j' and 'J ' for `deleted_when: "J"`, which
    the events path kept: Base B flipped between deleted and live with the path that read last."""
    with engine.begin() as conn:
        conn.execute(text(FLAGGED))
        rows = [  # nr, text_flag, char_flag, int_flag, decimal_flag, latin1_flag
            (1, "J", "J", 0, "0.00", "Ü"),
            (2, "j", "j", 1, "0.50", "ü"),
            (
                3,
                "J ",
                "J  ",
                None,
                None,
                "Ü ",
            ),  # PAD SPACE: 'J ' = 'J' in the collation; a CHAR keeps no trailing space
            (4, " J", " J", 0, "1.00", "U"),
            (5, None, None, 2, "-0.00", None),
            (6, "0", "0", 0, "0.00", "0"),
            (7, "abc", "0.0", 1, "1.00", "abc"),  # '0.0' and 'abc' equal 0 as numbers, not as text
        ]
        for row in rows:
            conn.execute(
                text(
                    "INSERT INTO flagged (nr, text_flag, char_flag, int_flag, decimal_flag, latin1_flag) "
                    "VALUES (:n, :t, :c, :i, :d, :l)"
                ),
                dict(zip("ntcidl", row, strict=True)),
            )
    assert deleted_on_every_path(engine, "text_flag", "J") == {1}
    assert deleted_on_every_path(engine, "char_flag", "J") == {1, 3}  # CHAR drops trailing spaces when read
    assert deleted_on_every_path(engine, "text_flag", 0) == {6}
    assert deleted_on_every_path(engine, "char_flag", 0) == {6}
    assert deleted_on_every_path(engine, "int_flag", 0) == {1, 4, 6}
    assert deleted_on_every_path(engine, "int_flag", False) == {1, 4, 6}
    assert deleted_on_every_path(engine, "decimal_flag", 0) == {1, 5, 6}  # 0.00 is the number 0
    assert deleted_on_every_path(engine, "decimal_flag", "0.5") == {2}
    assert deleted_on_every_path(engine, "latin1_flag", "Ü") == {1}  # as Unicode, whatever the character set
    # A session in utf8mb3 (`?charset=utf8`) refused the utf8mb4 collation (1253): every read failed.
    url = engine.url.update_query_dict({"charset": "utf8"}).render_as_string(hide_password=False)
    utf8mb3 = source_engine(url)
    try:
        assert deleted_on_every_path(utf8mb3, "text_flag", "J") == {1}
        assert deleted_on_every_path(utf8mb3, "latin1_flag", "Ü") == {1}
    finally:
        utf8mb3.dispose()


def test_the_exact_compare_names_each_servers_binary_no_pad_collation():
    """MariaDB's utf8mb4_nopad_bin is unknown to MySQL 8 (1273), which calls it utf8mb4_0900_bin."""
    flag = MySQLBaseA().exact_text("J")
    mariadb, mysql8 = mysql.dialect(), mysql.dialect()
    mariadb.is_mariadb = True
    assert "COLLATE utf8mb4_nopad_bin" in str(select(flag).compile(dialect=mariadb))
    assert "COLLATE utf8mb4_0900_bin" in str(select(flag).compile(dialect=mysql8))


BITS = """
CREATE TABLE schalter (
    nr INT NOT NULL PRIMARY KEY,
    stand TIMESTAMP(6) NOT NULL DEFAULT '2024-06-01 08:00:00',
    vorname VARCHAR(50) NOT NULL DEFAULT 'Ann',
    nachname VARCHAR(50) NOT NULL DEFAULT 'Lee',
    mail VARCHAR(100) NOT NULL DEFAULT 'ann@example.com',
    titel VARCHAR(50) NOT NULL DEFAULT 'small',
    b BIT(1) NULL,
    b8 BIT(8) NULL,
    b64 BIT(64) NULL
) DEFAULT CHARSET = utf8mb4
"""
BITS_COLUMNS = [
    SourceColumn("nr", "int32", optional=False),
    SourceColumn("stand", "timestamp", optional=False),
    *(SourceColumn(name, "string") for name in ("vorname", "nachname", "mail", "titel")),
    SourceColumn("b", "bits", length=1),
    SourceColumn("b8", "bits", length=8),
    SourceColumn("b64", "bits", length=64),
]


@pytest.fixture
def bits(engine):
    """A table of BIT columns: 1 holds b'1', b'01000001' (65) and 2^64-1; 2 zeros; 3 NULLs."""
    with engine.begin() as conn:
        conn.execute(text(BITS))
        conn.execute(
            text(
                "INSERT INTO schalter (nr, b, b8, b64) VALUES "
                "(1, b'1', b'01000001', ~0), (2, b'0', b'0', b'0'), (3, NULL, NULL, NULL)"
            )
        )
    return engine


def test_a_bit_column_is_read_as_its_number_in_a_concat_a_cast_and_a_value_map(bits):
    """A BIT is bytes to MariaDB: CONCAT_WS with one gave bytes, stored as the text "b'small-A'";
    CAST(... AS CHAR) wrote the byte 0x01; BINARY(b'1') matched no map key '1'; the refusal flags
    came back as bytes and crashed the load (TypeError). Every path reads its number now."""
    fields = {
        "first_name": {"concat": ["titel", "b8"], "separator": "-"},
        "last_name": {"column": "b", "cast": "string", "default": "none"},
        "department": {"column": "b", "map": {1: "yes", 0: "no"}, "unmapped": "reject"},
        "position": {"concat": ["b", "b64"], "separator": "/"},
        "salary": {"column": "b8", "cast": "integer"},
    }
    found = assert_same_on_every_path(BaseA(bits, mapping("schalter", **fields)), BITS_COLUMNS)
    one, zero, null = found[1], found[2], found[3]
    assert (one.first_name, zero.first_name, null.first_name) == ("small-65", "small-0", "small")
    assert (one.last_name, zero.last_name, null.last_name) == ("1", "0", "none")
    assert (one.department, zero.department, null.department) == ("yes", "no", None)
    assert (one.position, zero.position, null.position) == ("1/18446744073709551615", "0/0", None)  # only NULLs
    assert (one.salary, zero.salary, null.salary) == (65, 0, None)
    # A value map that keeps what it does not list; 2^64-1 is no BIGINT: refused, not wrapped around.
    fields = {
        "department": {"column": "b8", "map": {65: "A"}, "unmapped": "null"},
        "salary": {"column": "b64", "cast": "integer"},
    }
    found = assert_same_on_every_path(BaseA(bits, mapping("schalter", **fields)), BITS_COLUMNS)
    assert found[1] == refused(
        ("salary", f"salary: cast integer: '18446744073709551615' is not a whole number ({RANGE})")
    )
    assert (found[2].department, found[2].salary) == (None, 0)


def test_a_bit_soft_delete_flag_is_its_number_on_every_path(bits):
    def deleted(flag: str, deleted_when) -> set[int]:
        return deleted_on_every_path(bits, flag, deleted_when, "schalter", BITS_COLUMNS)

    assert deleted("b", 1) == deleted("b", True) == deleted("b", "1") == {1}
    assert deleted("b", False) == deleted("b", 0) == {2}
    assert deleted("b8", 65) == {1} and deleted("b8", "0") == {2}
    assert deleted("b64", "18446744073709551615") == {1}


TIMES = """
CREATE TABLE zeiten (
    nr INT NOT NULL PRIMARY KEY,
    stand TIMESTAMP(6) NOT NULL DEFAULT '2024-06-01 08:00:00',
    vorname VARCHAR(50) NOT NULL DEFAULT 'Ann',
    nachname VARCHAR(50) NOT NULL DEFAULT 'Lee',
    mail VARCHAR(100) NOT NULL DEFAULT 'ann@example.com',
    dauer TIME NULL,
    fein TIME(6) NULL,
    seit DATETIME(6) NULL,
    milli DATETIME(3) NULL
) DEFAULT CHARSET = utf8mb4
"""
TIMES_COLUMNS = [
    SourceColumn("nr", "int32", optional=False),
    SourceColumn("stand", "timestamp", optional=False),
    *(SourceColumn(name, "string") for name in ("vorname", "nachname", "mail")),
    SourceColumn("dauer", "time"),
    SourceColumn("fein", "time"),
    SourceColumn("seit", "datetime", fsp=6),
    SourceColumn("milli", "datetime", fsp=3),
]


def test_times_and_datetimes_are_written_as_mariadb_writes_them_on_every_path(engine):
    """An outside probe: `cast: string` of TIME -01:00:00 gave '-1 day, 23:00:00' on the events
    path (Python's text of a timedelta), 838:59:59 '34 days, 22:59:59', and a DATETIME(6) in a
    concat lost its microseconds there. MariaDB writes a column's precision (.123 of a DATETIME(3),
    .000000 of a DATETIME(6)), which an event does not carry: both paths leave the fraction's
    trailing zeros out."""
    with engine.begin() as conn:
        conn.execute(text(TIMES))
        conn.execute(
            text(
                "INSERT INTO zeiten (nr, dauer, fein, seit, milli) VALUES (1, '-01:00:00', '-00:00:00.5', "
                "'2024-01-02 03:04:05.678900', '2024-01-02 03:04:05.120'), (2, '838:59:59', '00:00:01.25', "
                "'2024-01-02 03:04:05', '2024-01-02 03:04:00'), (3, '00:00:01', '-838:59:58', NULL, NULL)"
            )
        )
    fields = {
        "position": {"column": "dauer", "cast": "string"},
        "department": {"column": "fein", "cast": "string"},
        "last_name": {"concat": ["nachname", "seit"], "separator": " "},
        "first_name": {"column": "milli", "cast": "string", "default": "none"},
    }
    found = assert_same_on_every_path(BaseA(engine, mapping("zeiten", **fields)), TIMES_COLUMNS)
    assert [(r.position, r.department, r.last_name, r.first_name) for r in found.values()] == [
        ("-01:00:00", "-00:00:00.5", "Lee 2024-01-02 03:04:05.6789", "2024-01-02 03:04:05.12"),
        ("838:59:59", "00:00:01.25", "Lee 2024-01-02 03:04:05", "2024-01-02 03:04:00"),
        ("00:00:01", "-838:59:58", "Lee", "none"),
    ]
    # A value map compares the same text: a DATETIME(6)'s .678900 is .6789 to both paths.
    fields = {"position": {"column": "seit", "map": {"2024-01-02 03:04:05.6789": "early"}, "unmapped": "reject"}}
    found = assert_same_on_every_path(BaseA(engine, mapping("zeiten", **fields)), TIMES_COLUMNS)
    assert found[1].position == "early" and found[3].position is None
    assert found[2] == refused(
        ("position", "position: the value '2024-01-02 03:04:05' is not in the mapping's value map")
    )


ZEROFILL = """
CREATE TABLE nummern (
    nr INT(6) UNSIGNED ZEROFILL NOT NULL PRIMARY KEY,
    stand TIMESTAMP(6) NOT NULL DEFAULT '2024-06-01 08:00:00',
    vorname VARCHAR(50) NOT NULL DEFAULT 'Ann',
    nachname VARCHAR(50) NOT NULL DEFAULT 'Lee',
    mail VARCHAR(100) NOT NULL DEFAULT 'ann@example.com',
    titel VARCHAR(50) NOT NULL DEFAULT 'small',
    code SMALLINT(4) UNSIGNED ZEROFILL NULL,
    d DOUBLE ZEROFILL NULL,
    n DECIMAL(6, 2) ZEROFILL NULL
) DEFAULT CHARSET = utf8mb4
"""
ZEROFILL_COLUMNS = [
    SourceColumn("nr", "int64", optional=False),
    SourceColumn("stand", "timestamp", optional=False),
    *(SourceColumn(name, "string") for name in ("vorname", "nachname", "mail", "titel")),
    SourceColumn("code", "int32"),
    SourceColumn("d", "float64"),
    SourceColumn("n", "decimal", scale=2, precision=6),
]


def test_a_zerofill_column_is_its_number_on_every_path(engine):
    """MariaDB writes a ZEROFILL integer's text padded ('0042'), mysql-replication and Debezium give
    its number: read as its number on every path, as the key's checksum hashes it."""
    with engine.begin() as conn:
        conn.execute(text(ZEROFILL))
        conn.execute(
            text("INSERT INTO nummern (nr, code, d, n) VALUES (7, 42, 1.1, 3.5), (8, 0, 0, 0), (9, NULL, NULL, NULL)")
        )
    fields = {
        "first_name": {"concat": ["titel", "code"], "separator": "-"},
        "last_name": {"column": "code", "cast": "string", "default": "none"},
        "department": {"column": "code", "map": {42: "yes", 0: "no"}, "unmapped": "reject"},
        "position": {"concat": ["nr", "code"], "separator": "/"},
        "salary": {"column": "code", "cast": "integer"},
    }
    found = assert_same_on_every_path(BaseA(engine, mapping("nummern", **fields)), ZEROFILL_COLUMNS)
    one, zero, null = found[7], found[8], found[9]
    assert (one.first_name, zero.first_name, null.first_name) == ("small-42", "small-0", "small")
    assert (one.last_name, zero.last_name, null.last_name) == ("42", "0", "none")
    assert (one.department, zero.department, null.department) == ("yes", "no", None)
    assert (one.position, null.position) == ("7/42", "9")
    assert (one.salary, zero.salary, null.salary) == (42, 0, None)
    # A DOUBLE and a DECIMAL ZEROFILL too (a FLOAT's + 0 would be a DOUBLE: not mended, README)
    fields = {"position": {"column": "d", "cast": "string"}, "department": {"column": "n", "cast": "string"}}
    found = assert_same_on_every_path(BaseA(engine, mapping("nummern", **fields)), ZEROFILL_COLUMNS)
    assert (found[7].position, found[7].department, found[8].position, found[8].department) == (
        "1.1",
        "3.50",
        "0",
        "0.00",
    )

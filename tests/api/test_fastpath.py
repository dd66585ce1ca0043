"""The msgspec fast pass is never laxer than pydantic, and gives the same values."""

from __future__ import annotations

import json
import re

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from api_service import json_body
from api_service.bulk_input import read_upserts
from api_service.schemas import SCHEMAS

EMPLOYEES = SCHEMAS["employees"]
VALID = {
    "source_id": 7,
    "source_updated_at": "2024-01-01T10:00:00+02:00",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "department": "Math",
    "position": None,
    "salary": "1234.50",
    "hired_at": "1843-07-01",
}


def both(record: dict | bytes):
    """(fast result, pydantic result) for a record or one record's JSON text; None for a rejection.
    pydantic sees what the API gives it: the JSON as `json_body` reads it."""
    body = b"[" + record + b"]" if isinstance(record, bytes) else json.dumps([record]).encode()  # big ints too
    fast = EMPLOYEES.fast.decode(body)
    try:
        slow = EMPLOYEES.bulk_record.model_validate(json_body.loads(body)[0])
    except (ValidationError, json_body.JsonError):  # json.dumps writes NaN, which JSON has not
        slow = None
    return (fast[0] if fast else None), slow


def assert_not_laxer(record: dict) -> None:
    fast, slow = both(record)
    if fast is None:
        return  # pydantic decides, and explains
    assert slow is not None, f"fast pass accepted what pydantic rejects: {record}"
    for name in EMPLOYEES.bulk_record.model_fields:
        assert getattr(fast, name) == getattr(slow, name), name


def test_a_valid_record_is_read_the_same_by_both():
    fast, slow = both(VALID)
    assert fast is not None and slow is not None
    assert fast.source_updated_at.isoformat() == "2024-01-01T08:00:00+00:00"
    assert_not_laxer(VALID)


@pytest.mark.parametrize(
    "change",
    [
        {"source_id": True},
        {"source_id": 0},
        {"source_id": 2**63},
        {"source_id": 7.0},
        {"source_id": "7"},
        {"source_updated_at": 1700000000},
        {"source_updated_at": "1700000000"},
        {"source_updated_at": "0001-01-01T00:00:00+05:00"},
        {"source_updated_at": "2024-13-01T00:00:00Z"},
        {"first_name": ""},
        {"first_name": None},
        {"first_name": "x" * 101},
        {"last_name": "nul\x00"},
        {"email": "not-an-email"},
        {"salary": "-0.01"},
        {"salary": "12345678901.00"},
        {"salary": "1.001"},
        {"salary": "NaN"},
        {"salary": "Infinity"},
        {"salary": 1e308},
        {"salary": 1.5},
        {"salary": "1_000"},
        {"salary": " 12"},
        {"salary": "12 "},
        {"salary": "+12"},
        {"salary": "12."},
        {"salary": ".5"},
        {"salary": "\u0661\u0662"},  # Arabic-Indic digits
        {"salary": "\uff11\uff12"},  # full-width digits
        {"salary": "1E+1000000"},  # past the decimal context's exponent: Overflow, no InvalidOperation
        {"salary": "-5E+1000001"},
        {"salary": ""},
        {"salary": True},
        {"source_updated_at": "2024-01-01T00:00:00.1234565Z"},
        {"source_updated_at": "9999-12-31T23:59:59.9999999Z"},
        {"hired_at": "2020-02-30"},
        {"hired_at": 0},
        {"unknown": 1},
        {"created_at": "yesterday"},
    ],
)
def test_tricky_values_are_never_accepted_by_the_fast_pass_alone(change):
    assert_not_laxer({**VALID, **change})


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["2024-01-01", "2024-01-01T00:00:00Z", "12.5", "a@b.co", "0", "-1"]),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*VALID, "extra"]), values, max_size=4))
def test_random_changes_never_make_the_fast_pass_laxer(change):
    assert_not_laxer({**VALID, **change})


def _read_ndjson(body: bytes):
    return read_upserts(body, "application/x-ndjson", 100, EMPLOYEES.bulk_records, EMPLOYEES.fast)


def test_ndjson_skips_blank_lines():
    body = orjson.dumps(VALID) + b"\n\n  \n" + orjson.dumps({**VALID, "source_id": 8}) + b"\r\n"
    batch = _read_ndjson(body)
    assert [r.source_id for _, r in batch.records] == [7, 8] and batch.received == 2


BAD = orjson.dumps({**VALID, "source_id": 9, "first_name": ""})


@pytest.mark.parametrize("bad_sibling", [False, True], ids=["alone", "beside-a-bad-record"])
def test_ndjson_is_framed_the_same_whichever_pass_reads_it(bad_sibling):
    """A record's fate must not depend on the other records: a CR inside a record is JSON whitespace
    (no line end), two records on one line are one bad line, on either validation pass."""
    with_cr = orjson.dumps(VALID).replace(b'"source_id":7,', b'"source_id":7,\r')
    two_on_a_line = orjson.dumps({**VALID, "source_id": 10}) + b" " + orjson.dumps({**VALID, "source_id": 11})
    body = b"\n".join([with_cr, two_on_a_line, *([BAD] if bad_sibling else [])])
    batch = _read_ndjson(body)
    assert batch.received == 2 + bad_sibling
    assert [r.source_id for _, r in batch.records] == [7]
    rejected = {r.index: r for r in batch.rejected}
    assert "line 2 is not valid JSON" in rejected[1].reasons[0]["message"]


def _batch(**changes_of_third: object) -> bytes:
    """Five valid records, the third one changed: the fast pass checks whole columns at once."""
    records = [{**VALID, "source_id": i, "email": f"e{i}@example.com"} for i in range(1, 6)]
    records[2].update(changes_of_third)
    return orjson.dumps(records)


@pytest.mark.parametrize(
    "salary", ["-0.01", "9999999999.999", "10000000000", "1.001", "NaN", "sNaN", "-Infinity", "1E+1000000"]
)
def test_one_bad_decimal_among_several_sends_the_batch_to_pydantic(salary):
    assert EMPLOYEES.fast.decode(_batch(salary=salary)) is None


def test_a_batch_reads_decimals_and_offsets_as_pydantic_does():
    body = _batch(
        salary="9999999999.990", source_updated_at="2024-01-01T10:00:00", updated_at="2024-01-01T12:00:00+02:00"
    )
    fast = EMPLOYEES.fast.decode(body)
    slow = [EMPLOYEES.bulk_record.model_validate(record) for record in orjson.loads(body)]
    assert fast is not None
    for fast_record, slow_record in zip(fast, slow, strict=True):
        for name in EMPLOYEES.bulk_record.model_fields:
            assert getattr(fast_record, name) == getattr(slow_record, name), name
    third = fast[2]
    assert third.source_updated_at.isoformat() == "2024-01-01T10:00:00+00:00"
    assert third.updated_at.isoformat() == "2024-01-01T10:00:00+00:00"


@pytest.mark.parametrize(
    ("salary", "stored"),
    [
        (b"1234.5", "1234.50"),
        (b"1.0000000000000001", None),  # a float would read 1.0
        (b"1e-400", None),  # a float would read 0.0
        (b"123456789012345678901234", None),  # a float would read 1.2345678901234568e+23
        (b"1E+2", "100.00"),
        (b'"1E+2"', "100.00"),
        (b'"1_000"', None),
        (rb'"\u0661"', None),
    ],
)
def test_decimals_are_read_exactly_by_both_passes(salary, stored):
    record = orjson.dumps(VALID)[:-1] + b',"salary":' + salary + b"}"
    record = record.replace(b'"salary":"1234.50",', b"")
    fast, slow = both(record)
    if stored is None:
        assert slow is None and fast is None
    else:
        assert f"{slow.salary:.2f}" == stored
        assert fast is None or fast.salary == slow.salary


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        ("2024-01-01T00:00:00.1234564Z", "2024-01-01T00:00:00.123456+00:00"),
        ("2024-01-01T00:00:00.1234565Z", "2024-01-01T00:00:00.123457+00:00"),
        ("2024-01-01T00:00:00.9999999+01:00", "2023-12-31T23:00:01+00:00"),
    ],
)
def test_digits_past_the_microsecond_round_in_both_passes(sent, read):
    fast, slow = both({**VALID, "source_updated_at": sent})
    assert slow.source_updated_at.isoformat() == read
    assert fast is not None and fast.source_updated_at == slow.source_updated_at


def _salary_text_pattern() -> str:
    """The pattern the OpenAPI document gives a salary written as text."""
    branches = [EMPLOYEES.bulk_record.model_json_schema()["properties"]["salary"]]
    while branches:
        branch = branches.pop()
        if "pattern" in branch:
            return branch["pattern"]
        branches.extend(branch.get("anyOf", []))
    raise AssertionError("the salary has no text pattern")


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_every_decimal_text_the_document_admits_is_accepted_by_both_passes(data):
    """A client that writes what the document admits is never refused: its pattern admitted
    negatives, a third decimal place and any number of digits, all of which the API refuses."""
    salary = data.draw(st.from_regex(_salary_text_pattern(), fullmatch=True))
    fast, slow = both({**VALID, "salary": salary})
    assert slow is not None and (fast is None or fast.salary == slow.salary), salary  # None: pydantic decides


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(salary=st.from_regex(r"^-?[0-9]{1,14}(\.[0-9]{1,4})?$", fullmatch=True))
def test_a_plain_decimal_text_the_document_refuses_is_refused(salary):
    """And the other way: plain digits the API takes are what the document admits."""
    _, slow = both({**VALID, "salary": salary})
    assert (slow is not None) == bool(re.match(_salary_text_pattern(), salary)), salary


@pytest.mark.parametrize(
    "changed",
    [
        {"email": "ada@example.com\n"},
        {"salary": "12.50\n"},
        {"hired_at": "1843-07-01\n"},
        {"email": "ada@example.com\r\n"},
        {"salary": "12.50\r\n"},
    ],
)
def test_a_value_ending_in_a_newline_is_refused_by_both_passes(changed):
    """Python's `$` also matches before a final newline: the fast pass's e-mail pattern and the
    decimal text check let 'ada@example.com\\n' and '12.50\\n' through (written, served back against
    the document's pattern, and a second live row beside 'ada@example.com')."""
    assert both({**VALID, **changed}) == (None, None)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(salary=st.from_regex(r"^-?[0-9]{1,14}(\.[0-9]{1,12})?[eE][-+]?0?[0-9]$", fullmatch=True))
def test_an_exponent_form_is_admitted_exactly_when_the_api_takes_it(salary):
    """docs/architecture.md: decimal text in JSON's number grammar, "1E2" (100.00) and what
    str(Decimal) writes ("1.5E+3") too; with a one-digit exponent the document knows which fit."""
    _, slow = both({**VALID, "salary": salary})
    assert (slow is not None) == bool(re.match(_salary_text_pattern(), salary)), salary


@pytest.mark.parametrize("salary", ["1E2", "1e2", "1E+2", "1.5E+3", "1E-2", "123E-2", "9.99999999999E9", "0E-7"])
def test_the_exponent_forms_a_client_writes_are_admitted(salary):
    assert re.match(_salary_text_pattern(), salary) and both({**VALID, "salary": salary})[1] is not None

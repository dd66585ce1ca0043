"""The msgspec fast pass is never laxer than pydantic, and gives the same values."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

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


def both(record: dict):
    """(fast result, pydantic result); None for a rejection."""
    fast = EMPLOYEES.fast.decode(json.dumps([record]).encode(), ndjson=False)  # big ints too
    try:
        slow = EMPLOYEES.bulk_record.model_validate(record)
    except ValidationError:
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


def test_ndjson_skips_blank_lines():
    body = orjson.dumps(VALID) + b"\n\n" + orjson.dumps({**VALID, "source_id": 8}) + b"\n"
    records = EMPLOYEES.fast.decode(body, ndjson=True)
    assert [r.source_id for r in records] == [7, 8]


def _batch(**changes_of_third: object) -> bytes:
    """Five valid records, the third one changed: the fast pass checks whole columns at once."""
    records = [{**VALID, "source_id": i, "email": f"e{i}@example.com"} for i in range(1, 6)]
    records[2].update(changes_of_third)
    return orjson.dumps(records)


@pytest.mark.parametrize("salary", ["-0.01", "9999999999.999", "10000000000", "1.001", "NaN", "sNaN", "-Infinity"])
def test_one_bad_decimal_among_several_sends_the_batch_to_pydantic(salary):
    assert EMPLOYEES.fast.decode(_batch(salary=salary), ndjson=False) is None


def test_a_batch_reads_decimals_and_offsets_as_pydantic_does():
    body = _batch(
        salary="9999999999.990", source_updated_at="2024-01-01T10:00:00", updated_at="2024-01-01T12:00:00+02:00"
    )
    fast = EMPLOYEES.fast.decode(body, ndjson=False)
    slow = [EMPLOYEES.bulk_record.model_validate(record) for record in orjson.loads(body)]
    assert fast is not None
    for fast_record, slow_record in zip(fast, slow, strict=True):
        for name in EMPLOYEES.bulk_record.model_fields:
            assert getattr(fast_record, name) == getattr(slow_record, name), name
    third = fast[2]
    assert third.source_updated_at.isoformat() == "2024-01-01T10:00:00+00:00"
    assert third.updated_at.isoformat() == "2024-01-01T10:00:00+00:00"

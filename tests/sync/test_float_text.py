"""FLOAT and DOUBLE as text: the events path writes the text MariaDB writes (`mapping.float_text`),
held against the real server over random doubles and float32 values."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from base_sync.mapping.float_text import float32, mariadb_text
from base_sync.source import source_engine

doubles = st.floats(allow_nan=False, allow_infinity=False)
floats = st.floats(width=32, allow_nan=False, allow_infinity=False)


@pytest.fixture(scope="module")
def numbers(make_mariadb_database):
    engine = source_engine(make_mariadb_database())
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE zahlen (nr INT PRIMARY KEY, f FLOAT NULL, d DOUBLE NULL)"))
    yield engine
    engine.dispose()


def server_texts(engine, pairs: list[tuple[float | None, float | None]]) -> list[tuple[str | None, str | None]]:
    """(FLOAT's text, DOUBLE's text) of each pair as MariaDB writes them: CAST AS CHAR, and CONCAT too."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM zahlen"))
        rows = [{"nr": nr, "f": f, "d": d} for nr, (f, d) in enumerate(pairs)]
        conn.execute(text("INSERT INTO zahlen VALUES (:nr, :f, :d)"), rows)
        read = conn.execute(
            text("SELECT CAST(f AS CHAR), CAST(d AS CHAR), CONCAT(f), CONCAT(d) FROM zahlen ORDER BY nr")
        ).all()
    assert all((f, d) == (cf, cd) for f, d, cf, cd in read)
    return [(f, d) for f, d, _, _ in read]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(floats, doubles), min_size=1, max_size=40))
@example([(1.1, 100.0), (16777217.0, 1e15), (1e-5, 1e-5), (3.4028234663852886e38, 1e16), (0.1, 0.1 + 0.2)])
@example([(-0.0, -0.0), (1.401298464324817e-45, 5e-324), (1e-15, 1e-15), (1e-16, 1e-16)])
@example([(1234567.5, 1234567890123456.8), (123456.7, 12345678901234567.0), (-1.5e-7, 1.7976931348623157e308)])
def test_the_text_of_a_float_or_double_is_mariadbs(numbers, pairs):
    values = [(float32(f), d) for f, d in pairs]
    assert server_texts(numbers, values) == [(mariadb_text(f), mariadb_text(d)) for f, d in values]


def test_a_float_that_reached_us_as_a_double_is_written_as_the_float():
    """The relay reads FLOAT's 4 bytes into a double: 1.1 arrives as 1.100000023841858."""
    assert mariadb_text(float32(1.100000023841858)) == "1.1"
    assert mariadb_text(1.100000023841858) == "1.100000023841858"  # a DOUBLE holding that value
    assert mariadb_text(float32(16777216.0)) == "16777200"

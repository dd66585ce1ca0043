"""Chunks of a streaming read bounded by bytes as well as rows.

A chunk of SYNC_CHUNK_SIZE rows is a few MB of narrow rows but GBs of wide ones (a LONGTEXT of 1 MB a
row): the read fetches a few rows at a time from the server cursor and cuts a chunk at the row count
or at the byte budget, whichever comes first. A row's size is estimated from the length of its long
text and bytes values (`measure_of`; numbers, stamps and short texts are bounded by their declared
widths), the JSON the API takes being about as long. A read of short columns only is not measured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import chain, compress
from operator import itemgetter

# The most rows one fetch from the server cursor brings: a stretch of wide rows after narrow ones
# (whose average let the fetch grow) is held at most this many rows at a time before the cut.
FETCH_ROWS = 100
_SIZED = frozenset((str, bytes))
# MySQL's field types of text and bytes (the protocol's, as MySQLdb and PyMySQL describe columns).
_MYSQL_TEXT = frozenset({15, 245, 247, 248, 249, 250, 251, 252, 253, 254})

# Wider than this (bytes declared; VARCHAR(255) in utf8mb4 is 1020) a text column is measured row by row.
LONG_COLUMN = 1024

Measure = Callable[[Sequence[Sequence]], int]


def text_bytes(rows: Sequence[Sequence]) -> int:
    """The length of the rows' text and bytes values, counted in C (no Python loop per value:
    this runs on every row of the narrow rows' load too)."""
    values = list(chain.from_iterable(rows))
    return sum(map(len, compress(values, map(_SIZED.__contains__, map(type, values)))))


def measure_of(description: Sequence[Sequence] | None) -> Measure | None:
    """How to measure a read's rows against the byte budget, from the driver's description of its
    columns: the lengths of the long text and bytes columns alone (declared wider than LONG_COLUMN:
    TEXT, BLOB, JSON, long VARCHARs), a column at a time; None when there is none (numbers, stamps,
    short texts: a chunk of them is bounded by its rows and their declared widths, and is read as
    before, at no cost). Where the driver declares no types (SQLite), every text or bytes value."""
    if not description or any(column[1] is None for column in description):
        return text_bytes
    long = [itemgetter(index) for index, column in enumerate(description) if _is_long(column)]
    if not long:
        return None

    def measure(rows: Sequence[Sequence]) -> int:
        return sum(sum(map(len, filter(None, map(column, rows)))) for column in long)

    return measure


def _is_long(column: Sequence) -> bool:
    """A text or bytes column whose declared width (internal_size, in bytes) passes LONG_COLUMN, or is
    unknown: MySQLdb declares a LONGTEXT's 2^32-1 as -1."""
    width = column[3]
    return column[1] in _MYSQL_TEXT and (width is None or not 0 <= width <= LONG_COLUMN)


def bounded_chunks(
    fetch: Callable[[int], list], max_rows: int, max_bytes: int, measure: Measure = text_bytes
) -> Iterator[list]:
    """The rows `fetch(n)` returns (up to n at a time, none at the end) as chunks of at most `max_rows`
    rows and `max_bytes` (as `measure` counts them), in order; a row larger than `max_bytes` alone
    comes alone. Memory holds one chunk and at most one fetch beyond it."""
    chunk: list = []
    held = 0
    want = 1  # the first row tells how wide the rows are before a larger fetch
    while rows := fetch(want):
        size = measure(rows)
        if held + size <= max_bytes:
            chunk += rows
            held += size
        else:
            for row in rows:  # the fetch crosses the budget: cut between its rows
                row_size = measure((row,))
                if chunk and held + row_size > max_bytes:
                    yield chunk
                    chunk, held = [], 0
                chunk.append(row)
                held += row_size
        if len(chunk) >= max_rows or held >= max_bytes:
            yield chunk
            chunk, held = [], 0
        want = _next_fetch(max_rows - len(chunk), max_bytes - held, size // len(rows))
    if chunk:
        yield chunk


def _next_fetch(rows_left: int, bytes_left: int, row_bytes: int) -> int:
    """Rows to fetch next: what the chunk still takes by rows, and by bytes at the last fetch's
    average row, at most FETCH_ROWS; at least one."""
    return max(1, min(FETCH_ROWS, rows_left, bytes_left // max(row_bytes, 1)))

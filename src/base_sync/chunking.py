"""Chunks of a streaming read bounded by bytes as well as rows.

A chunk of SYNC_CHUNK_SIZE rows is a few MB of narrow rows but GBs of wide ones (a LONGTEXT of 1 MB a
row): the read fetches a few rows at a time from the server cursor and cuts a chunk at the row count
or at the byte budget, whichever comes first. A row's size is estimated from the length of its text
and bytes values (the rest are numbers and stamps), the JSON the API takes being about as long.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import chain, compress

# The most rows one fetch from the server cursor brings: a stretch of wide rows after narrow ones
# (whose average let the fetch grow) is held at most this many rows at a time before the cut.
FETCH_ROWS = 100
_SIZED = frozenset((str, bytes))


def text_bytes(rows: Sequence[Sequence]) -> int:
    """The length of the rows' text and bytes values, counted in C (no Python loop per value:
    this runs on every row of the narrow rows' load too)."""
    values = list(chain.from_iterable(rows))
    return sum(map(len, compress(values, map(_SIZED.__contains__, map(type, values)))))


def bounded_chunks(fetch: Callable[[int], list], max_rows: int, max_bytes: int) -> Iterator[list]:
    """The rows `fetch(n)` returns (up to n at a time, none at the end) as chunks of at most `max_rows`
    rows and `max_bytes` (`text_bytes`), in order; a row larger than `max_bytes` alone comes alone.
    Memory holds one chunk and at most one fetch beyond it."""
    chunk: list = []
    held = 0
    want = 1  # the first row tells how wide the rows are before a larger fetch
    while rows := fetch(want):
        size = text_bytes(rows)
        if held + size <= max_bytes:
            chunk += rows
            held += size
        else:
            for row in rows:  # the fetch crosses the budget: cut between its rows
                row_size = text_bytes((row,))
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

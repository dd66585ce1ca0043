"""Keyset pages written as their rows are read: a worker holds one batch of rows, never a whole page.

A page of 1,000 rows of 1 MB each was read whole, then encoded whole: 3 GB in one worker. Here the
rows come from a server-side cursor on PostgreSQL (SQLite steps its cursor lazily anyway), in
batches sized to about BATCH_BYTES of JSON, and each batch is written to the client before the next
is read. The answer is the same JSON, `{"items": [...], "next_after": ...}`, with `limit` items at
most (the statement asks for one more, which only says that another page follows).

The statement runs, and its first rows are read, before the answer starts: an error until then is a
problem document with its status. One later (Base B gone mid-page) can only cut the answer short:
the server closes the connection without ending the chunked body, which a client sees as a
truncated answer (README, "Long pages").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Response, current_app, request
from sqlalchemy import Connection, CursorResult, Row, Select

from api_service.db import get_connection, release_connection, take_connection

log = logging.getLogger(__name__)

BATCH_BYTES = 1 << 19  # the JSON a batch of rows should come to: what a worker holds of a page
FIRST_BATCH = 1  # rows read before the answer starts: their size is not known yet
MAX_BATCH = 1000  # rows of one fetch however narrow: a round trip per 1,000 costs nothing measurable

ItemOf = Callable[[Row], dict[str, Any]]


@dataclass
class Page:
    """A page being read: its connection, the result of its statement, the rows already read."""

    connection: Connection
    result: CursorResult
    first_rows: list[Row]
    first_items: bytes  # the first rows' items, encoded before the answer starts (an error is a problem)
    limit: int
    item_of: ItemOf  # the answer's item for a row
    key: str  # the row's column the next page starts after (`next_after`)
    cut_short: Callable[[], None]  # counts the page cut short (the request's metrics say 200)

    def close(self) -> None:
        """Give the connection back (closing its server-side cursor); again does nothing."""
        self.first_rows = []
        release_connection(self.connection)

    def __del__(self) -> None:
        # A WSGI server closes every answer (PEP 3333), but one dropped unread and unclosed (a test
        # client's) would keep its connection idle in transaction, holding its table's lock (a
        # migration's ALTER TABLE waited on it) until the garbage collector found it.
        self.close()


def page_response(statement: Select, limit: int, item_of: ItemOf, key: str) -> Response:
    """A JSON keyset page of the statement's rows (`limit` of them, ordered by `key`), written batch
    by batch (chunked: no Content-Length). The statement runs, and its first rows are read, here,
    while an error is still a problem document."""
    conn = get_connection()
    result = conn.execute(statement.limit(limit + 1), execution_options={"stream_results": True})
    first_rows = result.fetchmany(FIRST_BATCH)
    first_items = _encode([item_of(row) for row in first_rows[:limit]])
    # Bound now: the body is written after the request's context has gone.
    cut_short = current_app.extensions["api_metrics"].pages_cut_short.labels(request.url_rule.rule).inc
    page = Page(conn, result, first_rows, first_items, limit, item_of, key, cut_short)
    # Flask tears the request down (its teardown closes the connection) when the view returns,
    # before the body is sent; stream_with_context would not keep it open. So the page takes the
    # connection, and gives it back when its body ends or when the server closes the answer (cut
    # short, or never read: HEAD).
    take_connection()
    response = Response(_page_body(page), mimetype="application/json")
    response.call_on_close(page.close)
    return response


def _encode(value: Any) -> bytes:
    # As the other answers (resources.json_response): datetimes and dates in ISO 8601, decimals as
    # exact strings; column names are str subclasses, hence OPT_NON_STR_KEYS.
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)


def _page_body(page: Page) -> Iterator[bytes]:
    yield b'{"items":['
    try:
        last_key = yield from _items(page)
    except Exception as exc:
        # The answer has begun: its status is sent, and all the server can do is cut it short.
        log.error("a page failed after its answer began; the client gets it cut short: %s", _first_line(exc))
        page.cut_short()
        raise
    finally:
        page.close()
    yield b'],"next_after":' + _encode(last_key) + b"}"


def _items(page: Page) -> Iterator[bytes]:
    """The items, comma-separated, a batch of rows at a time; returns the page's `next_after`."""
    rows, page.first_rows = page.first_rows, []  # held here only: a batch is freed once written
    fetched, written, last_key = len(rows), 0, None
    per_row = 0  # bytes of JSON per item in the last batch
    while rows:
        batch = rows[: page.limit - written]  # the row past `limit` only says that a next page exists
        if batch:
            # One encoding per batch, not per row: orjson sizes its buffer generously (2 MB for a
            # 200 KB row), and a single call is cheaper for narrow rows. Its brackets are dropped.
            items = page.first_items if not written else _encode([page.item_of(row) for row in batch])
            yield b"".join((b"," if written else b"", memoryview(items)[1:-1]))
            written += len(batch)
            last_key = getattr(batch[-1], page.key)
            per_row = len(items) // len(batch)
            del items  # before the next fetch
        if fetched > page.limit:
            return last_key
        rows = page.result.fetchmany(_batch_size(per_row, page.limit + 1 - fetched))
        fetched += len(rows)
    return None  # the page holds the last row


def _batch_size(per_row: int, rows_left: int) -> int:
    """Rows for about BATCH_BYTES of JSON at `per_row` bytes each (as the last batch's were)."""
    return max(1, min(BATCH_BYTES // max(1, per_row), MAX_BATCH, rows_left))


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__

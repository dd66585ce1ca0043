"""HTTP conditional requests on one row (RFC 9110, section 13): its entity tag and the preconditions
a client sends with it (`If-Match`, `If-None-Match`, `If-Unmodified-Since`).

The tag is a hash of the row as served, not of `updated_at` alone: a synced row's `updated_at` is Base
A's, so a write by the pipelines can change a row's content and keep it (a record as new as the row
whose content differs), or set it back (`replaces_version`). A hash changes whenever what a client
reads changes, so it is a strong validator whichever path wrote the row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from flask import Request, Response
from werkzeug.datastructures import ETags
from werkzeug.http import parse_date, parse_etags

from api_service.problems import Problem

# A client must revalidate (If-None-Match) before reusing a row it holds: rows change at any time.
CACHE_CONTROL = "no-cache"


def etag_of(row: dict[str, Any]) -> str:
    """The row's strong entity tag (unquoted): the same for the same row as served, on every worker."""
    text = orjson.dumps(row, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(text).hexdigest()[:32]


def with_validator(response: Response, row: dict[str, Any]) -> Response:
    """The response to a row, carrying its tag."""
    response.set_etag(etag_of(row))
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


class NotModified(Exception):
    """The client's copy of the row is current (GET with a matching If-None-Match): 304."""

    def __init__(self, etag: str):
        super().__init__(etag)
        self.etag = etag


@dataclass(frozen=True)
class Preconditions:
    """The conditions of one request, evaluated against the row it targets (RFC 9110, 13.2.2)."""

    if_match: ETags | None = None
    if_none_match: ETags | None = None
    if_unmodified_since: datetime | None = None

    @classmethod
    def of(cls, request: Request) -> Preconditions:
        headers = request.headers
        # A date that does not parse is ignored (RFC 9110, 13.1.4); If-Match makes it moot.
        since = parse_date(headers.get("If-Unmodified-Since")) if "If-Match" not in headers else None
        return cls(
            if_match=parse_etags(headers["If-Match"]) if "If-Match" in headers else None,
            if_none_match=parse_etags(headers["If-None-Match"]) if "If-None-Match" in headers else None,
            if_unmodified_since=since,
        )

    def check(self, row: dict[str, Any], safe: bool) -> None:
        """Raise 412 (a Problem) or NotModified (a safe method's If-None-Match) when a condition fails.
        Called with the row as it is now, for a write under its lock in the write's transaction."""
        etag = etag_of(row)
        if self.if_match is not None and not self.if_match.contains(etag):  # strong comparison
            raise Problem(412, f"the row has changed: its ETag is no longer one of {self.if_match.to_header()}")
        if self.if_unmodified_since is not None and _to_second(row["updated_at"]) > self.if_unmodified_since:
            raise Problem(412, "the row has been modified since If-Unmodified-Since")
        if self.if_none_match is not None and self.if_none_match.contains_weak(etag):
            if safe:
                raise NotModified(etag)
            raise Problem(412, "the row matches If-None-Match")


def _to_second(moment: datetime) -> datetime:
    # An HTTP date has whole seconds: a row written at 12:00:00.5 is not modified since 12:00:00.
    return moment.replace(microsecond=0)


def not_modified_response(exc: NotModified) -> Response:
    response = Response(status=304)
    response.set_etag(exc.etag)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response

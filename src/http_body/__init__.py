"""A Flask request's body as every service here reads it. Shared by the REST API and the GraphQL
service; it loads neither.

Werkzeug hands over whatever the server framed: it does not decode a compressed body (gzip would
read as bad JSON), it stops reading a chunked body at MAX_CONTENT_LENGTH without a word (the
request would be cut short, not refused), and a chunked body gunicorn cannot parse surfaces as an
exception in the view (a 500), and a body that arrives too slowly under gunicorn (the shared
worker's deadline) is a 408. Each of these is the client's error, refused here with the reason.
"""

from __future__ import annotations

from flask import current_app, request
from gunicorn.http.errors import ParseException

from gunicorn_shared.request_deadlines import RequestTimeout


class BodyRefused(Exception):
    """The body cannot be read as sent: the HTTP status, what was wrong, and headers for the answer."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


def read(limit_setting: str) -> bytes:
    """The request body, uncompressed and complete, or BodyRefused. `limit_setting` names the
    environment variable behind the app's MAX_CONTENT_LENGTH, for the message of a 413."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise BodyRefused(
            415,
            f"Content-Encoding {encoding[:40]!r} is not supported: send the body uncompressed",
            {"Accept-Encoding": "identity"},
        )
    codings = [c.strip().lower() for c in request.headers.get("Transfer-Encoding", "").split(",") if c.strip()]
    if any(coding not in ("chunked", "identity") for coding in codings):  # the server would not decode them
        raise BodyRefused(
            501, f"Transfer-Encoding {', '.join(codings)[:60]!r} is not supported: send the body chunked or sized"
        )
    try:
        data = request.get_data()
    except ParseException as exc:
        raise BodyRefused(400, f"the request body is malformed: {exc}") from None
    except RequestTimeout as exc:  # the worker closes the connection after this answer
        raise BodyRefused(408, f"{exc}: send it again") from None
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit and request.content_length is None and len(data) >= limit:
        raise BodyRefused(413, f"the body is larger than the limit of {limit} bytes ({limit_setting})")
    return data

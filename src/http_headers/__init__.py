"""Headers every answer of both HTTP services carries, whichever part of the app wrote it."""

from __future__ import annotations

from flask import Flask, Response


def _finish(response: Response) -> Response:
    # Flask labels an empty answer (a 204, its automatic OPTIONS) text/html: there is no body to type.
    # A streamed answer is not measured: that would read it whole into memory before it is sent.
    if response.status_code == 204 or (not response.is_streamed and response.calculate_content_length() == 0):
        response.headers.pop("Content-Type", None)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")  # JSON is never sniffed as HTML
    return response


def init_app(app: Flask) -> None:
    app.after_request(_finish)

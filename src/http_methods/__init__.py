"""The HTTP methods both services answer: any other is refused before Flask sees it.

Through Flask, each made-up method (ZZMETH1, PROPFIND, QUERY) became a new `method` value of the
request metrics, without bound. Each service says no in its own document (`refusal`)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response

# RFC 9110's methods and PATCH: the only values the request metrics' `method` label takes.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


def refuse_unknown_methods(app: Flask, refusal: Callable[[int, str], Response]):
    """The app's WSGI callable, answering any other method as Flask would: 405 naming the route's
    methods (and `Allow`), or 404. `refusal(status, message)` makes the service's answer."""
    wsgi_app = app.wsgi_app

    def answer(environ, start_response):
        method = environ.get("REQUEST_METHOD", "")
        if method in KNOWN_METHODS:
            return wsgi_app(environ, start_response)
        allowed = sorted(app.url_map.bind_to_environ(environ).allowed_methods())
        if not allowed:
            return refusal(404, "The requested URL was not found on the server.")(environ, start_response)
        response = refusal(405, f"{method[:40]!r} is not a method of this resource: use {', '.join(allowed)}")
        response.headers["Allow"] = ", ".join(allowed)
        return response(environ, start_response)

    return answer

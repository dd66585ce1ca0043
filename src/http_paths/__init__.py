"""The paths both services route: one with an empty segment (`//`) is no route of theirs.

Werkzeug strips a path's leading slashes before it matches (`merge_slashes = False` covers only
the inner ones): found from outside, `//articles` and `///metrics` were served and `POST //articles`
wrote, past a gateway rule for the exact path; and GraphQL's `/graphql//static/explorer.js` was a
308 HTML redirect to a URL built from the Host header. Each service says no in its own document.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Response

NOT_FOUND = "The requested URL was not found on the server."


def refuse_empty_segments(wsgi_app, refusal: Callable[[int, str], Response]):
    """`wsgi_app`, answering a path with `//` anywhere (leading too) with `refusal(404, message)`."""

    def answer(environ, start_response):
        if "//" in environ.get("PATH_INFO", ""):
            return refusal(404, NOT_FOUND)(environ, start_response)
        return wsgi_app(environ, start_response)

    return answer

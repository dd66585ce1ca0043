"""Bearer-token checks: writes always need a configured token, reads when configured."""

from __future__ import annotations

import hmac

from flask import request

from api_service.problems import Problem
from api_service.settings import ApiSettings

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="base-b"'}
_HTTP_WHITESPACE = " \t"


def check_request(settings: ApiSettings) -> None:
    """Raise a 401/403 problem unless the request may proceed."""
    if request.method in READ_METHODS and not settings.read_requires_token:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    # Strip only HTTP whitespace (SP, HTAB): str.strip() also drops NBSP, NEL and other Unicode
    # spaces, and so accepted "<token>\xa0" as the configured token.
    token = token.strip(_HTTP_WHITESPACE)
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "a bearer token is required: send 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    presented = token.encode()
    if not any(hmac.compare_digest(presented, allowed.encode()) for allowed in settings.tokens):
        raise Problem(403, "the bearer token is not allowed here")

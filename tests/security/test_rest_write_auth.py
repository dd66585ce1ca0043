"""Every REST write endpoint refuses a missing or wrong bearer token, and writes nothing.

The list of writes comes from the API's own /openapi.json (every POST/PUT/PATCH/DELETE of every
path), so a new endpoint is covered the day it is documented. Each request carries a valid body and
targets a real row: were the token check missing, it would write (the positive control proves it).
"""

from __future__ import annotations

import base64

import pytest
import requests

from tests.security.conftest import (
    AUTH,
    OTHER_TOKEN,
    PROBLEM_JSON,
    TOKEN,
    WRITE_METHODS,
    fill_path,
    operations,
    request_body,
    row_counts,
    snapshot,
)

# (Authorization header or None, expected status). 401: no usable bearer credentials; 403: a bearer
# token that is not one of the configured ones.
MISSING = {
    "no header": (None, 401),
    "empty bearer": ("Bearer ", 401),
    "scheme only": ("Bearer", 401),
    "token without scheme": (TOKEN, 401),
    "right secret, basic scheme": ("Basic " + base64.b64encode(f"user:{TOKEN}".encode()).decode(), 401),
}
WRONG = {
    "unknown token": ("Bearer not-the-token", 403),
    "upper case": (f"Bearer {TOKEN.upper()}", 403),
    "first letter case": (f"Bearer {TOKEN[0].upper()}{TOKEN[1:]}", 403),
    "prefix": (f"Bearer {TOKEN[:-1]}", 403),
    "short prefix": (f"Bearer {TOKEN[:8]}", 403),
    "extended": (f"Bearer {TOKEN}x", 403),
    "trailing word": (f"Bearer {TOKEN} x", 403),
    "both tokens comma-joined": (f"Bearer {TOKEN},{OTHER_TOKEN}", 403),
    # Trailing SP/HTAB are not part of an HTTP field value (RFC 9110 5.5), so "token " *is* the token;
    # any other trailing or leading character must make it a different, refused token.
    "trailing no-break space": (f"Bearer {TOKEN}\xa0", 403),
    "leading no-break space": (f"Bearer \xa0{TOKEN}", 403),
    "trailing next-line": (f"Bearer {TOKEN}\x85", 403),
}


def _write_requests(openapi, canaries):
    """(operation, URL path, JSON body) for every documented write, deletes last (for the positive control)."""
    writes = sorted(operations(openapi, WRITE_METHODS), key=lambda op: op.method == "delete")
    return [(op, fill_path(op, canaries.client_owned), request_body(openapi, op)) for op in writes]


def test_the_document_lists_the_known_writes(openapi):
    # A guard against an empty or truncated document making every other test here pass vacuously.
    listed = {str(op) for op in operations(openapi, WRITE_METHODS)}
    for entity in ("articles", "employees"):
        assert {
            f"POST /{entity}",
            f"PUT /{entity}/{{row_id}}",
            f"DELETE /{entity}/{{row_id}}",
            f"POST /{entity}/bulk",
            f"POST /{entity}/bulk/delete",
        } <= listed
    for op in operations(openapi, WRITE_METHODS):
        assert op.spec.get("security") == [{"bearerAuth": []}], f"{op} is not documented as needing a token"


@pytest.mark.parametrize(("header", "status"), [*MISSING.values(), *WRONG.values()], ids=[*MISSING, *WRONG])
def test_every_write_refuses_a_missing_or_wrong_token_and_changes_nothing(base_b, openapi, canaries, header, status):
    before = snapshot(base_b.engine)
    failures = []
    for op, path, body in _write_requests(openapi, canaries):
        headers = {"Authorization": header} if header is not None else {}
        response = requests.request(op.method, f"{base_b.api}{path}", json=body, headers=headers, timeout=10)
        if response.status_code != status:
            failures.append(f"{op}: {response.status_code}, expected {status}: {response.text[:200]}")
            continue
        if response.headers.get("Content-Type", "").split(";")[0] != PROBLEM_JSON:
            failures.append(f"{op}: answered {response.headers.get('Content-Type')}, not {PROBLEM_JSON}")
            continue
        problem = response.json()
        if problem.get("status") != status or not problem.get("title") or not problem.get("detail"):
            failures.append(f"{op}: not a problem document: {problem}")
        if status == 401 and not response.headers.get("WWW-Authenticate", "").startswith("Bearer"):
            failures.append(f"{op}: a 401 without a Bearer challenge")
    after = snapshot(base_b.engine)
    assert not failures, "\n".join(failures)
    assert row_counts(after) == row_counts(before)
    assert after == before, "a refused write changed Base B"


def test_the_same_writes_with_a_configured_token_do_write(base_b, openapi, canaries):
    # The positive control: the requests above were real writes, refused only for their token.
    before = snapshot(base_b.engine)
    for op, path, body in _write_requests(openapi, canaries):
        response = requests.request(op.method, f"{base_b.api}{path}", json=body, headers=AUTH, timeout=10)
        assert 200 <= response.status_code < 300, (str(op), response.status_code, response.text[:300])
    assert snapshot(base_b.engine) != before


def test_every_configured_token_is_accepted_on_its_own(base_b, openapi, canaries):
    for token in (TOKEN, OTHER_TOKEN):
        body = {"title": f"written with {token[-4:]}"}
        headers = {"Authorization": f"Bearer {token}"}
        response = requests.post(f"{base_b.api}/articles", json=body, headers=headers, timeout=10)
        assert response.status_code == 201, response.text

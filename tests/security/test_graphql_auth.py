"""GraphQL mutations without a token, or with a wrong one, are refused with a coded error and write nothing.

The service maps the REST API's 401 to UNAUTHENTICATED and its 403 to FORBIDDEN
(graphql_service/errors.py). The mutations are read from the schema the service serves; each is
sent with valid input and, for update/delete, the id of a real client-owned row, so that a missing
check would write (the positive control shows it does with the right token).
"""

from __future__ import annotations

import pytest

from tests.security.conftest import (
    TOKEN,
    entity_of,
    gql,
    mutation_document,
    row_counts,
    snapshot,
)

EXPECTED_MUTATIONS = {
    "createArticle",
    "updateArticle",
    "deleteArticle",
    "createEmployee",
    "updateEmployee",
    "deleteEmployee",
}
# (Authorization header or None, expected code).
REFUSED = {
    "no header": (None, "UNAUTHENTICATED"),
    "empty bearer": ("Bearer ", "UNAUTHENTICATED"),
    "basic scheme": (f"Basic {TOKEN}", "UNAUTHENTICATED"),
    "unknown token": ("Bearer not-the-token", "FORBIDDEN"),
    "upper case": (f"Bearer {TOKEN.upper()}", "FORBIDDEN"),
    "prefix": (f"Bearer {TOKEN[:-1]}", "FORBIDDEN"),
    "extended": (f"Bearer {TOKEN}x", "FORBIDDEN"),
    "trailing no-break space": (f"Bearer {TOKEN}\xa0", "FORBIDDEN"),
    "leading no-break space": (f"Bearer \xa0{TOKEN}", "FORBIDDEN"),
}

WRONG_TOKENS = {name: case for name, case in REFUSED.items() if case[1] == "FORBIDDEN"}


def _mutations(schema: dict) -> list[str]:
    # `_noop` only exists because GraphQL needs a field on the root Mutation type before `extend`.
    return [f["name"] for f in schema["mutationType"]["fields"] if not f["name"].startswith("_")]


def _send_every_mutation(graphql, schema, canaries, header):
    """Each mutation once, with valid input; the answers by mutation name."""
    answers = {}
    for name in sorted(_mutations(schema), key=lambda n: n.startswith("delete")):
        document, variables = mutation_document(schema, name)
        if "$id" in document:
            variables["id"] = str(canaries.client_owned[entity_of(name)])
        answers[name] = gql(graphql, document, variables, header=header)
    return answers


def _refusal_failures(answers: dict, code: str) -> list[str]:
    failures = []
    for name, response in answers.items():
        if response.status_code >= 500:
            failures.append(f"{name}: HTTP {response.status_code}")
            continue
        body = response.json()
        codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
        if codes != [code]:
            failures.append(f"{name}: codes {codes}, expected [{code!r}]: {response.text[:200]}")
        if (body.get("data") or {}).get(name) is not None:
            failures.append(f"{name}: returned data although refused: {body['data']}")
    return failures


def test_the_schema_has_exactly_the_mutations_tested_here(graphql_schema):
    # A new mutation must be added here consciously: this suite builds its calls from the schema.
    assert set(_mutations(graphql_schema)) == EXPECTED_MUTATIONS


@pytest.mark.parametrize(("header", "code"), REFUSED.values(), ids=REFUSED.keys())
def test_mutations_without_a_valid_token_are_refused_and_write_nothing(
    base_b, graphql_api, graphql_schema, canaries, header, code
):
    before = snapshot(base_b.engine)
    failures = _refusal_failures(_send_every_mutation(graphql_api, graphql_schema, canaries, header), code)
    after = snapshot(base_b.engine)
    assert not failures, "\n".join(failures)
    assert row_counts(after) == row_counts(before)
    assert after == before, "a refused mutation changed Base B"


@pytest.mark.parametrize(("header", "code"), WRONG_TOKENS.values(), ids=WRONG_TOKENS.keys())
def test_a_wrong_caller_token_is_refused_even_when_a_service_token_is_configured(
    base_b, graphql_api_with_service_token, graphql_schema, canaries, header, code
):
    # The service token stands in only for a caller who sends none; a caller's wrong token must not
    # be silently replaced by it.
    before = snapshot(base_b.engine)
    answers = _send_every_mutation(graphql_api_with_service_token, graphql_schema, canaries, header)
    assert not (failures := _refusal_failures(answers, code)), "\n".join(failures)
    assert snapshot(base_b.engine) == before


def test_the_same_mutations_with_the_configured_token_do_write(base_b, graphql_api, graphql_schema, canaries):
    # The positive control: the calls above were real writes, refused only for their token.
    before = snapshot(base_b.engine)
    answers = _send_every_mutation(graphql_api, graphql_schema, canaries, f"Bearer {TOKEN}")
    for name, response in answers.items():
        body = response.json()
        assert not body.get("errors"), (name, body)
        assert body["data"][name], (name, body)
    assert snapshot(base_b.engine) != before

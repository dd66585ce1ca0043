"""Schema-driven fuzzing of /openapi.json (schemathesis): no 5xx, and every answer fits the document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.api.conftest import AUTH

# A minute of generated requests per backend: too long for `make test-fast`, which keeps to a minute.
pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    unsupported_method,
]


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_breaks_the_api_or_its_document(case):
    # The bulk endpoints answer 200 for a batch with invalid records by contract: those records
    # are rejected one by one (counted, with reasons) while the valid ones are written.
    excluded = [negative_data_rejection] if case.path.endswith(("/bulk", "/bulk/delete")) else []
    case.call_and_validate(headers=AUTH, checks=CHECKS, excluded_checks=excluded)

"""Schema-driven fuzzing of /openapi.json (schemathesis): no 5xx, and every answer fits the document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from api_service.models import REJECTIONS, TABLES
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
    positive_data_acceptance,
    unsupported_method,
]


def document(app):
    """The API's document as schemathesis reads it. Without literals harvested from the loaded
    modules (its constants analysis): which modules are loaded depends on the other test files
    collected, and a pool that changes between runs made the stateful test fail as flaky."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    schema.config.analysis.constants.enabled = False
    # A well-formed If-Match or If-Unmodified-Since a generator writes names no version the row has:
    # 412 is the answer RFC 9110 asks for, not valid data refused (the document lists it).
    acceptance = schema.config.checks.positive_data_acceptance
    acceptance.expected_statuses = [*acceptance.expected_statuses, "412"]
    return schema


@pytest.fixture
def api_schema(app):
    return document(app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
# derandomize and no example database: every run, on every machine, tries the same cases.
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_no_input_breaks_the_api_or_its_document(case):
    # The bulk endpoints answer 200 for a batch with invalid records by contract: those records
    # are rejected one by one (counted, with reasons) while the valid ones are written.
    excluded = [negative_data_rejection] if case.path.endswith(("/bulk", "/bulk/delete", "/bulk/delete/plan")) else []
    case.call_and_validate(headers=AUTH, checks=CHECKS, excluded_checks=excluded)


@pytest.fixture
def api_state_machine(app):
    """Sequences of calls that follow the document's links (create, then read, replace, delete it)."""
    machine = document(app).as_state_machine()
    engine = app.extensions["base_b_engine"]

    class WithToken(machine):
        def setup(self):
            # Each scenario from empty tables: what a step draws from depends on what earlier calls
            # answered, so leftovers of another scenario made Hypothesis's replays differ (flaky).
            with engine.begin() as conn:
                for table in (*TABLES.values(), REJECTIONS):
                    conn.execute(table.delete())

        def get_call_kwargs(self, case):
            return {"headers": AUTH}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, excluded_checks=[negative_data_rejection])

    return WithToken


def test_linked_calls_keep_to_the_document(api_state_machine):
    from hypothesis import settings as hypothesis_settings  # noqa: PLC0415

    api_state_machine.run(
        settings=hypothesis_settings(
            max_examples=15,
            stateful_step_count=5,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
    )

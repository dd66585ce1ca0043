"""GRAPHQL_SERVICE_TOKEN lends its rights to every caller that sends no Authorization, reads and
writes (kept: the seed system's clients rely on it). The probe found the docs said "for mutations"
only; the service now says at start, once, what setting it does."""

from __future__ import annotations

import logging
import secrets

from graphql_service import create_app
from graphql_service.settings import GraphQLSettings

NOWHERE = "http://127.0.0.1:9"  # create_app makes no call; the REST API is never asked


def _warnings(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno == logging.WARNING]


def test_a_configured_service_token_is_warned_about_once_at_start(caplog):
    token = secrets.token_hex(16)
    with caplog.at_level(logging.WARNING):
        create_app(GraphQLSettings(rest_api_url=NOWHERE, service_token=token))
    (warning,) = [r for r in _warnings(caplog) if "GRAPHQL_SERVICE_TOKEN" in r.getMessage()]
    message = warning.getMessage()
    assert "no Authorization" in message and "reads and writes" in message and "trusted" in message
    assert token not in caplog.text  # says that it is set, never its value


def test_no_warning_when_no_service_token_is_set(caplog):
    with caplog.at_level(logging.WARNING):
        create_app(GraphQLSettings(rest_api_url=NOWHERE))
    assert not [r for r in _warnings(caplog) if "GRAPHQL_SERVICE_TOKEN" in r.getMessage()]


def test_the_settings_description_says_reads_and_writes():
    description = GraphQLSettings.model_fields["service_token"].description
    assert "reads and writes" in description and "for mutations" not in description

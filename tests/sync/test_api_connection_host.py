"""A misplaced URL in the API connection's host field fails the task with the reason, and the error
does not repeat a token put in it: `host must be a host name, got 'http://x:<token>@h'` was the task
log of an outside probe. No server: the connection is checked before any call."""

from __future__ import annotations

import secrets
from types import SimpleNamespace

import pytest

from base_sync import airflow_tasks
from base_sync.errors import ConfigurationError


def _connection(host: str) -> SimpleNamespace:
    return SimpleNamespace(conn_id="base_b_api", host=host, conn_type="http", schema=None, port=None, extra_dejson={})


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("http://x:{token}@api.example.net", "http://***@api.example.net"),
        ("https://{token}@api.example.net:8443/api", "https://***@api.example.net:8443/api"),
        ("x:{token}@api.example.net/api", "***@api.example.net/api"),
        ("http://x:{token}@@api.example.net", "http://***@api.example.net"),  # an @ in the token itself
        ("x:{token}@api.example.net", "***@api.example.net"),  # no scheme, no path: was taken as the host
    ],
)
def test_a_token_in_the_host_field_is_not_repeated_in_the_error(host, shown):
    token = secrets.token_hex(16)
    with pytest.raises(ConfigurationError) as refused:
        airflow_tasks._api_url(_connection(host.format(token=token)))
    assert token not in str(refused.value)
    assert f"host must be a host name, got {shown!r}" in str(refused.value)


def test_a_url_without_userinfo_is_still_shown_whole():
    with pytest.raises(ConfigurationError, match="got 'http://api.example.net:5000'"):
        airflow_tasks._api_url(_connection("http://api.example.net:5000"))

"""A misplaced URL in the API connection's host field fails the task with the reason, and the error
does not repeat a token put in it: `host must be a host name, got 'http://x:<token>@h'` was the task
log of an outside probe. No server: the connection is checked before any call; an IPv6 host is
checked against a small HTTP server on the IPv6 loopback."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from api_service import migrate
from base_sync import airflow_tasks
from base_sync.api_client import BaseBApi
from base_sync.errors import ConfigurationError
from base_sync.settings import SyncSettings
from testbed.servers import api_server, empty_bulk_answerer


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


@pytest.fixture
def ipv6_api() -> Iterator[int]:
    """A stand-in API on the IPv6 loopback; its port."""
    with empty_bulk_answerer("::1") as port:
        yield port


@pytest.mark.parametrize("form", ["json", "uri"])
def test_an_ipv6_host_reaches_the_api(ipv6_api, monkeypatch, tmp_path, form):
    """Host "::1" (JSON) or [::1] (URI), which Airflow both gives as `::1`, made `http://::1:<port>`:
    urllib3 parsed no URL of it, and every try failed as a retry (ApiUnavailable)."""
    from airflow.sdk import BaseHook

    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    given = (
        json.dumps({"conn_type": "http", "host": "::1", "port": ipv6_api, "password": "token"})
        if form == "json"
        else f"http://:token@[::1]:{ipv6_api}"
    )
    monkeypatch.setenv("AIRFLOW_CONN_BASE_B_API", given)
    url = airflow_tasks._api_url(BaseHook.get_connection("base_b_api"))
    assert url == f"http://[::1]:{ipv6_api}"
    api = BaseBApi(url, "token", retries=0)
    try:
        api.check_writes("articles")
    finally:
        api.close()


def test_a_host_no_url_can_hold_fails_without_a_retry():
    """Not an address, not a name: urllib3 refused the URL on every request, and the task retried."""
    with pytest.raises(ConfigurationError, match=r"'base_b_api': no usable API URL 'http://api example.net'"):
        airflow_tasks._api_url(_connection("api example.net"))
    with pytest.raises(ConfigurationError, match=r"no usable API URL 'http://::1::zz'"):
        airflow_tasks._api_url(_connection("::1::zz"))


@pytest.mark.parametrize("token", ["secret-token€", "two\nlines"], ids=["euro", "newline"])
def test_a_token_no_header_can_carry_fails_at_once_naming_the_connection(monkeypatch, tmp_path, token):
    """`tøken€` raised a bare UnicodeEncodeError (latin-1) on every call, which the task retried.
    Refused when the client is made, before any call."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    given = {"conn_type": "http", "host": "127.0.0.1", "port": 9, "password": token}
    monkeypatch.setenv("AIRFLOW_CONN_BASE_B_API", json.dumps(given))
    with pytest.raises(
        ConfigurationError, match="'base_b_api': the API token .* holds a character no HTTP header"
    ) as refused:
        airflow_tasks._api(SyncSettings(), "batch")
    assert token not in str(refused.value)


def test_a_latin_1_token_still_writes(make_postgres_database, tmp_path):
    """A token of latin-1 letters goes as the header's latin-1 bytes, gunicorn reads them back as the
    same text, and the API takes it: such tokens worked, and must not be refused (review)."""
    database_url = make_postgres_database()
    migrate.upgrade(database_url)
    with api_server(database_url, "secret-tøken-äöü", tmp_path / "api.log") as url:
        api = BaseBApi(url, "secret-tøken-äöü", retries=0)
        try:
            api.check_writes("articles")
        finally:
            api.close()

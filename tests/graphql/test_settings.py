"""The GraphQL service's settings refuse a REST API URL its client cannot use, naming the variable."""

from __future__ import annotations

import pytest

from env_settings import InvalidSettings
from graphql_service.settings import GraphQLSettings

NEEDED = "an http:// or https:// URL with a host, e.g. http://127.0.0.1:5000"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("not a s3cret url", "not a URL (a bad host or port?)"),
        ("http://u:s3cret@rest-api:70000", "not a URL (a bad host or port?)"),
        ("ftp://u:s3cret@rest-api", "the scheme is ftp"),
        ("http://", "no host"),
    ],
)
def test_a_rest_api_url_the_client_cannot_use_is_refused_without_showing_it(monkeypatch, value, says):
    """Found from outside: REST_API_URL='' passed the settings and failed in urllib3 (LocationValueError,
    a traceback) when the client was made. Refused at start instead; the URL may hold a password."""
    monkeypatch.setenv("REST_API_URL", value)
    with pytest.raises(InvalidSettings) as refused:
        GraphQLSettings()
    assert str(refused.value) == f"invalid settings: REST_API_URL: {says}: {NEEDED}"  # "s3cret" not shown


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("[::1]:5000/", "http://[::1]:5000"),
        ("//gateway:5000", "http://gateway:5000"),
    ],
)
def test_a_url_without_a_scheme_is_still_read_as_http(monkeypatch, value, url):
    """The client (urllib3) has always read `host:port` as http: such a setting kept working (review)."""
    monkeypatch.setenv("REST_API_URL", value)
    assert GraphQLSettings().rest_api_url == url

"""The GraphQL service's settings refuse a REST API URL its client cannot use, or a time or size too large,
naming the variable."""

from __future__ import annotations

import pytest

from env_settings import InvalidSettings
from graphql_service.rest_client import RestClient
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


@pytest.mark.parametrize(
    ("variable", "value", "bound"),
    [
        ("GRAPHQL_POOL_SIZE", "1000000000", "1000"),  # urllib3 fills its pool's queue with as many slots at start
        ("GRAPHQL_TIMEOUT", "1e20", "86400"),  # a socket timeout past what a socket takes
        ("GRAPHQL_REQUEST_TIMEOUT_SECONDS", "1e300", "86400"),
        ("GRAPHQL_MAX_REST_BYTES", "1099511627776", "1073741824"),
        ("GRAPHQL_MAX_DEPTH", "1000000", "100"),
    ],
)
def test_a_time_or_size_too_large_is_refused_at_once_naming_the_variable(monkeypatch, variable, value, bound):
    """Found from outside: large but finite values were taken and failed far from their variable (a
    timeout in every REST call, a pool of 10**9 slots in every worker). Refused with its name."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidSettings) as refused:
        GraphQLSettings()
    assert str(refused.value) == f"invalid settings: {variable}: Input should be less than or equal to {bound}"


def test_the_rest_client_takes_the_largest_pool_and_timeout():
    settings = GraphQLSettings(pool_size=1000, timeout=86_400, request_timeout_seconds=86_400)
    client = RestClient(settings)
    try:
        assert client.pool.pool.maxsize == 1000 and client.pool.timeout.read_timeout == 86_400
    finally:
        client.pool.close()

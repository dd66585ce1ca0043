"""The GraphQL service's one settings object, read from the environment."""

from __future__ import annotations

from typing import Literal

import urllib3
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from env_settings import DAY, GIB, EnvSettings

# The compose gateway (deploy/gateway/gateway.conf) waits 60 s for a GraphQL answer (proxy_read_timeout),
# then answers a 504 itself: behind it, a deadline past 50 s (10 s for a request past its deadline to
# answer its unresolved fields' errors) needs that raised too. Not a bound: `make up` has no gateway,
# and a bound refused the setting of a deployment that had raised both (tests/deploy/test_gateway.py).
GATEWAY_REQUEST_SECONDS = 50


class GraphQLSettings(EnvSettings):
    """Configuration of the GraphQL service; tests build it explicitly."""

    model_config = SettingsConfigDict(env_prefix="GRAPHQL_", frozen=True, extra="ignore", populate_by_name=True)
    # gunicorn's (graphql_service/gunicorn.conf.py).
    read_elsewhere = (
        "GRAPHQL_BIND",
        "GRAPHQL_WORKERS",
        "GRAPHQL_THREADS",
        "GRAPHQL_REQUEST_HEAD_TIMEOUT",
        "GRAPHQL_REQUEST_BODY_MIN_RATE",
    )

    rest_api_url: str = Field(
        "http://127.0.0.1:5000", validation_alias="REST_API_URL", description="base URL of the REST API"
    )
    service_token: str | None = Field(
        None,
        repr=False,
        description=(
            "bearer token sent for every call, reads and writes, of a caller that sends no Authorization:"
            " every anonymous GraphQL caller acts with it. Set it only where GraphQL is reachable by trusted"
            " clients alone; else leave it unset and have clients send their own token"
        ),
    )
    timeout: float = Field(10.0, gt=0, le=DAY, description="seconds for one REST call")
    request_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=DAY,
        description=(
            "seconds for one GraphQL request's REST calls: past it, none is made. Behind compose's gateway,"
            " past 50 raise its proxy_read_timeout (60 s) too"
        ),
    )
    pool_size: int = Field(20, ge=1, le=1000, description="kept-alive connections to the REST API")
    max_depth: int = Field(8, ge=1, le=100, description="deepest selection a query may make")
    max_cost: int = Field(2000, ge=1, le=1_000_000, description="largest cost a query may have (list sizes count)")
    max_tokens: int = Field(
        10_000, ge=100, le=1_000_000, description="most tokens a query text may have (parsing stops there)"
    )
    max_rest_bytes: int = Field(
        64 * 2**20,
        ge=1024,
        le=GIB,
        description=(
            "REST answer bytes one GraphQL request may read; beyond, its fields get RESPONSE_TOO_LARGE. A"
            " worker holds about 3x what it reads, so 64 MiB is about 200 MB a request; at the default cost"
            " limit (2,000 rows) rows of up to 32 KB fit"
        ),
    )
    max_content_length: int = Field(
        4 * 2**20,
        ge=1024,
        le=GIB,
        description="largest request body, bytes (a 413 beyond: reading it would hold a worker)",
    )
    query_cache_size: int = Field(
        256, ge=0, le=100_000, description="distinct query texts kept parsed and validated (0 checks every request)"
    )
    introspection: bool = Field(True, description="allow schema introspection")
    debug: bool = Field(False, description="include exception details in errors")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    prometheus_multiproc_dir: str | None = Field(None, validation_alias="PROMETHEUS_MULTIPROC_DIR")

    @field_validator("rest_api_url")
    @classmethod
    def _an_http_url(cls, value: str) -> str:
        """The REST API's URL, parsed as the client will (urllib3): a URL it cannot use failed every
        worker with a traceback. The refusal never shows the URL: it may hold a password."""
        needed = "an http:// or https:// URL with a host, e.g. http://127.0.0.1:5000"
        if not value.strip():
            raise ValueError(f"empty: {needed}")
        try:
            url = urllib3.util.parse_url(value)
        except urllib3.exceptions.LocationParseError:
            raise ValueError(f"not a URL (a bad host or port?): {needed}") from None
        if url.scheme is None and url.host:  # `host:port`, which the client has always read as http
            return f"http://{value.strip().removeprefix('//')}".rstrip("/")
        if url.scheme not in ("http", "https"):
            raise ValueError(f"the scheme is {url.scheme or 'missing'}: {needed}")
        if not url.host:
            raise ValueError(f"no host: {needed}")
        return value.rstrip("/")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

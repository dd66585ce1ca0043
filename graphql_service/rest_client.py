"""The one pooled HTTP client of a GraphQL process to the REST API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
import urllib3
from urllib3.util.retry import Retry

from graphql_service.settings import GraphQLSettings


class RestError(Exception):
    """The REST API answered with an error (status >= 400) or could not be reached (status 0)."""

    def __init__(self, status: int, detail: str, errors: list[dict] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


@dataclass
class RestClient:
    """Keep-alive connections with timeouts; only idempotent reads are retried.

    A urllib3 connection pool for the one REST host rather than a requests session: the pool is
    thread-safe, so the worker's threads share it, and a call costs about 0.5 ms less (no per-call
    environment, proxy and netrc lookups, no URL routing to a pool).
    """

    settings: GraphQLSettings
    observe: Callable[[str, str], None] | None = None  # (method, status) of every call, for metrics
    calls: int = 0  # REST calls made by this process (tests read it to check for N+1)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    pool: urllib3.HTTPConnectionPool = field(init=False, repr=False)
    _base_path: str = field(init=False, repr=False)  # e.g. "/api" when the REST API is mounted below the root

    def __post_init__(self) -> None:
        retry = Retry(total=2, backoff_factor=0.1, allowed_methods={"GET"}, status_forcelist={502, 503, 504})
        self.pool = urllib3.connection_from_url(
            self.settings.rest_api_url, maxsize=self.settings.pool_size, retries=retry, timeout=self.settings.timeout
        )
        self._base_path = urllib3.util.parse_url(self.settings.rest_api_url).path or ""

    def _not_the_api(self, response) -> RestError:
        answered = f"{response.status}, {response.headers.get('Content-Type', 'no content type')}"
        return RestError(502, f"{self.settings.rest_api_url} does not answer as the Base B REST API ({answered})")

    def _observe(self, method: str, status: str) -> None:
        if self.observe is not None:
            self.observe(method, status)

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """One REST call; the decoded JSON body (None for 204), or a RestError."""
        headers = {"Accept": "application/json"}
        token = token or self.settings.service_token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = f"{self._base_path}{path}"
        body = None
        try:
            if params:
                # An absent filter and a null one mean the same to the REST API: neither is sent.
                url += "?" + urlencode({key: value for key, value in params.items() if value is not None})
            if json is not None:
                body = orjson.dumps(json)
                headers["Content-Type"] = "application/json"
        except (UnicodeEncodeError, TypeError) as exc:  # a lone surrogate: no UTF-8 text can carry it
            raise RestError(400, f"a value cannot be sent to the REST API: {exc}") from None
        with self._lock:
            self.calls += 1
        try:
            response = self.pool.urlopen(method, url, body=body, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            self._observe(method, "unreachable")
            raise RestError(0, f"the REST API is unavailable: {type(exc).__name__}") from exc
        self._observe(method, str(response.status))
        if response.status == 204:
            return None
        try:
            body = orjson.loads(response.data)
        except orjson.JSONDecodeError:
            body = {}
            # A page where the REST API answers JSON for every route it has (200, or a 404 or 405 of a
            # route it would have): a wrong REST_API_URL, which is no client's NOT_FOUND. A proxy's
            # plain 4xx (413: too large) still says something of the request.
            if response.status < 400 or response.status in (404, 405):
                raise self._not_the_api(response) from None
        if response.status >= 400:
            detail = body.get("detail") if isinstance(body, dict) else None
            errors = body.get("errors") if isinstance(body, dict) else None
            raise RestError(response.status, detail or response.reason or "", errors)
        return body

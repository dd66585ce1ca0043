"""The one pooled HTTP client of a GraphQL process to the REST API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
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
    """Keep-alive sessions with timeouts; only idempotent reads are retried."""

    settings: GraphQLSettings
    _local: threading.local = field(default_factory=threading.local, repr=False)
    observe: Callable[[str, str], None] | None = None  # (method, status) of every call, for metrics
    calls: int = 0  # REST calls made by this process (tests read it to check for N+1)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def session(self) -> requests.Session:
        # requests.Session is not thread-safe: one per thread, each with its own pool.
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            retry = Retry(total=2, backoff_factor=0.1, allowed_methods={"GET"}, status_forcelist={502, 503, 504})
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.settings.pool_size, max_retries=retry)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    def _observe(self, method: str, status: str) -> None:
        if self.observe is not None:
            self.observe(method, status)

    def request(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> Any:
        """One REST call; the decoded JSON body (None for 204), or a RestError."""
        headers = {"Accept": "application/json"}
        token = token or self.settings.service_token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        with self._lock:
            self.calls += 1
        try:
            response = self.session.request(
                method, f"{self.settings.rest_api_url}{path}", headers=headers, timeout=self.settings.timeout, **kwargs
            )
        except requests.RequestException as exc:
            self._observe(method, "unreachable")
            raise RestError(0, f"the REST API is unavailable: {type(exc).__name__}") from exc
        self._observe(method, str(response.status_code))
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else None
            raise RestError(response.status_code, detail or response.reason, body.get("errors") if body else None)
        return body

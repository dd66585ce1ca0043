"""The one pooled HTTP client of a GraphQL process to the REST API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
import urllib3
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

from graphql_service.settings import GraphQLSettings


class RestError(Exception):
    """The REST API answered with an error (status >= 400) or could not be reached (status 0)."""

    def __init__(self, status: int, detail: str, errors: list[dict] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


class RequestTimedOut(RestError):
    """The deadline given to a call passed: before the call (it was not made) or during it."""

    def __init__(self, detail: str = "the REST API did not answer before the deadline"):
        super().__init__(504, detail)


class NotTheApi(RestError):
    """REST_API_URL answered, but not as the REST API does (a page where it answers JSON): a wrong
    address, not an error of the REST API's."""

    def __init__(self, detail: str):
        super().__init__(502, detail)


class WriteOutcomeUnknown(RestError):
    """A write was sent and no answer came (its connection broke or timed out while it waited): the
    REST API may have applied it. Not 'unavailable, try again': a client that sent it again made a
    second row."""

    def __init__(self, why: str):
        super().__init__(0, f"the REST API did not answer a write it was sent ({why}): it may have been applied")


class AnswerTooLarge(RestError):
    """The REST answers of a GraphQL request would pass its bytes (GRAPHQL_MAX_REST_BYTES): the read
    that found it was stopped, a later call is not made. The client's to mend (ask for fewer rows),
    not the REST API failing: not retried, not an outage. Status 200: the REST API did answer."""

    def __init__(self, limit: int, detail: str | None = None):
        super().__init__(200, detail or f"the REST answers would pass {limit} bytes")
        self.limit = limit


@dataclass
class ByteBudget:
    """The REST answer bytes one GraphQL request may read, and those it has read."""

    limit: int
    read: int = 0
    spent: bool = False  # an answer passed it: the request makes no more calls

    def add(self, size: int) -> None:
        self.read += size
        self.spent = self.spent or self.read > self.limit


READ_CHUNK = 1 << 16  # the most of an answer read past its budget


def _read_body(response: urllib3.BaseHTTPResponse, method: str, budget: ByteBudget | None) -> bytes | bytearray:
    """The answer's body (the REST API's pages are chunked: no length ahead). A read stops once it
    would pass its budget (AnswerTooLarge), before it is read if its Content-Length says so (read
    whole, `{ getArticles(limit: 1000) { content } }` of 1 MB rows put 1 GB in a worker). A
    write's answer is one row, and the write was applied: it is read whole, and counted."""
    if budget is None or method != "GET":
        data = response.read()
        if budget is not None:
            budget.add(len(data))
        return data
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and budget.read + int(length) > budget.limit:
        budget.spent = True
        raise AnswerTooLarge(budget.limit)
    data = bytearray()  # grown in place: a list of chunks joined at the end held the answer twice
    for chunk in response.stream(READ_CHUNK):
        budget.add(len(chunk))
        if budget.spent:
            raise AnswerTooLarge(budget.limit)
        data += chunk
    return data


def _drop(response: urllib3.BaseHTTPResponse) -> None:
    """An answer left before its end: its connection is closed, not put back as it is (the pool would
    hand the rest of this answer to the next call as its answer)."""
    response.close()
    response.release_conn()


def _sent(error: BaseException | None) -> bool:
    """Whether the failed attempt behind `error` had sent its request: anything but a failure to
    connect (urllib3 wraps the last attempt's error in a MaxRetryError; none: no attempt failed)."""
    if isinstance(error, urllib3.exceptions.MaxRetryError):
        error = error.reason
    return error is not None and not isinstance(error, urllib3.exceptions.ConnectTimeoutError)


class _DeadlinePassed(urllib3.exceptions.MaxRetryError):
    """Raised inside urllib3 when a retry (or its wait) would end past the deadline."""


class _DeadlineRetry(Retry):
    """The client's retries, none begun and no wait slept past the deadline; each retry about to be
    sent is told to `on_retry` (method, reason), as the call's metric counts a call once."""

    deadline: float | None = None
    on_retry: Callable[[str, str], None] | None = None

    def new(self, **kw: Any) -> _DeadlineRetry:
        retry = super().new(**kw)
        retry.deadline, retry.on_retry = self.deadline, self.on_retry
        return retry

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise _DeadlinePassed(_pool, url, error)
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def sleep(self, response=None) -> None:
        if self.deadline is not None:
            wait = self.get_retry_after(response) if response is not None and self.respect_retry_after_header else None
            if time.monotonic() + (wait or self.get_backoff_time()) >= self.deadline:
                raise _DeadlinePassed(None, None, None)
        super().sleep(response)
        # urllib3 sends the request again right after this wait (a status's or an error's retry).
        if self.on_retry is not None and self.history:
            failed = self.history[-1]
            self.on_retry(failed.method or "", str(failed.status) if failed.status else "unreachable")


class _DeadlineTimeout(Timeout):
    """The client's timeout for each attempt, cut to the time left before the deadline (urllib3 clones
    the timeout for every attempt, retries included)."""

    def __init__(self, seconds: float, deadline: float):
        super().__init__(connect=seconds, read=seconds)
        self.seconds, self.deadline = seconds, deadline

    def clone(self) -> Timeout:
        left = max(min(self.seconds, self.deadline - time.monotonic()), 0.001)
        return Timeout(connect=left, read=left)


RETRIED_STATUSES = frozenset({502, 503, 504})


def _retries(deadline: float | None, on_retry: Callable[[str, str], None] | None = None) -> _DeadlineRetry:
    # Reads are retried on a failed connection or read and on 502/503/504; a write only when its
    # connection failed (urllib3 retries that for every method: nothing was sent).
    # Retries spent on 5xx answers end with the last answer (raise_on_status off), counted by its status:
    # urllib3's own error for them was counted as "unreachable" when the API had answered 503.
    retry = _DeadlineRetry(
        total=2, backoff_factor=0.1, allowed_methods={"GET"}, status_forcelist=RETRIED_STATUSES, raise_on_status=False
    )
    retry.deadline, retry.on_retry = deadline, on_retry
    return retry


def is_unavailable(error: RestError, method: str) -> bool:
    """Whether `error` to a `method` call says the REST API is down (SERVICE_UNAVAILABLE: nothing was
    applied): it could not be reached, a gateway answered 502/504, or a read answered 503 with its
    retries spent. A write's 503 is one row's lock timeout, deadlock or serialization failure in a
    healthy API (found in review: it stopped the mutation's next, unrelated write). Not a write whose
    outcome is unknown, nor a call cut by the deadline (the deadline already stops the calls after it)."""
    if type(error) is not RestError:
        return False
    return error.status in (0, 502, 504) or (error.status == 503 and method == "GET")


@dataclass
class BoundedClient:
    """The client as one GraphQL request uses it: every call ends by the request's deadline, and
    once it has passed no call is made. Once a call has found the REST API unavailable (its retries
    spent), the request's later calls fail at once with the same error: found from outside, 200 row
    reads of a failing API each spent their retries, held a thread to the deadline and sent 313
    requests to an API trying to recover. The REST answers it reads are bounded in bytes (`budget`):
    once they pass it, the request's later calls fail at once too (AnswerTooLarge). A GraphQL
    request's fields run in one thread."""

    client: RestClient
    deadline: float
    budget: ByteBudget | None = None  # None: answers are read whole, uncounted
    outage: RestError | None = None  # the call that found the REST API unavailable

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request_versioned(method, path, **kwargs)[0]

    def request_versioned(self, method: str, path: str, **kwargs: Any) -> tuple[Any, str | None]:
        if self.outage is not None:
            raise RestError(self.outage.status, f"{self.outage.detail} (not called again in this request)")
        if self.budget is not None and self.budget.spent:
            limit = self.budget.limit
            raise AnswerTooLarge(limit, f"the REST answers passed {limit} bytes (not called again in this request)")
        try:
            return self.client.request_versioned(method, path, deadline=self.deadline, budget=self.budget, **kwargs)
        except RestError as exc:  # AnswerTooLarge is no outage (is_unavailable)
            if is_unavailable(exc, method):
                self.outage = exc
            raise


def _without_userinfo(url: str) -> str:
    """The URL as it may be shown (GET /ready answers it to anyone): a user:password@ in it as ***@.
    urllib3 sends no userinfo, but REST_API_URL was shown as configured, password included."""
    parsed = urllib3.util.parse_url(url)
    return parsed._replace(auth="***").url if parsed.auth is not None else url


@dataclass
class RestClient:
    """Keep-alive connections with timeouts; only idempotent reads are retried.

    A urllib3 connection pool for the one REST host rather than a requests session: the pool is
    thread-safe, so the worker's threads share it, and a call costs about 0.5 ms less (no per-call
    environment, proxy and netrc lookups, no URL routing to a pool).
    """

    settings: GraphQLSettings
    observe: Callable[[str, str], None] | None = None  # (method, status) of every call, for metrics
    # (method, reason) of every retry: one more HTTP request of a call, for metrics (reason: the
    # status retried, or "unreachable")
    observe_retry: Callable[[str, str], None] | None = None
    calls: int = 0  # REST calls made by this process (tests read it to check for N+1)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    pool: urllib3.HTTPConnectionPool = field(init=False, repr=False)
    _base_path: str = field(init=False, repr=False)  # e.g. "/api" when the REST API is mounted below the root

    def __post_init__(self) -> None:
        self.pool = urllib3.connection_from_url(
            self.settings.rest_api_url,
            maxsize=self.settings.pool_size,
            retries=_retries(None, self._observe_retry),
            timeout=self.settings.timeout,
        )
        self._base_path = urllib3.util.parse_url(self.settings.rest_api_url).path or ""

    def _not_the_api(self, response) -> NotTheApi:
        answered = f"{response.status}, {response.headers.get('Content-Type', 'no content type')}"
        shown = _without_userinfo(self.settings.rest_api_url)
        return NotTheApi(f"{shown} does not answer as the Base B REST API ({answered})")

    def _observe(self, method: str, status: str) -> None:
        if self.observe is not None:
            self.observe(method, status)

    def _observe_retry(self, method: str, reason: str) -> None:
        if self.observe_retry is not None:
            self.observe_retry(method, reason)

    def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict,
        deadline: float | None,
        retry: bool,
        budget: ByteBudget | None,
    ) -> tuple[urllib3.BaseHTTPResponse, bytes | bytearray]:
        """The call itself, its retries included: urllib3's answer and its body, or a RestError."""
        options: dict[str, Any] = {}
        if deadline is not None:
            if time.monotonic() >= deadline:
                raise RequestTimedOut("the time limit passed before the call to the REST API")
            options["timeout"] = _DeadlineTimeout(self.settings.timeout, deadline)
            options["retries"] = _retries(deadline, self._observe_retry)
        if not retry:
            options["retries"] = False
        with self._lock:
            self.calls += 1
        try:
            while True:
                # The body is read here, not preloaded by urllib3, so that a read stops at its budget.
                response = self.pool.urlopen(method, url, body=body, headers=headers, preload_content=False, **options)
                read_before = budget.read if budget is not None else 0
                try:
                    data = _read_body(response, method, budget)
                except urllib3.exceptions.HTTPError as exc:
                    _drop(response)
                    if budget is not None:  # the broken attempt's bytes are not kept: the retry reads them again
                        budget.read, budget.spent = read_before, False
                    # The body broke off: retried as urllib3 retries an answer it preloads (a read only;
                    # a write's error is raised, and spent retries raise MaxRetryError).
                    options["retries"] = response.retries.increment(method, url, error=exc, _pool=self.pool)
                    options["retries"].sleep()
                    continue
                except AnswerTooLarge:
                    _drop(response)
                    self._observe(method, "too_large")
                    raise
                except BaseException:
                    _drop(response)
                    raise
                response.release_conn()
                return response, data
        except (_DeadlinePassed, urllib3.exceptions.HTTPError) as exc:
            # A single attempt (retry=False) cut short by the deadline raises urllib3's own timeout.
            timed_out = isinstance(exc, _DeadlinePassed) or (deadline is not None and time.monotonic() >= deadline)
            self._observe(method, "deadline" if timed_out else "unreachable")
            if method != "GET" and _sent(exc):  # reads are safe to send again; a write may have landed
                raise WriteOutcomeUnknown("out of time" if timed_out else type(exc).__name__) from exc
            if timed_out:
                raise RequestTimedOut() from exc
            raise RestError(0, f"the REST API is unavailable: {type(exc).__name__}") from exc

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One REST call (the arguments of `request_versioned`); the decoded JSON body (None for 204)."""
        return self.request_versioned(method, path, **kwargs)[0]

    def request_versioned(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        deadline: float | None = None,
        retry: bool = True,
        if_match: str | None = None,
        budget: ByteBudget | None = None,
    ) -> tuple[Any, str | None]:
        """One REST call: the decoded JSON body (None for 204), or a RestError, and the ETag of the row
        the REST API answered (None where it sends none). With a `deadline` (time.monotonic()) the call,
        its retries included, ends by it (RequestTimedOut), and is not made once it has passed;
        `retry=False` makes one attempt. `if_match`: write only the row version with that ETag (else a
        RestError 412). `budget`: the answer bytes the call may read, counted there (AnswerTooLarge
        beyond)."""
        headers = {"Accept": "application/json"}
        if if_match is not None:
            headers["If-Match"] = if_match
        if token is None:  # "" is a caller's header that carries no usable token: no fallback for it
            token = self.settings.service_token
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
        response, data = self._send(method, url, body, headers, deadline, retry, budget)
        self._observe(method, str(response.status))
        if method != "GET" and response.status in (502, 504):
            # A gateway's (the compose stack's nginx): whether the API behind it got the write is unknown.
            raise WriteOutcomeUnknown(f"a gateway answered {response.status}")
        if response.status == 204:
            return None, None
        try:
            body = orjson.loads(data)
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
        return body, response.headers.get("ETag")

"""The REST API as the pipelines use it: bulk writes and the sync reads, over one keep-alive session.

Bulk writes are safe to retry: the version guard makes a repeated batch change nothing, so the
session retries every method on connection errors and 429/502/503/504, with back-off. What still
fails is raised as `ApiUnavailable` (transient: the task retries later) or `ApiRefused` (terminal:
a 4xx other than 408/429, or a 500, which the API answers only for a bug). A certificate the
client refuses, or a URL or header no request can carry, is a `ConfigurationError`: no retry
changes it.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import unquote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util import parse_url
from urllib3.util.retry import Retry

from base_sync.errors import TRANSIENT_STATUSES, ApiError, ApiRefused, ApiUnavailable, ConfigurationError
from base_sync.key_ranges import KeyRange
from base_sync.settings import API_BACKOFF, API_CONNECT_TIMEOUT, API_RETRIES, API_TIMEOUT, MAX_BODY_BYTES
from base_sync.source import Cursor

__all__ = ["ApiError", "ApiRefused", "ApiUnavailable", "BaseBApi"]
CONNECT_TIMEOUT = API_CONNECT_TIMEOUT  # seconds
# Requests no retry can send: the URL or a header (the token) is unusable as given.
_UNSENDABLE = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
)


# OpenSSL's X509_V_ERR_CERT_NOT_YET_VALID and _HAS_EXPIRED: a certificate its owners renew (a retry
# may pass), where an unknown issuer or another host's certificate stays refused until configured.
_CERTIFICATE_OUT_OF_DATE = frozenset({9, 10})
_ANOTHER_HOST = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH


def _certificate_refused(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure somewhere in the chain requests and urllib3 wrap it in."""
    seen, stack = set(), [error]
    while stack:
        found = stack.pop()
        if id(found) in seen:
            continue
        seen.add(id(found))
        if isinstance(found, ssl.SSLCertVerificationError):
            return found
        linked = (*found.args, getattr(found, "reason", None), found.__cause__, found.__context__)
        stack.extend(item for item in linked if isinstance(item, BaseException))
    return None


def _header_safe(token: str) -> str:
    """The token as an HTTP header can carry it: latin-1 text without control characters (http.client
    encodes headers latin-1, gunicorn decodes them so, and the API compares the same text). A token
    like `tøken€` raised a bare UnicodeEncodeError on every call, which the task retried. The error
    shows no part of the token."""
    try:
        token.encode("latin-1")
        sendable = token.isprintable()
    except UnicodeEncodeError:
        sendable = False
    if not sendable:
        raise ConfigurationError(
            "the API token (the connection's password) holds a character no HTTP header carries (beyond "
            "latin-1, or a control character): give the API a token of letters, digits and punctuation "
            "(API_TOKENS) and the connection it"
        )
    return token


class _Retry(Retry):
    """urllib3's Retry, but a refused certificate is raised at once: urllib3 counts it among the
    "other" errors and retried the same refusal with back-off (then the task's retries, minutes)."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if error is not None and _certificate_refused(error):
            raise MaxRetryError(_pool, url, error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


class BaseBApi:
    def __init__(
        self,
        base_url: str,
        token: str | None,
        timeout: float = API_TIMEOUT,
        pool_size: int = 8,
        retries: int = API_RETRIES,
        sync_path: str | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        verify: bool | str = True,
    ):
        """`verify`: as requests takes it, the CA bundle (a path) that signed the API's certificate,
        False to check none, True for the system's (or REQUESTS_CA_BUNDLE's). A password in the URL
        (`http://reader:<token>@host`) is the token, as in the API connection: requests sent the
        userinfo as Basic auth, which the API does not read, and every error showed it."""
        parsed = parse_url(base_url)
        if parsed.auth is not None:
            token = token or unquote(parsed.auth.partition(":")[2]) or None
            base_url = parsed._replace(auth=None).url
        self.base_url = base_url.rstrip("/")
        self.max_body_bytes = max_body_bytes  # the largest bulk body to send (records.bodies splits)
        # (connect, read): an address that takes no connection fails in seconds, each retry too; a
        # request the API is working on gets the whole `timeout`.
        self.timeout = (min(CONNECT_TIMEOUT, timeout), timeout)
        self.session = requests.Session()
        self.verify = verify
        retry = _Retry(
            total=retries,
            backoff_factor=API_BACKOFF,
            status_forcelist=TRANSIENT_STATUSES,
            allowed_methods=None,  # every method: bulk writes are idempotent under the version guard
            raise_on_status=False,
        )
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if token:
            self.session.headers["Authorization"] = f"Bearer {_header_safe(token)}"
        if sync_path:  # the API counts what each pipeline loaded under this label (its /metrics)
            self.session.headers["X-Sync-Path"] = sync_path

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, **kwargs) -> dict:
        url = f"{self.base_url}{path}"
        try:
            # Per request: requests lets REQUESTS_CA_BUNDLE (set on many hosts) win over a session's `verify`.
            response = self.session.request(method, url, timeout=self.timeout, verify=self.verify, **kwargs)
        except requests.exceptions.SSLError as exc:
            refused = _certificate_refused(exc)
            if refused is None:  # a handshake cut short (a restarting proxy): the retries
                raise ApiUnavailable(method, url, 0, f"unreachable: {exc}") from exc
            if refused.verify_code in _CERTIFICATE_OUT_OF_DATE:  # renewed by its owners: the retries
                raise ApiUnavailable(
                    method, url, 0, f"the API's TLS certificate is out of date ({refused.verify_message}): renew it"
                ) from exc
            if refused.verify_code in _ANOTHER_HOST:
                raise ConfigurationError(
                    f"{method} {url}: the API's TLS certificate is not for this host ({refused.verify_message}): "
                    "give the API connection the host name the certificate names"
                ) from exc
            raise ConfigurationError(
                f"{method} {url}: the API's TLS certificate was refused ({refused.verify_message or refused}): "
                'give the CA that signed it in the API connection\'s extra {"verify": "/path/to/ca.pem"} '
                "(or REQUESTS_CA_BUNDLE), or use a certificate the system trusts"
            ) from exc
        except _UNSENDABLE as exc:
            raise ConfigurationError(f"{method} {url}: no request can be sent: {exc}") from exc
        except requests.RequestException as exc:
            raise ApiUnavailable(method, url, 0, f"unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise ApiError.of(method, url, response.status_code, response.text)
        try:
            return response.json()
        except ValueError:  # a login page, a proxy's error page, another service at this address
            raise ApiRefused(
                method, url, response.status_code, f"not JSON: is {self.base_url} the Base B REST API? {response.text}"
            ) from None

    def check_writes(self, entity: str) -> None:
        """Fail now if this client may not write `entity` (a wrong or missing token): an empty bulk
        delete, which writes nothing, answers 401/403 as any write would. A run with nothing to
        write would otherwise pass with a token that refuses the first real write."""
        try:
            self.bulk_delete(entity, [])
        except ApiError as error:
            # It reads like a delete in the log: say what it was, in the message itself (Airflow 3's
            # log view shows an exception's message, not its notes), and where to look.
            why = (
                "is the API running, and does the task's API connection point at it?"
                if error.status == 0
                else "is the connection's password a token the API takes for writes (API_TOKENS)?"
                if error.status in (401, 403)
                else "does the connection's URL (host, port and schema, the path the API is served under behind a "
                "proxy) lead to the platform's REST API? It has this route"
                if error.status in (404, 405)
                else "the API's log says more"
            )
            raise type(error)(
                error.method,
                error.url,
                error.status,
                f"{error.body} (checking the API at {self.base_url} and its write token with an empty bulk "
                f"delete, which deletes nothing: {why})",
            ) from error

    # Writes
    def bulk_upsert(self, entity: str, body: bytes, restore_ties: bool = False) -> dict:
        """`restore_ties`: the records were made after Base B's tombstones of their version (re-read from
        Base A to mend a difference, or change events in each key's order): at an equal version they
        restore the row, where a plain write loses the tie to the tombstone."""
        params = {"restore_ties": "true"} if restore_ties else None
        return self._post_body(f"/{entity}/bulk", body, params)

    def bulk_delete(self, entity: str, records: list[dict]) -> dict:
        return self._call("POST", f"/{entity}/bulk/delete", json=records)

    def would_delete(self, entity: str, records: list[dict]) -> set[int]:
        """The keys among the delete records whose rows Base B would delete (live, not newer): a dry run."""
        return self.plan_delete(entity, records)[0]

    def plan_delete(self, entity: str, records: list[dict]) -> tuple[set[int], dict[int, datetime]]:
        """A dry run of a bulk delete: the keys whose rows Base B would delete, and {key: version} of
        the live rows it would keep because it holds them newer."""
        if not records:
            return set(), {}
        answer = self._call("POST", f"/{entity}/bulk/delete/plan", json=records)
        if not isinstance(answer.get("would_delete"), list):
            raise ApiRefused("POST", f"{self.base_url}/{entity}/bulk/delete/plan", 200, f"no would_delete: {answer}")
        newer = {item["source_id"]: datetime.fromisoformat(item["version"]) for item in answer.get("held_newer", [])}
        return set(answer["would_delete"]), newer

    def quarantine(self, entity: str, body: bytes) -> dict:
        """Store source rows the pipeline refuses (base_sync.dirty) as open rejections."""
        return self._post_body(f"/{entity}/rejections", body)

    def _post_body(self, path: str, body: bytes, params: dict | None = None) -> dict:
        """POST a JSON body the sync encoded and split (records.bodies). A 413 says the API takes less
        than the sync's limit: Werkzeug's text names no setting, so the error names them."""
        headers = {"Content-Type": "application/json"}
        try:
            return self._call("POST", path, data=body, headers=headers, params=params)
        except ApiRefused as error:
            if error.status != 413:
                raise
            why = (
                f"the API refused a body of {len(body)} bytes as too large: the sync's largest body "
                f"({self.max_body_bytes} bytes, SYNC_MAX_BODY_BYTES, or EVENTS_MAX_BODY_BYTES on the events "
                f"path) must stay below the API's API_MAX_CONTENT_LENGTH; the API said: {error.body}"
            )
            raise ApiRefused(error.method, error.url, error.status, why) from error

    # Sync reads
    def window_digest(self, entity: str, since: Cursor | None, until: Cursor, keys: KeyRange | None = None) -> dict:
        return self._call("GET", f"/{entity}/sync/digest", params=_window(since, until, keys))

    def window_versions(
        self, entity: str, since: Cursor | None, until: Cursor, keys: KeyRange | None = None
    ) -> Iterator[tuple[int, datetime]]:
        """(source_id, version) of the synced rows in the window (and key range), by source_id."""
        yield from self._versions(entity, _window(since, until, keys))

    def versions_between(self, entity: str, low: int, high: int) -> Iterator[tuple[int, datetime]]:
        """(source_id, version) of the synced live rows with low <= source_id <= high."""
        yield from self._versions(entity, {"after": max(low - 1, 0), "upto_id": high})

    def _versions(self, entity: str, params: dict) -> Iterator[tuple[int, datetime]]:
        params = {"limit": 50_000, **params}
        while True:
            page = self._call("GET", f"/{entity}/sync/versions", params=params)
            for item in page["items"]:
                yield item["source_id"], datetime.fromisoformat(item["version"])
            if page["next_after"] is None:
                return
            params["after"] = page["next_after"]

    def key_buckets(self, entity: str, size: int, versions: bool = False) -> dict[int, tuple]:
        """{bucket: (count, sum of keys)}; with `versions`, (count, sum of keys, digest of the versions)."""
        params = {"size": size, "versions": "true"} if versions else {"size": size}
        items = self._call("GET", f"/{entity}/sync/buckets", params=params)["items"]
        if versions:
            return {item["bucket"]: (item["count"], item["key_sum"], item["digest"]) for item in items}
        return {item["bucket"]: (item["count"], item["key_sum"]) for item in items}

    def sync_mark(self, entity: str) -> tuple[bool, str | None]:
        """(whether the API keeps marks, the token the batch sync's last commit or run wrote in Base B);
        an API older than the endpoint (or than its token form) keeps none."""
        try:
            answer = self._call("GET", f"/{entity}/sync/mark")
        except ApiRefused as error:
            if error.status in _NO_MARKS:
                return False, None
            raise
        return ("token" in answer), answer.get("token")

    def set_sync_mark(self, entity: str, token: str) -> bool:
        """Write the batch sync's new mark (a run's, a commit's) in Base B; False from an API without the endpoint."""
        try:
            self._call("PUT", f"/{entity}/sync/mark", json={"token": token})
        except ApiRefused as error:
            if error.status in _NO_MARKS:
                return False
            raise
        return True

    def synced_rows(self, entity: str) -> int:
        """How many live synced rows Base B holds (the key buckets' summary, in one or two buckets)."""
        return sum(count for count, _ in self.key_buckets(entity, 2**62).values())

    def open_rejections(self, entity: str) -> Iterator[dict]:
        params: dict = {"limit": 1000}
        while True:
            page = self._call("GET", f"/{entity}/rejections", params=params)
            yield from page["items"]
            if page["next_after"] is None:
                return
            params["after"] = page["next_after"]


_NO_MARKS = (404, 405)  # an API without the sync mark endpoint, or without its PUT


def _window(since: Cursor | None, until: Cursor, keys: KeyRange | None = None) -> dict:
    params = {"until": until.updated_at.isoformat(), "until_id": until.id}
    if since is not None:
        params |= {"since": since.updated_at.isoformat(), "since_id": since.id}
    if keys is not None:
        params |= {"from_id": keys.low, "to_id": keys.high}
    return params

"""Per-request loading: each row, and each list call, is fetched from the REST API at most once per
GraphQL request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql_service.rest_client import BoundedClient, RestClient, RestError


@dataclass
class RowLoader:
    """Caches rows by (resource, id) and list calls by (resource, their parameters), failures too,
    for the life of one request."""

    client: RestClient | BoundedClient
    token: str | None = None
    _rows: dict[tuple[str, int], Any] = field(default_factory=dict)
    _lists: dict[tuple[str, tuple], Any] = field(default_factory=dict)

    def load(self, resource: str, row_id: int) -> Any:
        def fetch() -> Any:
            return self.client.request("GET", f"/{resource}/{row_id}", token=self.token)

        return _cached(self._rows, (resource, row_id), fetch)

    def load_list(self, resource: str, params: dict[str, Any]) -> Any:
        """One page of `resource` (`{"items": [...], "next_after": ...}`): aliases asking for the same
        page, whatever fields each selects, share one call. Its rows answer later row reads of this
        request: the REST API serves a list's items as it serves each row (the same columns, the same
        encoding; a test holds them side by side)."""
        key = (resource, _sent(params))

        def fetch() -> Any:
            page = self.client.request("GET", f"/{resource}", params=params, token=self.token)
            for row in page["items"]:
                self._rows.setdefault((resource, row["id"]), row)  # a row read before keeps its answer
            return page

        return _cached(self._lists, key, fetch)


def _sent(params: dict[str, Any]) -> tuple:
    """The parameters as the REST call sends them: a null one is not sent, and their order is no matter."""
    return tuple(sorted((name, value) for name, value in params.items() if value is not None))


def _cached(cache: dict, key: Any, fetch: Callable[[], Any]) -> Any:
    """`fetch()`'s answer or RestError, kept under `key`: asked again, the same answer, no call."""
    if key not in cache:
        try:
            cache[key] = fetch()
        except RestError as exc:
            cache[key] = exc
    result = cache[key]
    if isinstance(result, RestError):
        raise result
    return result

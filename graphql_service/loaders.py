"""Per-request loading: each row is fetched from the REST API at most once per GraphQL request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql_service.rest_client import BoundedClient, RestClient, RestError


@dataclass
class RowLoader:
    """Caches rows (and failures) by (resource, id) for the life of one request."""

    client: RestClient | BoundedClient
    token: str | None = None
    _rows: dict[tuple[str, int], Any] = field(default_factory=dict)

    def load(self, resource: str, row_id: int) -> Any:
        key = (resource, row_id)
        if key not in self._rows:
            try:
                self._rows[key] = self.client.request("GET", f"/{resource}/{row_id}", token=self.token)
            except RestError as exc:
                self._rows[key] = exc
        result = self._rows[key]
        if isinstance(result, RestError):
            raise result
        return result

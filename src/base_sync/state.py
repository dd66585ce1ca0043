"""Sync state: one watermark per entity, written only after a verified load.

The Airflow store keeps it in a Variable (Admin → Variables in the UI), where an operator can read
it, and reset it to re-sync from an earlier point.
"""

from __future__ import annotations

import json
from typing import Protocol

from base_sync.errors import ConfigurationError
from base_sync.source import Cursor

VARIABLE_PREFIX = "base_a_to_base_b.watermark."


class StateStore(Protocol):
    def get(self, entity: str) -> Cursor | None: ...

    def last_stats(self, entity: str) -> dict:
        """The statistics saved with the watermark by the last committed run ({} before the first)."""
        ...

    def set(self, entity: str, cursor: Cursor | None, stats: dict) -> None: ...


class MemoryStateStore:
    """For tests and one-off runs."""

    def __init__(self):
        self.saved: dict[str, dict] = {}

    def get(self, entity: str) -> Cursor | None:
        return Cursor.from_json(self.saved.get(entity, {}).get("watermark"))

    def last_stats(self, entity: str) -> dict:
        return self.saved.get(entity, {}).get("stats") or {}

    def set(self, entity: str, cursor: Cursor | None, stats: dict) -> None:
        self.saved[entity] = {"watermark": cursor.to_json() if cursor else None, "stats": stats}


class VariableStateStore:
    """Airflow Variables, through the Task SDK (works inside tasks)."""

    def _saved(self, entity: str) -> dict:
        from airflow.sdk import Variable

        name = VARIABLE_PREFIX + entity
        raw = Variable.get(name, default=None)
        return _position(name, raw) if raw else {}

    def get(self, entity: str) -> Cursor | None:
        return Cursor.from_json(self._saved(entity).get("watermark"))

    def last_stats(self, entity: str) -> dict:
        return self._saved(entity).get("stats") or {}

    def set(self, entity: str, cursor: Cursor | None, stats: dict) -> None:
        from airflow.sdk import Variable

        value = json.dumps({"watermark": cursor.to_json() if cursor else None, "stats": stats}, default=str)
        Variable.set(VARIABLE_PREFIX + entity, value, description=f"last verified sync position of {entity}")


def _position(name: str, raw: str) -> dict:
    """A saved position as the sync wrote it; an edit by hand that is not one fails at once, named."""
    try:
        saved = json.loads(raw)
        if not isinstance(saved, dict) or not isinstance(saved.get("stats") or {}, dict):
            raise ValueError("not an object with an object `stats`")
        Cursor.from_json(saved.get("watermark"))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ConfigurationError(
            f"Airflow Variable {name!r} is no sync position ({type(error).__name__}: {error}): expected "
            '{"watermark": {"updated_at": "<ISO time with zone>", "id": <key>} or null, "stats": {...}}; '
            "correct it, or delete it to load the entity from the start"
        ) from None
    return saved

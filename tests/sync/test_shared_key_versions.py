"""`shared_keys.held_in_base_b`'s reads of Base B (the real API): one per run of near keys, not one
per key (a versions read per shared key leaving the scope was an HTTP call per row)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from base_sync.shared_keys import VERSIONS_SPAN, held_in_base_b

V = datetime(2026, 11, 1, tzinfo=UTC)


class Recorded:
    """The real API client, the key ranges of its versions reads recorded."""

    def __init__(self, api):
        self._api, self.asked = api, []

    def versions_between(self, entity: str, low: int, high: int):
        self.asked.append((low, high))
        return self._api.versions_between(entity, low, high)


def employee(key: int) -> dict:
    return {
        "source_id": key,
        "source_updated_at": V.isoformat(),
        "first_name": "A",
        "last_name": "B",
        "email": f"e{key}@example.com",
    }


def test_near_keys_share_one_read_and_only_the_keys_asked_for_are_answered(base_b):
    far = 5 * VERSIONS_SPAN
    api = base_b.api()
    try:
        api.bulk_upsert("employees", orjson.dumps([employee(k) for k in (3, 6, 9, VERSIONS_SPAN - 1, far, far + 2)]))
        recorded = Recorded(api)
        held = held_in_base_b(recorded, "employees")([3, 7, 9, VERSIONS_SPAN - 1, far, far + 3, far + 3])
    finally:
        api.close()
    assert recorded.asked == [(3, VERSIONS_SPAN - 1), (far, far + 3)]
    assert held == {3: V, 9: V, VERSIONS_SPAN - 1: V, far: V}  # not 6 nor far + 2: not asked for


def test_no_keys_no_read():
    recorded = Recorded(None)
    assert held_in_base_b(recorded, "employees")([]) == {} and recorded.asked == []

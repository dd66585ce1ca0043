"""Several clients sending the same bulk upsert at once (keys Base B holds and new keys): every
answer is a 2xx whose counts add up, and together they count each key written exactly once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.concurrency.conftest import AUTH

CLIENTS = 4
ROUNDS = 6


def _records(keys, version: str) -> list[dict]:
    return [{"source_id": k, "source_updated_at": version, "title": f"t{k} {version}"} for k in keys]


def _send_together(base: str, body: list[dict]) -> list[requests.Response]:
    start = threading.Barrier(CLIENTS)

    def send(_):
        with requests.Session() as http:
            start.wait(10)
            return http.post(f"{base}/articles/bulk", json=body, headers=AUTH, timeout=60)

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(send, range(CLIENTS)))


@pytest.mark.parametrize("new_first", [True, False], ids=["direct-copy-tried", "staged-merge"])
def test_same_bulk_from_several_clients_at_once(server, new_first):
    api = server.base
    offset = 1_000_000 if new_first else 2_000_000
    for round_number in range(ROUNDS):
        base_key = offset + round_number * 1_000
        held = range(base_key, base_key + 100)
        new = range(base_key + 100, base_key + 400)
        seeded = requests.post(f"{api}/articles/bulk", json=_records(held, "2024-01-01T00:00:00Z"), headers=AUTH)
        assert seeded.status_code == 200, seeded.text
        # New keys first, middle and last make the server try its direct COPY for all-new batches.
        keys = [*new, *held] if new_first else [*held, *new]
        answers = _send_together(api, _records(keys, f"2024-02-0{round_number + 1}T00:00:00Z"))

        assert [a.status_code for a in answers] == [200] * CLIENTS, [a.text for a in answers]
        results = [a.json() for a in answers]
        for result in results:
            parts = ("inserted", "updated", "unchanged", "stale", "rejected")
            assert sum(result[p] for p in parts) == result["received"] == len(keys), result
        assert sum(r["inserted"] for r in results) == len(new)
        assert sum(r["updated"] for r in results) == len(held)
        assert sum(r["unchanged"] for r in results) == (CLIENTS - 1) * len(keys)

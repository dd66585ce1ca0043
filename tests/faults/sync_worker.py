"""One batch sync run of one entity as its own process, the steps in the DAG's order, for a test to SIGKILL.

python -m tests.faults.sync_worker BASE_A_URL API_URL TOKEN STATE_FILE ENTITY [--pace S] [--pause-before-commit S]

It prints a line when each step is done (`loaded`, `deletes`, `verified`, `committed`), so the test knows
where the process is when it kills it. The watermark lives in STATE_FILE (written atomically).
"""

from __future__ import annotations

import argparse
import json
import time

from base_sync import sync
from base_sync.api_client import BaseBApi
from base_sync.settings import SyncSettings
from base_sync.source import BaseA, source_engine
from tests.faults.helpers import FileStateStore, PacedBaseA

SETTINGS = SyncSettings(lookback_seconds=0, chunk_size=100, bucket_size=1000)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("base_a_url", "api_url", "token", "state_file", "entity"):
        parser.add_argument(name)
    parser.add_argument("--pace", type=float, default=0.0, help="seconds between chunks of the extract")
    parser.add_argument("--pause-before-commit", type=float, default=0.0)
    args = parser.parse_args()
    engine = source_engine(args.base_a_url)
    base_a = PacedBaseA(engine, args.pace) if args.pace else BaseA(engine)
    api, store = BaseBApi(args.api_url, args.token), FileStateStore(args.state_file)

    def step(name: str, result) -> None:
        print(name, json.dumps(result, default=str), flush=True)

    report = sync.load(args.entity, base_a, api, store, SETTINGS)
    step("loaded", report.counts)
    deletes = sync.propagate_deletes(args.entity, base_a, api, store, SETTINGS).to_json()
    step("deletes", deletes)
    verified = sync.verify(args.entity, base_a, api, report, SETTINGS).to_json()
    step("verified", verified)
    time.sleep(args.pause_before_commit)
    step("committed", sync.commit(args.entity, store, report, {"verify": verified, "deletes": deletes}))


if __name__ == "__main__":
    main()

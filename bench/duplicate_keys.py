"""What refusing a name given twice in a JSON object would cost the bulk upsert's decode.

    .venv/bin/python bench/duplicate_keys.py [--rows 10000]

Decodes one bulk body of `--rows` employees (bulk_upsert.py's records) in-process, the fastest of
15 runs each: the API's fast path (msgspec into records, checked), msgspec into dicts, the exact
check every other body gets (strict_json.first_duplicate_key) and a regex pre-scan of key ends.
The README's note on bulk items (read last one wins) quotes these numbers.
"""

from __future__ import annotations

import argparse
import re
import sys
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from api_service import json_body  # noqa: E402
from api_service.fastpath import FastDecoder  # noqa: E402
from baseab_contract.entities import ENTITIES  # noqa: E402
from bench.bulk_upsert import bodies  # noqa: E402
from strict_json import first_duplicate_key  # noqa: E402

KEY_END = re.compile(rb'"[ \t\r\n]*:')


def fastest_ms(run) -> float:
    return min(timeit.repeat(run, number=1, repeat=15)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    rows = parser.parse_args().rows
    body = bodies(rows, rows, "2024-01-01T00:00:00Z")[0]
    fast = FastDecoder(ENTITIES["employees"])
    baseline = fastest_ms(lambda: fast.decode(body))
    print(f"{rows} employees, {len(body) / 1e6:.2f} MB")
    print("| step | ms | of the fast decode |\n| --- | --- | --- |")
    print(f"| fast decode (msgspec, checked) | {baseline:.1f} | 100% |")
    for name, run in (
        ("msgspec into dicts", lambda: json_body.loads_last_key_wins(body)),
        ("exact duplicate check (json pairs hook)", lambda: first_duplicate_key(body)),
        ("regex pre-scan of key ends", lambda: len(KEY_END.findall(body))),
    ):
        spent = fastest_ms(run)
        print(f"| {name} | {spent:.1f} | {100 * spent / baseline:.0f}% |")


if __name__ == "__main__":
    main()

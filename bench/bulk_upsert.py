"""Bulk upsert throughput: N employee rows into PostgreSQL through the API under gunicorn.

    .venv/bin/python bench/bulk_upsert.py [--rows 1000000] [--batch 5000] [--workers 2]

Starts its own gunicorn on a free loopback port over a fresh database, pre-builds the request
bodies (so the client's cost is not measured), then loads the rows with one client stream and
with several, into an empty table each time, and re-sends them once as updates. Prints a
Markdown table and writes bench/results/bulk_upsert.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import psycopg
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api_service import migrate  # noqa: E402
from testbed.servers import PG_HOST, PG_PORT, PG_USER, free_port, recreate_postgres_database, venv_bin, wait_for_http  # noqa: E402

TOKEN = "bench-token"
DEPARTMENTS = ("Sales", "Engineering", "Support", "Finance", "Marketing", "Operations")


def bodies(rows: int, batch: int, version: str) -> list[bytes]:
    """The request bodies: realistic employees, `batch` per request."""
    out = []
    for start in range(1, rows + 1, batch):
        records = [
            {
                "source_id": i,
                "source_updated_at": version,
                "first_name": f"First{i % 9973}",
                "last_name": f"Last{i % 7919}",
                "email": f"employee{i}@example.com",
                "department": DEPARTMENTS[i % len(DEPARTMENTS)],
                "position": f"Level {i % 7}",
                "salary": f"{30000 + (i * 37) % 90000}.{i % 100:02d}",
                "hired_at": f"20{10 + i % 14}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                "created_at": "2020-01-01T00:00:00Z",
            }
            for i in range(start, min(start + batch, rows + 1))
        ]
        out.append(orjson.dumps(records))
    return out


def load(base: str, payloads: list[bytes], streams: int, expect: str, token: str = TOKEN) -> float:
    """Send every body with `streams` parallel clients; the elapsed seconds."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def run(share: list[bytes]) -> None:
        with requests.Session() as session:
            for body in share:
                response = session.post(f"{base}/employees/bulk", data=body, headers=headers, timeout=300)
                response.raise_for_status()
                result = response.json()
                if result[expect] != result["received"]:
                    raise RuntimeError(f"expected every record {expect}: {result}")

    shares = [payloads[i::streams] for i in range(streams)]
    started = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        for future in [pool.submit(run, share) for share in shares]:
            future.result()
    return time.perf_counter() - started


def direct_copy(dsn: str, payloads: list[bytes]) -> float:
    """The anchor: the same rows COPY'd straight into the indexed table by one process, with no
    HTTP and no validation: what the server absorbs, on the same data in the same run."""
    columns = (
        "source_id",
        "first_name",
        "last_name",
        "email",
        "department",
        "position",
        "salary",
        "hired_at",
        "created_at",
        "updated_at",
        "source_updated_at",
        "synced_at",
    )
    types = [
        "int8",
        "varchar",
        "varchar",
        "varchar",
        "varchar",
        "varchar",
        "numeric",
        "date",
        "timestamptz",
        "timestamptz",
        "timestamptz",
        "timestamptz",
    ]
    now = datetime.now(UTC)

    def row(r: dict) -> tuple:
        version = datetime.fromisoformat(r["source_updated_at"])
        return (
            r["source_id"],
            r["first_name"],
            r["last_name"],
            r["email"],
            r["department"],
            r["position"],
            Decimal(r["salary"]),
            date.fromisoformat(r["hired_at"]),
            datetime.fromisoformat(r["created_at"]),
            version,
            version,
            now,
        )

    batches = [[row(r) for r in orjson.loads(body)] for body in payloads]  # built before the clock starts
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        for rows in batches:
            with conn.cursor().copy(f"COPY employees ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for values in rows:
                    copy.write_row(values)
            conn.commit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--streams", type=int, default=4)
    args = parser.parse_args()

    database = "baseab_bench"
    url = recreate_postgres_database(database)
    migrate.upgrade(url)

    port = free_port()
    env = {
        **os.environ,
        "API_DATABASE_URL": url,
        "API_TOKENS": TOKEN,
        "API_BIND": f"127.0.0.1:{port}",
        "API_WORKERS": str(args.workers),
        "API_LOG_LEVEL": "warning",
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-metrics-"),
    }
    command = [
        venv_bin("gunicorn"),
        "-c",
        "api_service/gunicorn.conf.py",
        "--access-logfile",
        "/dev/null",
        "api_service.wsgi:app",
    ]
    server = subprocess.Popen(command, cwd=REPO, env=env)
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        wait_for_http(f"{base}/ready", server)
        print(f"building {args.rows:,} records in bodies of {args.batch:,} ...", flush=True)
        first = bodies(args.rows, args.batch, "2024-01-01T00:00:00Z")
        second = bodies(args.rows, args.batch, "2024-06-01T00:00:00Z")
        runs = [
            ("insert, 1 stream", first, 1, "inserted", True),
            (f"insert, {args.streams} streams", first, args.streams, "inserted", True),
            (f"re-send unchanged, {args.streams} streams", first, args.streams, "unchanged", False),
            (f"update, {args.streams} streams", second, args.streams, "updated", False),
        ]
        dsn = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={database}"
        runs.insert(0, ("anchor: direct COPY, 1 process, no API", first, 1, None, True))
        for label, payloads, streams, expect, empty_first in runs:
            if empty_first:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("TRUNCATE employees")
                    conn.execute("VACUUM ANALYZE employees")
            seconds = direct_copy(dsn, payloads) if expect is None else load(base, payloads, streams, expect)
            results.append(
                {
                    "run": label,
                    "rows": args.rows,
                    "seconds": round(seconds, 2),
                    "rows_per_second": round(args.rows / seconds),
                }
            )
            print(f"{label:<36} {args.rows / seconds:>10,.0f} rows/s  ({seconds:.1f} s)", flush=True)
    finally:
        server.terminate()
        server.wait(30)

    report = {
        "benchmark": "bulk upsert of employees through the REST API into PostgreSQL",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": vars(args),
        "results": results,
    }
    out = REPO / "bench" / "results" / "bulk_upsert.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n| run | rows/s | seconds |\n| --- | ---: | ---: |")
    for row in results:
        print(f"| {row['run']} | {row['rows_per_second']:,} | {row['seconds']} |")


if __name__ == "__main__":
    main()

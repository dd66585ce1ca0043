"""First load benchmark: one run, the same N employees of Base A, every figure the first load's targets name.

    .venv/bin/python bench/first_load.py [--rows 1000000] [--partitions 1,2,4] [--rounds 1] [--no-dlt]

Each measurement loads an empty PostgreSQL database of its own, after a VACUUM and a CHECKPOINT:
(1) the dlt anchor (the `bench` extra): dlt's fastest `sql_table` pipeline here (connectorx, csv
load files, replace), as `bench/batch_sync.py` runs it; (2) the bulk API anchor: the very records
the sync sends, encoded beforehand (so the client's cost is out), posted by 4 client streams into
Base B's real tables through the API (gunicorn, 2 workers), measured last; (3) our first load (load, deletes,
verify, commit: the DAG's steps) with each number of partitions in `--partitions`, every partition
a process of its own started before the clock, as a Celery worker's pool is. `--rounds 2` measures
the curve twice, the second time in reverse order, so drift on a shared machine shows.

For each it records the wall time, rows/s, the peak RSS of the sync's processes and the CPU seconds
of each component (the sync's own processes, the API's workers, PostgreSQL, MariaDB: from /proc,
so it is Linux only). Writes bench/results/first_load.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api_service import migrate  # noqa: E402
from base_sync.records import encode  # noqa: E402
from base_sync.source import BaseA, source_engine  # noqa: E402
from bench import bulk_upsert  # noqa: E402
from bench.batch_sync import (  # noqa: E402
    TOKEN,
    LoadAverage,
    compare_synced,
    compare_with_base_a,
    dlt_versions,
    prepare_base_a,
    run_dlt,
    run_sync,
    settle,
)
from testbed.servers import PG_HOST, PG_PORT, PG_USER, api_server  # noqa: E402

STREAMS = 4  # the bulk API anchor's client streams
_TICK = os.sysconf("SC_CLK_TCK")


def server_cpu() -> dict[tuple[str, int], float]:
    """CPU seconds so far of every PostgreSQL, MariaDB and gunicorn process, by (component, pid)."""
    seen = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # the process ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if b"gunicorn" in command:
            component = "api"
        elif name.startswith("postgres"):
            component = "postgres"
        elif name in ("mariadbd", "mysqld"):
            component = "mariadb"
        else:
            continue
        seen[(component, int(pid))] = (int(fields[11]) + int(fields[12])) / _TICK
    return seen


def cpu_between(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds each component spent between two `server_cpu` snapshots (a process that ended
    in between is not counted: the API's and the servers' processes live through a measurement)."""
    spent: dict[str, float] = {}
    for (component, pid), seconds in after.items():
        spent[component] = spent.get(component, 0.0) + seconds - before.get((component, pid), 0.0)
    return {component: round(seconds, 2) for component, seconds in sorted(spent.items())}


@contextmanager
def empty_base_b(tmp: str, label: str):
    """A fresh, migrated Base B database under its own API (2 workers); yields (api_url, dsn, name)."""
    name = f"bench_first_{label}_{uuid.uuid4().hex[:6]}"
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate.upgrade(f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}")
        dsn = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={name}"
        with api_server(
            f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}", TOKEN, Path(tmp) / f"{name}.log", workers=2
        ) as api_url:
            settle(dsn)
            yield api_url, dsn, name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def encoded_bodies(base_a_url: str, chunk_size: int) -> list[bytes]:
    """The bulk bodies the sync would send on a first load, in its chunk size (not timed)."""
    base_a = BaseA(source_engine(base_a_url))
    try:
        return [encode(chunk) for chunk in base_a.extract("employees", None, chunk_size)]
    finally:
        base_a.engine.dispose()


def measure_bulk_api(base_a_url: str, tmp: str, rows: int) -> dict:
    """The API's own rate: the sync's records, encoded beforehand, posted by STREAMS clients."""
    bodies = encoded_bodies(base_a_url, 5_000)
    with empty_base_b(tmp, "bulk") as (api_url, dsn, name):
        before = server_cpu()
        seconds = bulk_upsert.load(api_url, bodies, STREAMS, "inserted", token=TOKEN)
        cpu = cpu_between(before, server_cpu())
        check = compare_synced(base_a_url, dsn)
    return {"streams": STREAMS, "seconds": seconds, "rows_per_s": rows / seconds, "cpu_s": cpu, "check": check}


def measure_first_load(base_a_url: str, tmp: str, rows: int, partitions: int, concurrency: int) -> dict:
    """Our first load with `partitions` key ranges (1: in one piece), into an empty Base B."""
    settings = {
        "push_concurrency": concurrency,
        "lookback_seconds": 0,
        "partitions": partitions,
        "partition_min_rows": 0,  # --partitions alone decides whether the load is split
    }
    with empty_base_b(tmp, f"p{partitions}") as (api_url, dsn, name):
        before = server_cpu()
        result = run_sync(base_a_url, api_url, {}, settings)
        cpu = cpu_between(before, server_cpu())
        check = compare_synced(base_a_url, dsn)
    result.pop("state", None)
    total = result["timings"]["total"]
    cpu["sync"] = round(result.pop("sync_cpu_s"), 2)
    return {
        "partitions": partitions,
        "planned": result["partitions"],
        "seconds": total,
        "rows_per_s": rows / total,
        "timings": result["timings"],
        "counts": result["counts"],
        "verify": result["verify"],
        "peak_rss_mb": result["peak_rss_mb"],
        "cpu_s": cpu,
        "check": check,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--partitions", default="1,2,4", help="the curve: numbers of partitions, comma-separated")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure the curve this many times (every other reversed)"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="SYNC_PUSH_CONCURRENCY")
    parser.add_argument("--no-dlt", action="store_true", help="leave out the dlt anchor")
    args = parser.parse_args()
    curve = [int(p) for p in args.partitions.split(",")]
    versions = None if args.no_dlt else dlt_versions()
    if versions is None and not args.no_dlt:
        print("dlt anchor left out: dlt or connectorx is not installed (uv pip install -e '.[bench]')")

    base_a_url = prepare_base_a(args.rows)
    results: dict = {"machine": {"cpus": multiprocessing.cpu_count()}, "rows": args.rows, "dlt": None, "loads": []}
    with tempfile.TemporaryDirectory() as tmp, LoadAverage() as load:
        if versions:
            load.mark("dlt")
            with empty_base_b(tmp, "dlt") as (_, dsn, name):
                dlt_url = f"postgresql://{PG_USER}:unused@{PG_HOST}:{PG_PORT}/{name}"  # dlt wants a password
                results["dlt"] = run_dlt(base_a_url, dlt_url, str(Path(tmp) / "dlt"), "dlt_full", False)
                results["dlt"]["versions"] = versions
                results["dlt"]["check"] = compare_with_base_a(base_a_url.rsplit("/", 1)[1], dsn, "dlt_full.employees")
            print(f"dlt: {results['dlt']['rows_per_s']:,.0f} rows/s ({results['dlt']['seconds']:.1f} s)")
        for round_ in range(args.rounds):
            for partitions in curve if round_ % 2 == 0 else reversed(curve):
                load.mark(f"p{partitions}_round{round_ + 1}")
                measured = measure_first_load(base_a_url, tmp, args.rows, partitions, args.concurrency)
                results["loads"].append({"round": round_ + 1, **measured})
                print(f"first load, {partitions} partition(s): {measured['seconds']:.1f} s, cpu {measured['cpu_s']}")
        # Last: this process holds every body meanwhile, and a process spawned after that would start
        # from its size (Linux keeps the peak RSS across the fork and exec), inflating the loads' peaks.
        load.mark("bulk_api")
        results["bulk_api"] = measure_bulk_api(base_a_url, tmp, args.rows)
        print(f"bulk API, {STREAMS} streams: {results['bulk_api']['rows_per_s']:,.0f} rows/s")
        results["load_average"] = load.summary()
    out = REPO / "bench" / "results" / "first_load.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(markdown(results))


def markdown(results: dict) -> str:
    dlt, bulk = results["dlt"], results["bulk_api"]
    lines = ["| measure | s | rows/s | vs dlt | vs bulk API | peak RSS | CPU-s: sync / API / PostgreSQL / MariaDB |"]
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | --- |")

    def row(label: str, seconds: float, rate: float, rss: str, cpu: dict) -> str:
        versus_dlt = f"{rate / dlt['rows_per_s']:.2f}x" if dlt else "-"
        parts = " / ".join(f"{cpu.get(k, 0):.1f}" for k in ("sync", "api", "postgres", "mariadb"))
        versus_bulk = f"{rate / bulk['rows_per_s']:.2f}x"
        return f"| {label} | {seconds:.1f} | {rate:,.0f} | {versus_dlt} | {versus_bulk} | {rss} | {parts} |"

    if dlt:
        lines.append(
            f"| dlt sql_table (connectorx, csv, replace) | {dlt['seconds']:.1f} | {dlt['rows_per_s']:,.0f} | 1.00x | "
            f"{dlt['rows_per_s'] / bulk['rows_per_s']:.2f}x | {dlt['peak_rss_mb']:.0f} MB | - |"
        )
    lines.append(
        row(
            f"bulk API, {bulk['streams']} streams, bodies encoded beforehand",
            bulk["seconds"],
            bulk["rows_per_s"],
            "-",
            bulk["cpu_s"],
        )
    )
    for load in results["loads"]:
        lines.append(
            row(
                f"first load, {load['partitions']} partition(s), round {load['round']}",
                load["seconds"],
                load["rows_per_s"],
                f"{load['peak_rss_mb']:.0f} MB",
                load["cpu_s"],
            )
        )
    avg = results["load_average"]
    lines.append(
        f"\nload average (1 min), {avg['cores']} cores: {avg['one_minute_min']:.2f}–{avg['one_minute_max']:.2f}"
    )
    return "\n" + "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""Events path benchmark: relay decode rate, backlog drain rate, and commit-to-visible latency through Airflow.

    .venv/bin/python bench/events.py [--backlog 100000] [--changes 200]

Starts, on loopback: a MariaDB with its binlog on (private, like the tests), the Tansu broker, the
API (gunicorn, 2 workers) over a fresh PostgreSQL database, and the CDC relay. Then:
1. relay: `--backlog` employees inserted into Base A in 20k-row transactions; the relay's rate is
   events produced over the time from its first to its last event (read from its /metrics);
2. drain: those events applied through the bulk endpoint by the drain the DAG's task runs, in this
   process, from a fresh consumer group: events per second over the whole drain;
3. latency: Airflow (api-server, scheduler, dag-processor, triggerer) with base_a_events woken by its
   asset watcher, default settings; `--changes` single-row updates committed in Base A at random
   intervals of 0-2 s (a run stays up between them), then `--sparse` ones 8-12 s apart (longer than
   EVENTS_IDLE_SECONDS: each wakes a new run), each timed until `GET /employees?source_id=` shows it.
Writes bench/results/events.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import requests
from sqlalchemy import update

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api_service import migrate  # noqa: E402
from base_sync import events  # noqa: E402
from base_sync.api_client import BaseBApi  # noqa: E402
from base_sync.demo import generate  # noqa: E402
from base_sync.settings import EventSettings  # noqa: E402
from base_sync.source import BaseA, source_engine  # noqa: E402
from base_sync.source_schema import create_schema  # noqa: E402
from testbed.airflow import Airflow  # noqa: E402
from testbed.relay import RelayProcess  # noqa: E402
from testbed.servers import PG_HOST, PG_PORT, PG_USER, api_server, binlog_mariadb, kafka_broker  # noqa: E402

TOKEN = "bench-token"


def relay_events(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(r"^relay_events_total\{[^}]*\} (\S+)$", text, re.MULTILINE))


def measure_relay(engine, relay: RelayProcess, backlog: int) -> dict:
    started = time.perf_counter()
    first_seen = None
    generate.seed(engine, "employees", backlog, seed_value=7)
    inserted = time.perf_counter() - started
    while (produced := relay_events(relay.url)) < backlog:
        if produced and first_seen is None:
            first_seen = time.perf_counter()
        time.sleep(0.05)
    done = time.perf_counter()
    first_seen = first_seen or started
    return {
        "rows_inserted": backlog,
        "insert_seconds": round(inserted, 2),
        "relay_seconds": round(done - first_seen, 2),
        "relay_events_per_s": round(backlog / (done - first_seen)),
        "commit_to_all_published_s": round(done - started, 2),
    }


def measure_drain(bootstrap: str, api_url: str, backlog: int) -> dict:
    settings = EventSettings(group_id=f"bench-drain-{time.time_ns()}")
    config = {"bootstrap.servers": bootstrap}
    consumer, producer = events.consumer_for(config, settings), events.producer_for(config)
    api = BaseBApi(api_url, TOKEN)
    try:
        report = events.drain(consumer, producer, api, settings)
    finally:
        consumer.close()
        api.close()
    working = report.seconds - settings.idle_seconds  # the run's final wait for more is not work
    assert report.counts["consumed"] == backlog, report.to_json()
    return {
        "events": report.counts["consumed"],
        "seconds": round(working, 2),
        "events_per_s": round(backlog / working),
        "counts": dict(report.counts),
        "group_id": settings.group_id,
    }


def measure_latency(engine, api_url: str, changes: int, gaps: tuple[float, float]) -> dict:
    """Single-row updates `gaps` seconds apart (uniform), each timed from commit to visible through the API."""
    table = BaseA(engine).table("employees")
    rng = random.Random(int(gaps[1]))
    latencies = []
    http = requests.Session()
    for index in range(changes):
        key = rng.randrange(1, 1000)
        marker = f"Bench {gaps[1]:g} s #{index}"  # never a value a row already holds: every update changes it
        with engine.begin() as conn:
            conn.execute(update(table).where(table.c.id == key).values(position=marker))
        committed = time.perf_counter()
        while True:
            items = http.get(f"{api_url}/employees", params={"source_id": key}, timeout=5).json()["items"]
            if items and items[0]["position"] == marker:
                break
            if time.perf_counter() - committed > 120:
                raise TimeoutError(f"change {index} not visible after 120 s")
            time.sleep(0.02)
        latencies.append(time.perf_counter() - committed)
        time.sleep(rng.uniform(*gaps))
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")  # within the samples, even for few
    return {
        "changes": changes,
        "gap_s": list(gaps),
        "p50_s": round(statistics.median(latencies), 3),
        "p95_s": round(cuts[94], 3),
        "p99_s": round(cuts[98], 3),
        "max_s": round(max(latencies), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=200, help="changes 0-2 s apart (a run stays up)")
    parser.add_argument("--sparse", type=int, default=30, help="changes 8-12 s apart (each wakes a new run)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-events-"))
    database = f"bench_events_{time.time_ns()}"
    with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{database}"')
    pg_url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
    migrate.upgrade(pg_url)
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()}}
    with (
        binlog_mariadb(workdir) as maria_port,
        kafka_broker(workdir / "tansu.log") as bootstrap,
        api_server(pg_url, TOKEN, workdir / "api.log", workers=2) as api_url,
    ):
        base_a_url = f"mysql+mysqldb://root@127.0.0.1:{maria_port}/base_a"
        admin = source_engine(f"mysql+mysqldb://root@127.0.0.1:{maria_port}/mysql")
        with admin.begin() as conn:
            conn.exec_driver_sql("CREATE DATABASE base_a")
        admin.dispose()
        engine = source_engine(base_a_url)
        create_schema(engine)
        relay = RelayProcess(base_a_url, bootstrap, workdir)
        relay.env["RELAY_TOPIC_PREFIX"] = relay.prefix = "base_a"
        relay.start()
        try:
            results["relay"] = measure_relay(engine, relay, args.backlog)
            print("relay", results["relay"], flush=True)
            results["drain"] = measure_drain(bootstrap, api_url, args.backlog)
            print("drain", results["drain"], flush=True)
            host, port = api_url.removeprefix("http://").split(":")
            kafka = {
                "bootstrap.servers": bootstrap,
                "group.id": "base_a_events.wake",
                "enable.auto.commit": "false",
                "auto.offset.reset": "latest",
                "session.timeout.ms": "6000",
                "heartbeat.interval.ms": "1000",
            }
            airflow = Airflow(
                workdir / "airflow",
                {
                    "base_b_api": {"conn_type": "http", "host": host, "port": int(port), "password": TOKEN},
                    "base_a_kafka": {"conn_type": "kafka", "extra": json.dumps(kafka)},
                },
                # The DAG continues from the drain's committed offsets: nothing is waiting when timing starts.
                extra_env={"EVENTS_GROUP_ID": results["drain"].pop("group_id")},
            )
            (workdir / "airflow").mkdir(exist_ok=True)
            with airflow.services(workdir / "airflow"):
                airflow.wait_for_dag("base_a_events")
                airflow.cli("dags", "unpause", "base_a_events")
                airflow.wait_for_watcher("ChangeWakeTrigger")
                results["latency"] = measure_latency(engine, api_url, args.changes, (0, 2))
                print("latency, a change every 0-2 s", results["latency"], flush=True)
                results["latency_sparse"] = measure_latency(engine, api_url, args.sparse, (8, 12))
                print("latency, a change every 8-12 s", results["latency_sparse"], flush=True)
        finally:
            relay.stop()
            engine.dispose()
    out = REPO / "bench" / "results" / "events.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    r = results
    print(
        "\n| measure | value | goal |\n| --- | --- | --- |\n"
        f"| relay decode + publish | {r['relay']['relay_events_per_s']:,} events/s | ≥ 15,000 |\n"
        f"| backlog drain ({r['drain']['events']:,} events) | {r['drain']['events_per_s']:,} events/s | ≥ 20,000 |\n"
        f"| commit → visible via API, p50 | {r['latency']['p50_s']} s | ≤ 3 s |\n"
        f"| commit → visible via API, p95 | {r['latency']['p95_s']} s | ≤ 5 s |\n"
        f"| commit → visible via API, p99 | {r['latency']['p99_s']} s | |\n"
        f"| the same, changes 8-12 s apart: p50 / p95 | {r['latency_sparse']['p50_s']} / "
        f"{r['latency_sparse']['p95_s']} s | |\n"
    )


if __name__ == "__main__":
    main()

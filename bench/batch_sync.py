"""Batch sync benchmark: N employees from MariaDB to PostgreSQL through the API (gunicorn, 2 workers).

    .venv/bin/python bench/batch_sync.py [--rows 1000000] [--changes 10000] [--concurrency 2]

In one run, on the same Base A data: (1) the anchor, a direct single-process COPY-and-merge from
MariaDB into an indexed PostgreSQL table; (2) the full initial sync (load, deletes, verify,
commit, as the DAG runs them) into an empty Base B; (3) an incremental sync after `--changes`
random updates. Each sync runs in a child process, so its peak memory (max RSS) is its own.
Writes bench/results/batch_sync.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

import MySQLdb
import MySQLdb.cursors
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api_service import migrate  # noqa: E402
from base_sync import generate, sync  # noqa: E402
from base_sync.api_client import BaseBApi  # noqa: E402
from base_sync.settings import SyncSettings  # noqa: E402
from base_sync.source import BaseA, source_engine  # noqa: E402
from base_sync.source_schema import create_schema  # noqa: E402
from base_sync.state import MemoryStateStore  # noqa: E402
from tests.servers import PG_HOST, PG_PORT, PG_USER, api_server  # noqa: E402

TOKEN = "bench-token"
COLUMNS = ("first_name", "last_name", "email", "department", "position", "salary", "hired_at")


def prepare_base_a(rows: int) -> str:
    """A MariaDB database with `rows` employees (kept between runs, rebuilt if the count differs)."""
    name = f"bench_base_a_{rows}"
    url = f"mysql+mysqldb://root@127.0.0.1:3306/{name}"
    admin = MySQLdb.connect(host="127.0.0.1", user="root")
    admin.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    admin.close()
    engine = source_engine(url)
    create_schema(engine)
    if generate.count(engine, "employees") != rows:
        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE employees")
        started = time.perf_counter()
        generate.seed(engine, "employees", rows, seed_value=1)
        print(f"seeded {rows} employees in {time.perf_counter() - started:.1f} s")
    engine.dispose()
    return url


def anchor_copy_and_merge(maria_db: str, pg_dsn: str) -> float:
    """The anchor: one process streams Base A, COPYs into a staging table and merges into an
    indexed table with INSERT ... ON CONFLICT: no HTTP, no validation, no verification."""
    with psycopg.connect(pg_dsn, autocommit=True) as pg:
        pg.execute("DROP TABLE IF EXISTS anchor_employees")
        pg.execute(
            "CREATE TABLE anchor_employees (id bigserial PRIMARY KEY, source_id bigint UNIQUE, "
            "first_name varchar(100), last_name varchar(100), email varchar(255), department varchar(100), "
            "position varchar(100), salary numeric(12,2), hired_at date, created_at timestamptz, "
            "updated_at timestamptz, source_updated_at timestamptz)"
        )
        pg.execute("CREATE UNIQUE INDEX ON anchor_employees (email)")
    cols = ", ".join(("source_id", *COLUMNS, "created_at", "updated_at", "source_updated_at"))
    updates = ", ".join(f"{c} = excluded.{c}" for c in (*COLUMNS, "updated_at", "source_updated_at"))
    maria = MySQLdb.connect(host="127.0.0.1", user="root", db=maria_db, init_command="SET time_zone='+00:00'")
    started = time.perf_counter()
    with psycopg.connect(pg_dsn) as pg:
        pg.execute("SET jit = off")
        pg.execute("SET timezone = 'UTC'")  # Base A's naive timestamps are UTC
        pg.execute(f"CREATE TEMP TABLE stage ON COMMIT DELETE ROWS AS SELECT {cols} FROM anchor_employees WITH NO DATA")
        cursor = maria.cursor(MySQLdb.cursors.SSCursor)
        cursor.execute(f"SELECT id, {', '.join(COLUMNS)}, created_at, updated_at, updated_at FROM employees")
        while rows := cursor.fetchmany(50_000):
            with pg.cursor().copy(f"COPY stage ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            pg.execute(
                f"INSERT INTO anchor_employees ({cols}) SELECT {cols} FROM stage ON CONFLICT (source_id) DO UPDATE "
                f"SET {updates} WHERE anchor_employees.source_updated_at < excluded.source_updated_at"
            )
            pg.commit()
    maria.close()
    return time.perf_counter() - started


def _sync_child(base_a_url: str, api_url: str, state: dict, settings: dict, out) -> None:
    """One DAG run's steps for employees, timed; runs in its own process."""
    base_a, api = BaseA(source_engine(base_a_url)), BaseBApi(api_url, TOKEN)
    store, config = MemoryStateStore(), SyncSettings(**settings)
    store.saved = state
    timings = {}
    started = time.perf_counter()
    report = sync.load("employees", base_a, api, store, config)
    timings["load"] = time.perf_counter() - started
    mark = time.perf_counter()
    deletes = sync.propagate_deletes("employees", base_a, api, config)
    timings["deletes"] = time.perf_counter() - mark
    mark = time.perf_counter()
    verified = sync.verify("employees", base_a, api, report, config)
    timings["verify"] = time.perf_counter() - mark
    sync.commit("employees", store, report, {})
    timings["total"] = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.send(
        {
            "timings": timings,
            "counts": dict(report.counts),
            "verify": verified,
            "deletes": deletes,
            "peak_rss_mb": peak_mb,
            "state": store.saved,
        }
    )


def run_sync(base_a_url: str, api_url: str, state: dict, settings: dict) -> dict:
    receive, send = multiprocessing.Pipe(duplex=False)
    # spawn, not fork: the child's peak memory must not include pages inherited from this process.
    child = multiprocessing.get_context("spawn").Process(
        target=_sync_child, args=(base_a_url, api_url, state, settings, send)
    )
    child.start()
    result = receive.recv()
    child.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    settings = {"push_concurrency": args.concurrency, "lookback_seconds": 0}

    base_a_url = prepare_base_a(args.rows)
    maria_db = base_a_url.rsplit("/", 1)[1]
    pg_name = f"bench_base_b_{uuid.uuid4().hex[:8]}"
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{pg_name}"')
    pg_dsn = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={pg_name}"
    database_url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_name}"
    try:
        anchor = anchor_copy_and_merge(maria_db, pg_dsn)
        print(f"anchor: {args.rows / anchor:,.0f} rows/s ({anchor:.1f} s)")
        migrate.upgrade(database_url)
        with (
            tempfile.TemporaryDirectory() as tmp,
            api_server(database_url, TOKEN, Path(tmp) / "api.log", workers=args.workers) as api_url,
        ):
            full = run_sync(base_a_url, api_url, {}, settings)
            print(f"full sync: {full['timings']}, peak {full['peak_rss_mb']:.0f} MB")
            engine = source_engine(base_a_url)
            generate.churn(engine, "employees", updates=args.changes, seed_value=2)
            engine.dispose()
            incremental = run_sync(base_a_url, api_url, full["state"], settings)
            print(f"incremental: {incremental['timings']}, peak {incremental['peak_rss_mb']:.0f} MB")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')

    full_rate = args.rows / full["timings"]["total"]
    load_rate = args.rows / full["timings"]["load"]
    anchor_rate = args.rows / anchor
    results = {
        "machine": {"cpus": multiprocessing.cpu_count(), "python": platform.python_version()},
        "rows": args.rows,
        "settings": settings,
        "api_workers": args.workers,
        "anchor_copy_and_merge": {"seconds": anchor, "rows_per_s": anchor_rate},
        "full_sync": {
            **full,
            "rows_per_s": full_rate,
            "load_rows_per_s": load_rate,
            "ratio_to_anchor": full_rate / anchor_rate,
        },
        "incremental_sync": {**incremental, "changes": args.changes},
    }
    for part in ("full_sync", "incremental_sync"):
        results[part].pop("state", None)
    out = REPO / "bench" / "results" / "batch_sync.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    t_full, t_inc = full["timings"], incremental["timings"]
    print(f"""
| measure | value |
| --- | --- |
| anchor: direct COPY-and-merge, 1 process | {anchor_rate:,.0f} rows/s ({anchor:.1f} s) |
| full sync, all steps | {full_rate:,.0f} rows/s ({t_full["total"]:.1f} s) = {full_rate / anchor_rate:.2f} × anchor |
| full sync, load step | {load_rate:,.0f} rows/s ({t_full["load"]:.1f} s) = {load_rate / anchor_rate:.2f} × anchor |
| full sync: deletes / verify | {t_full["deletes"]:.2f} s / {t_full["verify"]:.2f} s |
| incremental ({args.changes:,} changed of {args.rows:,}): total | {t_inc["total"]:.2f} s |
| incremental: load / deletes / verify | {t_inc["load"]:.2f} s / {t_inc["deletes"]:.2f} s / {t_inc["verify"]:.2f} s |
| peak RSS of the sync: full / incremental | {full["peak_rss_mb"]:.0f} MB / {incremental["peak_rss_mb"]:.0f} MB |
""")


if __name__ == "__main__":
    main()

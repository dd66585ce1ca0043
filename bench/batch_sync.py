"""Batch sync benchmark: N employees from MariaDB to PostgreSQL through the API (gunicorn, 2 workers).

    .venv/bin/python bench/batch_sync.py [--rows 1000000] [--changes 10000] [--concurrency 2]
        [--partitions 1] [--no-dlt]

In one run, on the same Base A data: (1) the anchor, a direct single-process COPY-and-merge from
MariaDB into an indexed PostgreSQL table; (2) the dlt anchor (needs the `bench` extra:
`uv pip install -e '.[bench]'`): dlt's `sql_table` with the connectorx backend and csv load files,
a full load (replace) and the first run of an incremental pipeline (cursor `updated_at`, merge
with the upsert strategy on `id`), each into its own PostgreSQL schema; (3) our full initial sync
(load, deletes, verify, commit, as the DAG runs them) into an empty Base B, with `--partitions N`
split into N key ranges loaded and verified at once, each in its own process (the mapped tasks); (4) `--changes`
random changes in Base A (1% each inserts and deletes, the rest updates), then our incremental sync
and dlt's incremental run over the same rows; (5) a tenth as many changes and our incremental sync
again, to show its cost follows the changes; (6) unless `--no-legacy`, the same full sync, changes
and incremental syncs on the same number of employees seeded into the legacy demo table (`personal`,
base_sync.demo.legacy) and read through the demo's mapping (mappings/demo.yaml: renames, trims,
local Europe/Berlin DATETIMEs converted to UTC, a department code value map, a soft-delete flag)
into a second, empty Base B, so the mapping's cost is the ratio of two runs on the same machine
at the same time (`--legacy-first` runs it before the identity sync).
Each sync and each dlt run is its own spawned process, so its peak memory (max RSS) is its own;
each timed step starts after a VACUUM (ANALYZE) and a CHECKPOINT of the PostgreSQL database, so it
does not pay for autovacuum or dirty pages left by the previous one. The load average is sampled
through the run (the machine may be shared).
Writes bench/results/batch_sync.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import MySQLdb
import MySQLdb.cursors
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api_service import migrate  # noqa: E402
from base_sync import metrics, partitioned, sync  # noqa: E402
from base_sync.api_client import BaseBApi  # noqa: E402
from base_sync.demo import generate, legacy  # noqa: E402
from base_sync.mapping import SourceMapping  # noqa: E402
from base_sync.reports import Partition, PartitionReport  # noqa: E402
from base_sync.settings import SyncSettings  # noqa: E402
from base_sync.source import BaseA, source_engine  # noqa: E402
from base_sync.source_schema import create_schema, install_delete_log  # noqa: E402
from base_sync.state import MemoryStateStore  # noqa: E402
from testbed.servers import PG_HOST, PG_PORT, PG_USER, api_server  # noqa: E402

TOKEN = "bench-token"
LEGACY_MAPPING = REPO / "mappings" / "demo.yaml"
COLUMNS = ("first_name", "last_name", "email", "department", "position", "salary", "hired_at")
# dlt's settings for the anchor, as environment variables (its configuration mechanism):
DLT_ENV = {
    # With Airflow installed, dlt reads an Airflow Variable for every configuration key it resolves
    # (and creates ~/airflow/airflow.db when Airflow has no home yet); outside a DAG that only costs
    # time, with no variable to find.
    "PROVIDERS__ENABLE_AIRFLOW_SECRETS": "false",
    # dlt gzips its load files by default: 13 s of CPU for the csv of 1,000,000 rows here.
    "DATA_WRITER__DISABLE_COMPRESSION": "true",
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "RUNTIME__LOG_LEVEL": "ERROR",
}
# connectorx in streaming mode: Arrow record batches of dlt's chunk size (50,000 rows). Faster here
# than one Arrow table for the whole query (4.5 s against 5.4 s for 1,000,000 rows) and half the memory.
DLT_BACKEND_KWARGS = {"return_type": "arrow_stream"}
DLT_MERGE = {"disposition": "merge", "strategy": "upsert"}
DLT_PACKAGES = ("dlt", "connectorx", "pyarrow", "sqlalchemy", "psycopg2-binary")


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


def prepare_legacy_base_a(rows: int) -> str:
    """A MariaDB database with `rows` employees in the legacy demo table `personal` (kept between runs)."""
    name = f"bench_legacy_base_a_{rows}"
    url = f"mysql+mysqldb://root@127.0.0.1:3306/{name}"
    admin = MySQLdb.connect(host="127.0.0.1", user="root")
    admin.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    admin.close()
    engine = source_engine(url)
    legacy.create(engine)
    if legacy.count(engine, "employees") != rows:
        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE personal")
        started = time.perf_counter()
        legacy.seed(engine, "employees", rows, seed_value=1)
        print(f"seeded {rows} legacy employees in {time.perf_counter() - started:.1f} s")
    # The operator's opt-in (`base-a install-delete-log`), as the identity Base A has its trigger: hard
    # deletes then come from the log, so both runs' incremental cost can follow the changes.
    install_delete_log(engine, SourceMapping.from_file(LEGACY_MAPPING), ["employees"])
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


def _sync_child(base_a_url: str, api_url: str, state: dict, settings: dict, mapping_file: str | None, out) -> None:
    """One DAG run's steps for employees, timed; runs in its own process. `mapping_file`: read Base A
    through that mapping (the legacy run), else the identity mapping."""
    mapping = SourceMapping.from_file(mapping_file) if mapping_file else SourceMapping()
    base_a, api = BaseA(source_engine(base_a_url), mapping), BaseBApi(api_url, TOKEN)
    store, config = MemoryStateStore(), SyncSettings(**settings)
    store.saved = state
    timings, partition_peaks, partition_cpu = {}, [], 0.0
    # Started before the clock, as a Celery worker's pool is before a run: neither the one-piece run
    # nor a partition pays for a process start (about 2 CPU-s of imports each on this machine).
    workers = PartitionWorkers(settings["partitions"], base_a_url, api_url, settings) if config.partitions > 1 else None
    started, cpu_started = time.perf_counter(), time.process_time()
    plan = partitioned.plan("employees", base_a, store, config)
    if plan:  # --partitions: each key range in its own process at once, as Celery workers run them
        reports = workers.run(plan)
        partition_peaks = [r["peak_rss_mb"] for r in reports]
        partition_cpu = sum(r["cpu_s"] for r in reports)
        report, verified = partitioned.combine(
            partitioned.left_to_partitions("employees", store),
            [PartitionReport.from_json(r["report"]) for r in reports],
        )
    else:
        report = sync.load("employees", base_a, api, store, config)
    if workers:
        workers.close()
    timings["load"] = time.perf_counter() - started  # with each partition's own verification
    mark = time.perf_counter()
    deletes = sync.propagate_deletes("employees", base_a, api, store, config)
    timings["deletes"] = time.perf_counter() - mark
    mark = time.perf_counter()
    if not plan:
        verified = sync.verify("employees", base_a, api, report, config)
    timings["verify"] = time.perf_counter() - mark
    sync.commit("employees", store, report, {"deletes": deletes.to_json()})
    timings["total"] = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    out.send(
        {
            "timings": timings,
            "counts": dict(report.counts),
            "verify": verified.to_json(),
            "deletes": deletes,
            "peak_rss_mb": max([peak_mb, *partition_peaks]),
            "sync_cpu_s": time.process_time() - cpu_started + partition_cpu,
            "partitions": len(plan),
            "state": store.saved,
        }
    )


def _partition_worker(base_a_url: str, api_url: str, settings: dict, conn) -> None:
    """A warm process for one mapped `load_partition` task: says it is ready, then streams, pushes and
    verifies the key range it is sent, and answers with its report, peak memory and CPU time."""
    base_a, api = BaseA(source_engine(base_a_url)), BaseBApi(api_url, TOKEN)
    conn.send("ready")
    partition = conn.recv()
    cpu_started = time.process_time()
    report = partitioned.load_partition(Partition.from_json(partition), base_a, api, SyncSettings(**settings))
    conn.send(
        {
            "report": report.to_json(),
            "peak_rss_mb": peak_rss_mb(),
            "cpu_s": time.process_time() - cpu_started,
        }
    )


class PartitionWorkers:
    """One spawned process per partition, started and ready (imports done) before the timed run."""

    def __init__(self, count: int, base_a_url: str, api_url: str, settings: dict) -> None:
        context = multiprocessing.get_context("spawn")  # spawn: each peak RSS is the process's own
        self.pipes, self.processes = [], []
        for _ in range(count):
            here, there = context.Pipe()
            process = context.Process(target=_partition_worker, args=(base_a_url, api_url, settings, there))
            process.start()
            self.pipes.append(here)
            self.processes.append(process)
        for pipe in self.pipes:
            if pipe.recv() != "ready":
                raise RuntimeError("a partition worker did not start")

    def run(self, plan: list[Partition]) -> list[dict]:
        """Every partition at once, one per worker; their answers in plan order."""
        if len(plan) > len(self.pipes):
            raise RuntimeError(f"{len(plan)} partitions planned, {len(self.pipes)} workers started")
        for pipe, partition in zip(self.pipes, plan, strict=False):
            pipe.send(partition.to_json())
        return [pipe.recv() for pipe in self.pipes[: len(plan)]]

    def close(self) -> None:
        for process in self.processes:
            process.kill()  # an idle worker (the plan made fewer ranges) waits for a job forever
            process.join()


def peak_rss_mb() -> float:
    """This process's own peak RSS (`metrics.peak_rss_bytes`: VmHWM; ru_maxrss where /proc has none)."""
    peak = metrics.peak_rss_bytes()
    return peak / 2**20 if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_sync(base_a_url: str, api_url: str, state: dict, settings: dict, mapping_file: str | None = None) -> dict:
    return run_child(_sync_child, base_a_url, api_url, state, settings, mapping_file)


def run_child(target, *args) -> dict:
    receive, send = multiprocessing.Pipe(duplex=False)
    # spawn, not fork: the child's peak memory must not include pages inherited from this process.
    child = multiprocessing.get_context("spawn").Process(target=target, args=(*args, send))
    child.start()
    try:
        result = receive.recv()
    except EOFError:
        result = None
    child.join()
    if result is None or child.exitcode:
        raise RuntimeError(f"{target.__name__} failed (exit code {child.exitcode})")
    return result


def dlt_versions() -> dict | None:
    """The installed versions of dlt and what its connectorx backend needs; None without dlt or connectorx."""
    versions = {}
    for name in DLT_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions if versions["dlt"] and versions["connectorx"] else None


def _dlt_child(base_a_url: str, pg_url: str, pipelines_dir: str, dataset: str, incremental: bool, out) -> None:
    """One dlt pipeline run, timed from building the source (table reflection included) to the
    end of its load step; runs in its own process. `incremental`: the pipeline with a cursor on
    `updated_at` and merge (upsert) on `id`; otherwise a plain full load that replaces the table."""
    os.environ.update(DLT_ENV)
    import dlt
    from dlt.sources.sql_database import sql_table

    started = time.perf_counter()
    table = sql_table(
        credentials=base_a_url,  # connectorx gets the same URL without the driver: mysql://...
        table="employees",
        backend="connectorx",
        backend_kwargs=DLT_BACKEND_KWARGS,
        reflection_level="full_with_precision",  # varchar lengths and numeric(12,2) as in Base A
        incremental=dlt.sources.incremental("updated_at") if incremental else None,
    )
    if incremental:
        table.apply_hints(write_disposition=DLT_MERGE, primary_key="id")
    else:
        table.apply_hints(write_disposition="replace")
    pipeline = dlt.pipeline(
        pipeline_name=dataset,
        destination=dlt.destinations.postgres(credentials=pg_url),
        dataset_name=dataset,
        pipelines_dir=pipelines_dir,
    )
    pipeline.run(table, loader_file_format="csv")
    seconds = time.perf_counter() - started
    trace = pipeline.last_trace
    out.send(
        {
            "seconds": seconds,
            "rows": trace.last_normalize_info.row_counts.get("employees", 0),
            "steps": {s.step: (s.finished_at - s.started_at).total_seconds() for s in trace.steps if s.step != "run"},
            "peak_rss_mb": peak_rss_mb(),
        }
    )


def run_dlt(base_a_url: str, pg_url: str, pipelines_dir: str, dataset: str, incremental: bool) -> dict:
    result = run_child(_dlt_child, base_a_url, pg_url, pipelines_dir, dataset, incremental)
    result["rows_per_s"] = result["rows"] / result["seconds"]
    return result


def churn(engine, changes: int) -> dict:
    """`changes` changed rows: 1% inserted, 1% deleted, the rest updated."""
    one_percent = changes // 100
    return generate.churn(
        engine, "employees", updates=changes - 2 * one_percent, inserts=one_percent, deletes=one_percent, seed_value=2
    )


def legacy_churn(engine, changes: int) -> dict:
    """The same split on the legacy table: 1% inserted, 1% deleted (half of them soft: aktiv = 0)."""
    one_percent = changes // 100
    return legacy.churn(
        engine,
        "employees",
        updates=changes - 2 * one_percent,
        inserts=one_percent,
        deletes=one_percent // 2,
        soft_deletes=one_percent - one_percent // 2,
        seed_value=2,
    )


def compare_legacy(base_a_url: str, pg_dsn: str) -> dict:
    """Untimed check of the legacy run: live rows and salary sum of `personal` against Base B's live synced rows."""
    return compare_synced(base_a_url, pg_dsn, "SELECT count(*), sum(gehalt) FROM personal WHERE aktiv <> 0")


def compare_synced(
    base_a_url: str, pg_dsn: str, source_query: str = "SELECT count(*), sum(salary) FROM employees"
) -> dict:
    """Untimed check of a sync: Base A's rows and salary sum (`source_query`) against Base B's live synced rows."""
    engine = source_engine(base_a_url)
    with engine.connect() as conn:
        source = conn.exec_driver_sql(source_query).one()
    engine.dispose()
    with psycopg.connect(pg_dsn) as pg:
        target = pg.execute(
            "SELECT count(*), sum(salary) FROM employees WHERE source_id IS NOT NULL AND deleted_at IS NULL"
        ).fetchone()
    names = ("rows", "salary_sum")
    return {
        "base_a": dict(zip(names, map(str, source), strict=True)),
        "synced": dict(zip(names, map(str, target), strict=True)),
        "equal": source[0] == target[0] and Decimal(source[1]) == Decimal(target[1]),
    }


def compare_with_base_a(maria_db: str, pg_dsn: str, table: str) -> dict:
    """Untimed check of a loaded table against Base A: row and key counts, salary sum, newest cursor."""
    query = "SELECT count(*), count(DISTINCT id), sum(salary), max(updated_at) FROM {}"
    maria = MySQLdb.connect(host="127.0.0.1", user="root", db=maria_db, init_command="SET time_zone='+00:00'")
    cursor = maria.cursor()
    cursor.execute(query.format("employees"))
    source = cursor.fetchone()
    maria.close()
    with psycopg.connect(pg_dsn) as pg:
        target = pg.execute(query.format(table)).fetchone()
    names = ("rows", "keys", "salary_sum", "max_updated_at")
    return {
        "base_a": dict(zip(names, map(str, source), strict=True)),
        "loaded": dict(zip(names, map(str, target), strict=True)),
        "equal": source[:2] == target[:2] and Decimal(source[2]) == Decimal(target[2]) and source[3] == target[3],
    }


def settle(pg_dsn: str) -> None:
    """Vacuum and analyze what the previous steps loaded, then flush PostgreSQL's dirty pages, so the
    next timed step pays for neither autovacuum's nor a checkpoint's share of the previous one's work."""
    with psycopg.connect(pg_dsn, autocommit=True) as pg:
        pg.execute("VACUUM (ANALYZE)")
        pg.execute("CHECKPOINT")


class LoadAverage:
    """Samples the 1-minute load average every few seconds while the benchmark runs."""

    def __init__(self, every: float = 5.0) -> None:
        self.samples: list[float] = []
        self.marks: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def mark(self, name: str) -> None:
        self.marks[name] = [round(x, 2) for x in os.getloadavg()]

    def __enter__(self) -> LoadAverage:
        self.mark("start")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.mark("end")

    def summary(self) -> dict:
        samples = self.samples or [self.marks["start"][0]]
        return {
            "cores": os.cpu_count(),
            "one_minute_min": round(min(samples), 2),
            "one_minute_mean": round(sum(samples) / len(samples), 2),
            "one_minute_max": round(max(samples), 2),
            "samples": len(self.samples),
            "at": self.marks,  # [1, 5, 15 minutes] when each step started
        }


def measure_legacy(legacy_url: str, pg_name: str, args, settings: dict, load: LoadAverage, tmp: str) -> dict:
    """The legacy run: full sync through the demo mapping into an empty Base B, the changes, then
    the incremental syncs, as the identity run does them."""
    pg_dsn = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={pg_name}"
    database_url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_name}"
    mapping = str(LEGACY_MAPPING)
    migrate.upgrade(database_url)
    with api_server(database_url, TOKEN, Path(tmp) / "api-legacy.log", workers=args.workers) as api_url:
        load.mark("legacy_full_sync")
        settle(pg_dsn)
        full = run_sync(legacy_url, api_url, {}, settings, mapping)
        print(f"legacy full sync: {full['timings']}, peak {full['peak_rss_mb']:.0f} MB")
        engine = source_engine(legacy_url)
        legacy_churn(engine, args.changes)
        load.mark("legacy_incremental_sync")
        settle(pg_dsn)
        incremental = run_sync(legacy_url, api_url, full["state"], settings, mapping)
        print(f"legacy incremental: {incremental['timings']}")
        legacy_churn(engine, args.changes // 10)
        load.mark("legacy_small_incremental_sync")
        settle(pg_dsn)
        incremental["tenth"] = run_sync(legacy_url, api_url, incremental["state"], settings, mapping)
        print(f"legacy incremental, a tenth of the changes: {incremental['tenth']['timings']}")
        engine.dispose()
    return {"full": full, "incremental": incremental, "check": compare_legacy(legacy_url, pg_dsn)}


def measure(
    base_a_url: str,
    pg_name: str,
    args,
    settings: dict,
    versions: dict | None,
    load: LoadAverage,
    legacy_run=None,
):
    """Every timed step, in order, on the same Base A data and the same PostgreSQL database;
    `legacy_run(tmp)` (the legacy run, in its own database) first or last, as asked."""
    maria_db = base_a_url.rsplit("/", 1)[1]
    pg_dsn = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={pg_name}"
    database_url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_name}"
    # dlt's postgres credentials require a password; the test server trusts loopback and ignores it.
    dlt_url = f"postgresql://{PG_USER}:unused@{PG_HOST}:{PG_PORT}/{pg_name}"
    dlt_runs, checks, legacy_result = {}, {}, None
    with tempfile.TemporaryDirectory() as tmp:
        if legacy_run and args.legacy_first:
            legacy_result = legacy_run(tmp)
        pipes = str(Path(tmp) / "dlt")
        load.mark("anchor")
        settle(pg_dsn)
        anchor = anchor_copy_and_merge(maria_db, pg_dsn)
        print(f"anchor: {args.rows / anchor:,.0f} rows/s ({anchor:.1f} s)")
        if versions:
            for name, dataset, merge in (("full", "dlt_full", False), ("merge_first_run", "dlt_merge", True)):
                load.mark(f"dlt_{name}")
                settle(pg_dsn)
                dlt_runs[name] = run_dlt(base_a_url, dlt_url, pipes, dataset, merge)
                print(f"dlt {name}: {dlt_runs[name]['rows_per_s']:,.0f} rows/s, {dlt_runs[name]}")
            checks["full"] = compare_with_base_a(maria_db, pg_dsn, "dlt_full.employees")
        migrate.upgrade(database_url)
        with api_server(database_url, TOKEN, Path(tmp) / "api.log", workers=args.workers) as api_url:
            load.mark("full_sync")
            settle(pg_dsn)
            full = run_sync(base_a_url, api_url, {}, settings)
            print(f"full sync: {full['timings']}, peak {full['peak_rss_mb']:.0f} MB")
            engine = source_engine(base_a_url)
            churn(engine, args.changes)
            load.mark("incremental_sync")
            settle(pg_dsn)
            incremental = run_sync(base_a_url, api_url, full["state"], settings)
            print(f"incremental: {incremental['timings']}, peak {incremental['peak_rss_mb']:.0f} MB")
            if versions:  # over the same changes
                load.mark("dlt_incremental")
                settle(pg_dsn)
                dlt_runs["incremental"] = run_dlt(base_a_url, dlt_url, pipes, "dlt_merge", True)
                print(f"dlt incremental: {dlt_runs['incremental']}")
                checks["incremental"] = compare_with_base_a(maria_db, pg_dsn, "dlt_merge.employees")
            churn(engine, args.changes // 10)
            load.mark("small_incremental_sync")
            settle(pg_dsn)
            incremental["tenth"] = run_sync(base_a_url, api_url, incremental["state"], settings)
            print(f"incremental, a tenth of the changes: {incremental['tenth']['timings']}")
            engine.dispose()
        if legacy_run and not args.legacy_first:
            legacy_result = legacy_run(tmp)
    return anchor, full, incremental, dlt_runs, checks, legacy_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--partitions", type=int, default=1, help="key ranges of the full sync, each in its own process at once"
    )
    parser.add_argument("--no-dlt", action="store_true", help="leave out the dlt anchor")
    parser.add_argument("--no-legacy", action="store_true", help="leave out the legacy-shaped run (the mapping)")
    parser.add_argument("--legacy-first", action="store_true", help="run the legacy sync before the identity one")
    args = parser.parse_args()
    # partition_min_rows 0: --partitions alone decides whether the full sync is split.
    settings = {
        "push_concurrency": args.concurrency,
        "lookback_seconds": 0,
        "partitions": args.partitions,
        "partition_min_rows": 0,
    }
    versions = None if args.no_dlt else dlt_versions()
    if versions is None and not args.no_dlt:
        print("dlt anchor left out: dlt or connectorx is not installed (uv pip install -e '.[bench]')")

    base_a_url = prepare_base_a(args.rows)
    legacy_url = None if args.no_legacy else prepare_legacy_base_a(args.rows)
    run_id = uuid.uuid4().hex[:8]
    pg_name, legacy_pg = f"bench_base_b_{run_id}", f"bench_legacy_base_b_{run_id}"
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in (pg_name, *([legacy_pg] if legacy_url else [])):
            conn.execute(f'CREATE DATABASE "{name}"')
    with LoadAverage() as load:
        legacy_run = (
            (lambda tmp: measure_legacy(legacy_url, legacy_pg, args, settings, load, tmp)) if legacy_url else None
        )
        try:
            anchor, full, incremental, dlt_runs, checks, legacy_result = measure(
                base_a_url, pg_name, args, settings, versions, load, legacy_run
            )
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                for name in (pg_name, legacy_pg):
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    full_rate = args.rows / full["timings"]["total"]
    load_rate = args.rows / full["timings"]["load"]
    anchor_rate = args.rows / anchor
    results = {
        "machine": {"cpus": multiprocessing.cpu_count(), "python": platform.python_version()},
        "rows": args.rows,
        "settings": settings,
        "api_workers": args.workers,
        "load_average": load.summary(),
        "anchor_copy_and_merge": {"seconds": anchor, "rows_per_s": anchor_rate},
        "full_sync": {
            **full,
            "rows_per_s": full_rate,
            "load_rows_per_s": load_rate,
            "ratio_to_anchor": full_rate / anchor_rate,
        },
        "incremental_sync": {**incremental, "changes": args.changes},
        "legacy": legacy_results(legacy_result, full, incremental, args) if legacy_result else {"skipped": True},
        "dlt": dlt_results(dlt_runs, checks, versions, full, incremental, args)
        if versions
        else {"skipped": "--no-dlt" if args.no_dlt else "dlt or connectorx is not installed (the bench extra)"},
    }
    parts = [results["full_sync"], results["incremental_sync"], results["incremental_sync"]["tenth"]]
    if legacy_result:
        parts += [legacy_result["full"], legacy_result["incremental"], legacy_result["incremental"]["tenth"]]
    for part in parts:
        part.pop("state", None)
    out = REPO / "bench" / "results" / "batch_sync.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(markdown(results, args))


def legacy_results(legacy_run: dict, full: dict, incremental: dict, args) -> dict:
    """The legacy run's figures and its ratios to the identity run of the same bench."""
    rows, l_full, l_inc = args.rows, legacy_run["full"], legacy_run["incremental"]
    rate, identity_rate = rows / l_full["timings"]["total"], rows / full["timings"]["total"]
    load_rate, identity_load_rate = rows / l_full["timings"]["load"], rows / full["timings"]["load"]
    return {
        "mapping": str(LEGACY_MAPPING.relative_to(REPO)),
        "table": "personal",
        "full_sync": {**l_full, "rows_per_s": rate, "load_rows_per_s": load_rate},
        "incremental_sync": {**l_inc, "changes": args.changes},
        # legacy rows/s ÷ identity rows/s: 0.90 is the goal's floor (within 10%).
        "ratio_full": rate / identity_rate,
        "ratio_load": load_rate / identity_load_rate,
        # seconds over seconds: above 1 means the legacy run is slower.
        "incremental_seconds_ratio": l_inc["timings"]["total"] / incremental["timings"]["total"],
        "check": legacy_run["check"],
        "order": "legacy first" if args.legacy_first else "identity first",
    }


def dlt_results(runs: dict, checks: dict, versions: dict, full: dict, incremental: dict, args) -> dict:
    """The dlt anchor's figures, its ratios to our sync, and what differs between the two."""
    rows = args.rows
    full_rate, load_rate = rows / full["timings"]["total"], rows / full["timings"]["load"]
    dlt_full, dlt_first, dlt_inc = runs["full"], runs["merge_first_run"], runs["incremental"]
    return {
        "versions": versions,
        "backend": "connectorx",
        "backend_kwargs": DLT_BACKEND_KWARGS,
        "loader_file_format": "csv",
        "full_write_disposition": "replace",
        "incremental_write_disposition": DLT_MERGE,
        "primary_key": "id",
        "cursor": "updated_at",
        "environment": DLT_ENV,
        "full": dlt_full,
        "merge_first_run": dlt_first,
        "incremental": dlt_inc,
        "full_seconds": dlt_full["seconds"],
        "full_rows_per_s": dlt_full["rows_per_s"],
        "incremental_seconds": dlt_inc["seconds"],
        # our rows/s ÷ dlt's rows/s: above 1 means ours is faster ...
        "ratio_full_to_dlt": full_rate / dlt_full["rows_per_s"],
        "ratio_load_to_dlt": load_rate / dlt_full["rows_per_s"],
        "ratio_full_to_dlt_merge_first_run": full_rate / dlt_first["rows_per_s"],
        # ... and here, seconds over seconds: above 1 means ours is slower.
        "incremental_seconds_ratio": incremental["timings"]["total"] / dlt_inc["seconds"],
        "incremental_load_seconds_ratio": incremental["timings"]["load"] / dlt_inc["seconds"],
        "checks": checks,
        "differences": [
            "dlt's tables have no index at all: no primary key, no unique email (Base B and the COPY anchor have a "
            "primary key, a unique source_id and a unique email index); its upsert is a MERGE on id without an index",
            "dlt does no verification (counts, checksum), no hard-delete detection, no version guard (an older row "
            "overwrites a newer one), no validation or quarantine, and keeps no source_updated_at/deleted_at",
            "no HTTP: dlt writes PostgreSQL directly (COPY of csv files); our sync goes through the API",
            "dlt's timestamps land as timestamp without time zone (UTC, as MariaDB serves them: its time_zone is "
            "SYSTEM = UTC here); Base B has timestamptz",
            "dlt's full figure is a plain load that replaces the table; merge_first_run is the first run of the "
            "incremental pipeline (merge, upsert) into an empty schema, and the incremental run continues it",
            "each dlt run is timed from building the source (table reflection included) to the end of its load "
            "step, in a fresh process, imports excluded; ours from the load step to the watermark commit",
        ],
        "changes": args.changes,
    }


def markdown(results: dict, args) -> str:
    full, incremental, dlt = results["full_sync"], results["incremental_sync"], results["dlt"]
    anchor_rate, anchor = results["anchor_copy_and_merge"]["rows_per_s"], results["anchor_copy_and_merge"]["seconds"]
    t_full, t_inc = full["timings"], incremental["timings"]
    full_rate, load_rate = full["rows_per_s"], full["load_rows_per_s"]
    lines = [
        "| measure | value |",
        "| --- | --- |",
        f"| anchor: direct COPY-and-merge, 1 process | {anchor_rate:,.0f} rows/s ({anchor:.1f} s) |",
    ]
    if "full" in dlt:
        first, inc = dlt["merge_first_run"], dlt["incremental"]
        lines += [
            f"| anchor: dlt sql_table (connectorx, csv), full load (replace) | {dlt['full_rows_per_s']:,.0f} rows/s "
            f"({dlt['full_seconds']:.1f} s) |",
            f"| dlt: first run of the incremental pipeline (merge, upsert) | {first['rows_per_s']:,.0f} rows/s "
            f"({first['seconds']:.1f} s) |",
        ]
    lines += [
        f"| full sync, all steps | {full_rate:,.0f} rows/s ({t_full['total']:.1f} s) = {full_rate / anchor_rate:.2f} "
        f"× COPY anchor{_versus_dlt(dlt, 'ratio_full_to_dlt')} |",
        f"| full sync, load step | {load_rate:,.0f} rows/s ({t_full['load']:.1f} s) = {load_rate / anchor_rate:.2f} "
        f"× COPY anchor{_versus_dlt(dlt, 'ratio_load_to_dlt')} |",
        f"| full sync: deletes / verify | {t_full['deletes']:.2f} s / {t_full['verify']:.2f} s |",
        f"| incremental ({args.changes:,} changed of {args.rows:,}): total | {t_inc['total']:.2f} s |",
        f"| incremental: load / deletes / verify | {t_inc['load']:.2f} s / {t_inc['deletes']:.2f} s / "
        f"{t_inc['verify']:.2f} s |",
        f"| incremental, {args.changes // 10:,} changed: total | {incremental['tenth']['timings']['total']:.2f} s |",
    ]
    if "full" in dlt:
        steps = inc["steps"]
        lines.append(
            f"| dlt incremental (merge, upsert): total (extract / normalize / load) | {inc['seconds']:.2f} s "
            f"({steps['extract']:.2f} / {steps['normalize']:.2f} / {steps['load']:.2f} s) |"
        )
    lines.append(
        f"| peak RSS of the sync: full / incremental | {full['peak_rss_mb']:.0f} MB / "
        f"{incremental['peak_rss_mb']:.0f} MB |"
    )
    if "full" in dlt:
        lines.append(
            f"| peak RSS of dlt: full / incremental | {dlt['full']['peak_rss_mb']:.0f} MB / "
            f"{dlt['incremental']['peak_rss_mb']:.0f} MB |"
        )
    if "ratio_full" in results["legacy"]:
        leg = results["legacy"]
        l_full, l_inc = leg["full_sync"]["timings"], leg["incremental_sync"]["timings"]
        l_tenth = leg["incremental_sync"]["tenth"]["timings"]
        lines += [
            f"| legacy shape through the mapping: full sync, all steps | {leg['full_sync']['rows_per_s']:,.0f} rows/s "
            f"({l_full['total']:.1f} s) = {leg['ratio_full']:.2f} × identity |",
            f"| legacy: full sync, load step | {leg['full_sync']['load_rows_per_s']:,.0f} rows/s "
            f"({l_full['load']:.1f} s) = {leg['ratio_load']:.2f} × identity |",
            f"| legacy: full sync deletes / verify | {l_full['deletes']:.2f} s / {l_full['verify']:.2f} s |",
            f"| legacy incremental ({args.changes:,} changed): total (load / deletes / verify) | "
            f"{l_inc['total']:.2f} s ({l_inc['load']:.2f} / {l_inc['deletes']:.2f} / {l_inc['verify']:.2f} s) |",
            f"| legacy incremental, {args.changes // 10:,} changed: total (load / deletes / verify) | "
            f"{l_tenth['total']:.2f} s ({l_tenth['load']:.2f} / {l_tenth['deletes']:.2f} / "
            f"{l_tenth['verify']:.2f} s) |",
            f"| legacy check: live rows and salary sum equal in Base B | {leg['check']['equal']} |",
        ]
    load = results["load_average"]
    lines.append(
        f"| load average (1 min) during the run, {load['cores']} cores | {load['one_minute_min']:.2f}–"
        f"{load['one_minute_max']:.2f} (mean {load['one_minute_mean']:.2f}) |"
    )
    return "\n" + "\n".join(lines) + "\n"


def _versus_dlt(dlt: dict, key: str) -> str:
    return f", {dlt[key]:.2f} × dlt" if key in dlt else ""


if __name__ == "__main__":
    main()

"""`make bench`: every benchmark, one after the other, then one summary table with the machine.

    .venv/bin/python bench/all.py [--only bulk,batch,...] [--summary-only]

Each benchmark is its own script and writes its own bench/results/<name>.json (see its docstring);
this runs them in turn (alone: they measure the machine) and renders the headline figures into
bench/results/summary.json and the summary block at the top of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DOC = REPO / "docs" / "benchmarks.md"
BENCHMARKS = {  # name: (script, its results file)
    "bulk": ("bulk_upsert.py", "bulk_upsert.json"),
    "batch": ("batch_sync.py", "batch_sync.json"),
    "first_load": ("first_load.py", "first_load.json"),
    "events": ("events.py", "events.json"),
    "graphql": ("graphql_overhead.py", "graphql_overhead.json"),
    "load": ("load.py", "load.json"),
    "footprint": ("footprint.py", "footprint.json"),
}
START, END = "<!-- summary:start (bench/all.py writes this block) -->", "<!-- summary:end -->"


def machine() -> dict:
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    memory = re.search(r"MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text())
    return {
        "cpu": cpu[1] if cpu else platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(int(memory[1]) / 2**20, 1) if memory else None,
        "system": platform.platform(),
        "python": platform.python_version(),
        "postgresql": _version(["psql", "--version"]),
        "mariadb": _version(["mariadb", "--version"]),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _version(command: list[str]) -> str | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run(names: list[str]) -> dict[str, dict]:
    ran = {}
    for name in names:
        script, _ = BENCHMARKS[name]
        print(f"\n=== {name}: bench/{script}", flush=True)
        started = time.monotonic()
        code = subprocess.run([sys.executable, str(REPO / "bench" / script)], cwd=REPO, check=False).returncode
        ran[name] = {"exit_code": code, "seconds": round(time.monotonic() - started)}
    return ran


def rows(results: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(what, figure, against what) for the headline of each benchmark that has results."""
    out = []
    if bulk := results.get("bulk"):
        by_run = {r["run"]: r for r in bulk["results"]}
        anchor = next((r for name, r in by_run.items() if name.startswith("anchor")), None)
        for name in ("insert, 1 stream", "insert, 4 streams"):
            if name in by_run:
                ratio = (
                    f"{by_run[name]['rows_per_second'] / anchor['rows_per_second']:.2f}x direct COPY" if anchor else ""
                )
                out.append((f"bulk API, {name.split(', ')[1]}", f"{by_run[name]['rows_per_second']:,} rows/s", ratio))
    if batch := results.get("batch"):
        full, incremental = batch["full_sync"], batch["incremental_sync"]
        out.append(
            (
                "batch full sync (1M employees)",
                f"{full['rows_per_s']:,.0f} rows/s",
                f"{full['ratio_to_anchor']:.2f}x direct COPY-and-merge" + _dlt(batch, "full"),
            )
        )
        out.append(
            (
                "batch incremental (10k of 1M)",
                f"{incremental['timings']['total']:.2f} s",
                f"load {incremental['timings']['load']:.2f} s, deletes {incremental['timings']['deletes']:.2f} s"
                + (f"; 1k changed: {tenth['timings']['total']:.2f} s" if (tenth := incremental.get("tenth")) else "")
                + _dlt(batch, "incremental"),
            )
        )
        out.append(("batch sync peak memory", f"{full['peak_rss_mb']:.0f} MB RSS", "goal < 300 MB"))
    if first := results.get("first_load"):
        by_partitions: dict[int, list[float]] = {}
        for load in first["loads"]:
            by_partitions.setdefault(load["partitions"], []).append(load["seconds"])
        curve = ", ".join(f"{p}: {min(s):.1f} s" for p, s in sorted(by_partitions.items()))
        one = min(by_partitions.get(1, [0])) or None
        rate = f"{first['rows'] / one:,.0f} rows/s" if one else "-"
        against = [f"bulk API 4 streams {first['bulk_api']['rows_per_s']:,.0f} rows/s"]
        if first.get("dlt"):
            against.append(f"dlt {first['dlt']['rows_per_s']:,.0f} rows/s")
        out.append((f"first load, 1 piece ({first['rows']:,} rows)", rate, "; ".join(against)))
        out.append(("first load by partitions (best of rounds)", curve, "goal: 4 no slower than 1"))
    if events := results.get("events"):
        latency = events["latency"]
        out.append(
            (
                "event latency commit → visible",
                f"p50 {latency['p50_s']} s, p95 {latency['p95_s']} s, p99 {latency['p99_s']} s",
                f"{latency['changes']} changes",
            )
        )
        out.append(("event backlog drain", f"{events['drain']['events_per_s']:,} events/s", ""))
        out.append(("relay decode and publish", f"{events['relay']['relay_events_per_s']:,} events/s", ""))
    if graphql := results.get("graphql"):
        ratio = graphql["graphql_over_rest_p50"]
        out.append(
            (
                "GraphQL p50 ÷ REST p50",
                f"single {ratio['single item']}x, page {ratio['100-item page']}x",
                "goal ≤ 1.5x single",
            )
        )
    if load := results.get("load"):
        for r in load["results"]:
            out.append(
                (
                    f"load: {r['case']}",
                    f"{r['requests_per_s']:,} req/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms",
                    f"{r['non_2xx']} non-2xx, {r['errors']} errors, server {r['server_peak_pss_mb']} MB PSS",
                )
            )
    if footprint := results.get("footprint"):
        out.append(
            (
                "Airflow idle (4 processes)",
                f"{footprint['airflow_idle_pss_mb']} MB PSS",
                f"whole embedded platform {footprint['total_pss_mb']} MB",
            )
        )
    return out


def _dlt(batch: dict, which: str) -> str:
    dlt = batch.get("dlt") or {}
    if which == "full" and "ratio_full_to_dlt" in dlt:
        return f"; {dlt['ratio_full_to_dlt']:.2f}x dlt"
    if which == "incremental" and "incremental_seconds" in dlt:
        return f"; dlt {dlt['incremental_seconds']:.2f} s"
    return ""


def render(summary: dict) -> str:
    m = summary["machine"]
    if set(summary["ran"]) == set(BENCHMARKS):
        when = f"All measured in one `make bench` run on {summary['date']}"
    else:
        when = (
            f"Rendered on {summary['date']} from the latest results of each benchmark, not one run "
            f"(this time ran: {', '.join(summary['ran']) or 'none'}; each section below gives its conditions)"
        )
    lines = [
        START,
        f"{when}, on {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB, {m['system']}, Python {m['python']}; "
        f"load average at start {m['load_average_at_start']}.",
        "",
        "| what | figure | against |",
        "| --- | --- | --- |",
        *(f"| {what} | {figure} | {against} |" for what, figure, against in summary["rows"]),
        END,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS))
    parser.add_argument("--summary-only", action="store_true", help="render the summary from the last results")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    described = machine()
    ran = {} if args.summary_only else run(names)
    results = {
        name: json.loads((RESULTS / file).read_text())
        for name, (_, file) in BENCHMARKS.items()
        if (RESULTS / file).exists()
    }
    summary = {"date": time.strftime("%Y-%m-%d"), "machine": described, "ran": ran, "rows": rows(results)}
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = DOC.read_text()
    block = render(summary)
    if START in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{block}\n{rest}"
    DOC.write_text(text)
    print("\n" + block)
    failed = [name for name, r in ran.items() if r["exit_code"]]
    if failed:
        sys.exit(f"benchmarks that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()

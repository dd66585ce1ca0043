"""The REST API and GraphQL under a load generator: a fixed number of requests at fixed concurrency.

    .venv/bin/python bench/load.py [--requests 20000] [--connections 16]

Starts the REST API and the GraphQL service under gunicorn (2 workers each, as deployed) over a
fresh PostgreSQL database with 1,000 articles, then drives `GET /articles/{id}` and
`getArticle(id)` with hey (Debian's `hey`), a fixed number of requests over a fixed number of
connections. Records requests/s, latency percentiles, non-2xx answers and errors, and the peak memory
(PSS, master and workers) of each server during its run. Writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api_service import migrate  # noqa: E402
from testbed.servers import api_server, graphql_server, recreate_postgres_database  # noqa: E402

TOKEN = "bench-token"


def run_hey(url: str, requests_total: int, connections: int, body: str | None = None) -> dict:
    """`hey` (Debian's package): exactly `requests_total` requests over `connections` connections."""
    if requests_total % connections:
        raise ValueError("hey sends requests_total // connections per connection: make it a multiple")
    hey = shutil.which("hey")
    if hey is None:
        raise RuntimeError("hey is missing: apt-get install hey (`make bench` installs it when root)")
    command = [hey, "-n", str(requests_total), "-c", str(connections), "-t", "10"]
    if body is not None:
        command += ["-m", "POST", "-T", "application/json", "-d", body]
    output = subprocess.run(command + [url], capture_output=True, text=True, timeout=900, check=True).stdout
    statuses = {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)}
    error_lines = output.partition("Error distribution:")[2]  # e.g. "[3]\tGet ...: connection refused"
    errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", error_lines, re.MULTILINE))
    latency = {int(q): float(s) * 1000 for q, s in re.findall(r"(\d+)% in ([\d.]+) secs", output)}
    return {
        "requests": sum(statuses.values()),
        "requests_per_s": round(float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])),
        "non_2xx": sum(n for code, n in statuses.items() if not 200 <= code < 300),
        "errors": errors,
        "p50_ms": round(latency[50], 2),
        "p90_ms": round(latency[90], 2),
        "p99_ms": round(latency[99], 2),
        "max_ms": round(float(re.search(r"Slowest:\s+([\d.]+)", output)[1]) * 1000, 2),
    }


class PeakMemory:
    """Peak PSS (MB) of a server's process tree (gunicorn master and workers), sampled while it runs."""

    def __init__(self, port: int):
        self.root = next(
            p
            for p in psutil.process_iter(["cmdline"])
            if "gunicorn" in " ".join(p.info["cmdline"] or []) and _listens(p, port)
        )
        self.peak_mb, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            total = 0
            for proc in [self.root, *self.root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_full_info().pss
            self.peak_mb = max(self.peak_mb, total / 2**20)


def _listens(proc: psutil.Process, port: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in proc.net_connections())
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="per case, a multiple of --connections")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    url = recreate_postgres_database("baseab_bench_load")
    migrate.upgrade(url)
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    with (
        api_server(url, TOKEN, work / "api.log", workers=2) as rest,
        graphql_server(rest, work / "graphql.log", workers=2) as graphql,
    ):
        records = [
            {"source_id": i, "source_updated_at": "2024-01-01T00:00:00Z", "title": f"Title {i}", "author": "A"}
            for i in range(1, 1001)
        ]
        requests.post(
            f"{rest}/articles/bulk", json=records, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        ).raise_for_status()
        row_id = requests.get(f"{rest}/articles?limit=1", timeout=10).json()["items"][0]["id"]
        query = json.dumps({"query": f'{{ getArticle(id: "{row_id}") {{ id title author createdAt }} }}'})
        cases = {
            "REST GET /articles/{id}": (f"{rest}/articles/{row_id}", None, rest),
            "GraphQL getArticle(id)": (f"{graphql}/graphql", query, graphql),
        }
        results = []
        for name, (target, body, server) in cases.items():
            run_hey(target, 32 * args.connections, args.connections, body=body)  # warm-up
            with PeakMemory(int(server.rsplit(":", 1)[1])) as memory:
                summary = run_hey(target, args.requests, args.connections, body=body)
            results.append({"case": name, **summary, "server_peak_pss_mb": round(memory.peak_mb)})
    report = {
        "benchmark": "REST and GraphQL under hey, fixed requests at fixed concurrency",
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "settings": {"requests": args.requests, "connections": args.connections, "workers": 2},
        "results": results,
    }
    out = REPO / "bench" / "results" / "load.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("| case | requests/s | p50 ms | p90 ms | p99 ms | non-2xx | errors | server PSS MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['case']} | {r['requests_per_s']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | "
            f"{r['non_2xx']} | {r['errors']} | {r['server_peak_pss_mb']} |"
        )


if __name__ == "__main__":
    main()

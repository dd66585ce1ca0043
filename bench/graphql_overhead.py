"""GraphQL overhead over REST: p50/p99 of the same reads, side by side, with the same client.

    .venv/bin/python bench/graphql_overhead.py [--requests 2000] [--compare-with DIR]

Starts the REST API and the GraphQL service under gunicorn (1 worker each) over a fresh
PostgreSQL database with 1,000 articles, then times `GET /articles/{id}` against `getArticle(id)`
and a 100-item `GET /articles?limit=100` against `getArticles(limit: 100)`, interleaved, one
request at a time. Writes bench/results/graphql_overhead.json (graphql_overhead_compared.json
with `--compare-with`).

`--compare-with DIR` also runs the GraphQL service of another version beside this one, against
the same REST API, in the same interleaved loop: DIR holds its `graphql_service` package, e.g.
`mkdir /tmp/base && git archive HEAD graphql_service | tar -x -C /tmp/base`; both are served with
this version's gunicorn settings. On a shared machine only a side-by-side run compares two versions
fairly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api_service import migrate  # noqa: E402
from tests.servers import api_server, free_port, recreate_postgres_database, venv_bin, wait_for_http  # noqa: E402

TOKEN = "bench-token"


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1] * 1000


def start_graphql(package_dir: Path, rest: str, logs: Path, name: str) -> tuple[subprocess.Popen, str]:
    """The GraphQL service found in package_dir under gunicorn (1 worker); its process and /graphql URL."""
    port = free_port()
    env = {
        **os.environ,
        "REST_API_URL": rest,
        "GRAPHQL_BIND": f"127.0.0.1:{port}",
        "GRAPHQL_WORKERS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(logs / f"{name}-metrics"),
    }
    with open(logs / f"{name}.log", "w") as log:
        # gunicorn puts its working directory first on sys.path: package_dir's graphql_service is the one served.
        server = subprocess.Popen(
            [
                venv_bin("gunicorn"),
                "-c",
                str(REPO / "graphql_service" / "gunicorn.conf.py"),
                "--access-logfile",
                "/dev/null",
                "graphql_service.wsgi:app",
            ],
            cwd=package_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_for_http(f"http://127.0.0.1:{port}/ready", server)
    return server, f"http://127.0.0.1:{port}/graphql"


def seed_articles(rest: str) -> int:
    """1,000 articles through the bulk endpoint; the id of the first."""
    records = [
        {
            "source_id": i,
            "source_updated_at": "2024-01-01T00:00:00Z",
            "title": f"Title {i}",
            "content": "x" * 500,
            "author": f"Author {i % 50}",
        }
        for i in range(1, 1001)
    ]
    requests.post(
        f"{rest}/articles/bulk", json=records, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    ).raise_for_status()
    return requests.get(f"{rest}/articles?limit=1", timeout=10).json()["items"][0]["id"]


def build_cases(session: requests.Session, rest: str, row_id: int, graphql: dict[str, str]) -> dict[str, Callable]:
    """Each REST read followed by the same read through each GraphQL service (named by its suffix)."""
    single = {"query": f'{{ getArticle(id: "{row_id}") {{ id title content author createdAt }} }}'}
    page = {"query": "{ getArticles(limit: 100) { id title content author createdAt } }"}
    cases = {"REST GET /articles/{id}": lambda: session.get(f"{rest}/articles/{row_id}", timeout=10)}
    for suffix, url in graphql.items():
        cases[f"GraphQL getArticle(id){suffix}"] = lambda url=url: session.post(url, json=single, timeout=10)
    cases["REST GET /articles?limit=100"] = lambda: session.get(f"{rest}/articles?limit=100", timeout=10)
    for suffix, url in graphql.items():
        cases[f"GraphQL getArticles(limit: 100){suffix}"] = lambda url=url: session.post(url, json=page, timeout=10)
    return cases


def time_interleaved(cases: dict[str, Callable], rounds: int) -> dict[str, list[float]]:
    """Seconds of each call, the cases taking turns, one request at a time."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for call in cases.values():  # warm up connections and caches
        for _ in range(20):
            call().raise_for_status()
    for _ in range(rounds):
        for name, call in cases.items():
            started = time.perf_counter()
            response = call()
            samples[name].append(time.perf_counter() - started)
            if response.status_code != 200 or "errors" in response.text[:20]:
                raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
    return samples


def ratios_of(results: list[dict], suffixes: list[str]) -> dict[str, float]:
    """GraphQL p50 / REST p50 for each read and each GraphQL service."""
    p50 = {row["case"]: row["p50_ms"] for row in results}
    ratios = {}
    for suffix in suffixes:
        single = p50[f"GraphQL getArticle(id){suffix}"] / p50["REST GET /articles/{id}"]
        page = p50[f"GraphQL getArticles(limit: 100){suffix}"] / p50["REST GET /articles?limit=100"]
        ratios[f"single item{suffix}"] = round(single, 2)
        ratios[f"100-item page{suffix}"] = round(page, 2)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--compare-with", metavar="DIR", help="a folder holding another version's graphql_service")
    args = parser.parse_args()
    url = recreate_postgres_database("baseab_bench_graphql")
    migrate.upgrade(url)
    logs = Path(tempfile.mkdtemp(prefix="bench-graphql-"))
    versions = {"": REPO}
    if args.compare_with:
        versions[f" [{args.compare_with}]"] = Path(args.compare_with).resolve()
    with api_server(url, TOKEN, logs / "api.log") as rest:
        row_id = seed_articles(rest)
        servers: list[subprocess.Popen] = []
        try:
            graphql = {}
            for suffix, package_dir in versions.items():
                server, graphql[suffix] = start_graphql(package_dir, rest, logs, f"graphql{len(servers)}")
                servers.append(server)
            load_before = os.getloadavg()[0]
            samples = time_interleaved(build_cases(requests.Session(), rest, row_id, graphql), args.requests)
            load_after = os.getloadavg()[0]
        finally:
            for server in servers:
                server.terminate()
                server.wait(30)
    results = [
        {"case": name, "p50_ms": round(percentile(s, 50), 2), "p99_ms": round(percentile(s, 99), 2)}
        for name, s in samples.items()
    ]
    ratios = ratios_of(results, list(versions))
    report = {
        "benchmark": "GraphQL overhead over REST",
        "requests_per_case": args.requests,
        # Other work on the machine moves every figure: the 1-minute load average around the timed loop.
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "results": results,
        "graphql_over_rest_p50": ratios,
    }
    name = "graphql_overhead_compared.json" if args.compare_with else "graphql_overhead.json"
    out = REPO / "bench" / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("| case | p50 ms | p99 ms |\n| --- | ---: | ---: |")
    for row in results:
        print(f"| {row['case']} | {row['p50_ms']} | {row['p99_ms']} |")
    print("\nGraphQL p50 / REST p50: " + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items()))
    print(f"load average: {load_before:.2f} before, {load_after:.2f} after")


if __name__ == "__main__":
    main()

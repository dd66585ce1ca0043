"""GraphQL overhead over REST: p50/p99 of the same reads, side by side, with the same client.

    .venv/bin/python bench/graphql_overhead.py [--requests 2000]

Starts the REST API and the GraphQL service under gunicorn (1 worker each) over a fresh
PostgreSQL database with 1,000 articles, then times `GET /articles/{id}` against `getArticle(id)`
and a 100-item `GET /articles?limit=100` against `getArticles(limit: 100)`, interleaved, one
request at a time. Writes bench/results/graphql_overhead.json.
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
from pathlib import Path

import psycopg
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api_service import migrate  # noqa: E402
from tests.servers import PG_HOST, PG_PORT, PG_USER, api_server, free_port, venv_bin, wait_for_http  # noqa: E402

TOKEN = "bench-token"


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    database = "baseab_bench_graphql"
    with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
    migrate.upgrade(url)
    logs = Path(tempfile.mkdtemp(prefix="bench-graphql-"))
    with api_server(url, TOKEN, logs / "api.log") as rest:
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
        row_id = requests.get(f"{rest}/articles?limit=1", timeout=10).json()["items"][0]["id"]
        port = free_port()
        env = {
            **os.environ,
            "REST_API_URL": rest,
            "GRAPHQL_BIND": f"127.0.0.1:{port}",
            "GRAPHQL_WORKERS": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(logs / "graphql-metrics"),
        }
        with open(logs / "graphql.log", "w") as log:
            server = subprocess.Popen(
                [
                    venv_bin("gunicorn"),
                    "-c",
                    "graphql_service/gunicorn.conf.py",
                    "--access-logfile",
                    "/dev/null",
                    "graphql_service.wsgi:app",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            graphql = f"http://127.0.0.1:{port}/graphql"
            try:
                wait_for_http(f"http://127.0.0.1:{port}/ready", server)
                session = requests.Session()
                cases = {
                    "REST GET /articles/{id}": lambda: session.get(f"{rest}/articles/{row_id}", timeout=10),
                    "GraphQL getArticle(id)": lambda: session.post(
                        graphql,
                        timeout=10,
                        json={"query": f'{{ getArticle(id: "{row_id}") {{ id title content author createdAt }} }}'},
                    ),
                    "REST GET /articles?limit=100": lambda: session.get(f"{rest}/articles?limit=100", timeout=10),
                    "GraphQL getArticles(limit: 100)": lambda: session.post(
                        graphql,
                        timeout=10,
                        json={
                            "query": "{ getArticles(limit: 100) { items { id title content author createdAt } "
                            "nextAfter } }"
                        },
                    ),
                }
                samples: dict[str, list[float]] = {name: [] for name in cases}
                for call in cases.values():  # warm up connections and caches
                    for _ in range(20):
                        call().raise_for_status()
                for _ in range(args.requests):
                    for name, call in cases.items():
                        started = time.perf_counter()
                        response = call()
                        samples[name].append(time.perf_counter() - started)
                        if response.status_code != 200 or "errors" in response.text[:20]:
                            raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
            finally:
                server.terminate()
                server.wait(30)
    results = [
        {"case": name, "p50_ms": round(percentile(s, 50), 2), "p99_ms": round(percentile(s, 99), 2)}
        for name, s in samples.items()
    ]
    single = results[1]["p50_ms"] / results[0]["p50_ms"]
    page = results[3]["p50_ms"] / results[2]["p50_ms"]
    report = {
        "benchmark": "GraphQL overhead over REST",
        "requests_per_case": args.requests,
        "results": results,
        "graphql_over_rest_p50": {"single item": round(single, 2), "100-item page": round(page, 2)},
    }
    out = REPO / "bench" / "results" / "graphql_overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("| case | p50 ms | p99 ms |\n| --- | ---: | ---: |")
    for row in results:
        print(f"| {row['case']} | {row['p50_ms']} | {row['p99_ms']} |")
    print(f"\nGraphQL p50 / REST p50: single item {single:.2f}x, 100-item page {page:.2f}x")


if __name__ == "__main__":
    main()

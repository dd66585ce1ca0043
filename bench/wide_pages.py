"""Memory and time of list pages: a page of wide rows, and a page of narrow ones.

    .venv/bin/python bench/wide_pages.py [--wide-rows 200] [--row-mb 1] [--narrow-rows 1000] [--runs 15]

On a fresh PostgreSQL database of the test server: `GET /articles?limit=<wide-rows>` over rows whose
`content` is `--row-mb` MB each, through a real gunicorn (one worker, one thread), reading the
worker's peak RSS (VmHWM) before and after the request and the bytes and time of the answer; then
the median time of `GET /articles?limit=<narrow-rows>` over narrow rows, in-process through Flask's
test client (so it measures the API's own work, not a socket). Prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from sqlalchemy import create_engine, text  # noqa: E402

from testbed.servers import free_port, recreate_postgres_database  # noqa: E402

INSERT = text(
    "INSERT INTO articles (title, content, author, created_at, updated_at) "
    "SELECT 'row ' || n, repeat('x', :size), 'Ada', now(), now() FROM generate_series(1, :rows) AS n"
)


def fill(url: str, rows: int, size: int) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM articles"))
        conn.execute(INSERT, {"rows": rows, "size": size})
    engine.dispose()


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def worker_pid(master: int) -> int:
    for _ in range(100):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("gunicorn started no worker")


def get(url: str) -> tuple[int, float]:
    """Bytes of the answer and seconds, read in 1 MB pieces (the client keeps none of it)."""
    started = time.perf_counter()
    size = 0
    with urllib.request.urlopen(url, timeout=300) as response:
        while piece := response.read(2**20):
            size += len(piece)
    return size, time.perf_counter() - started


def wide_page(url: str, rows: int) -> dict:
    port = free_port()
    env = {**os.environ, "API_DATABASE_URL": url, "API_BIND": f"127.0.0.1:{port}", "API_WORKERS": "1"}
    env |= {"API_THREADS": "1", "PYTHONPATH": f"{REPO}:{REPO / 'src'}", "API_TOKENS": secrets.token_hex(16)}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    server = subprocess.Popen(
        [gunicorn, "-c", "api_service/gunicorn.conf.py", "api_service.wsgi:app"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        worker = worker_pid(server.pid)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                get(f"{base}/health")
                break
            except OSError:
                time.sleep(0.1)
        get(f"{base}/articles?limit=1")  # warm: imports, the pool's first connection
        before = peak_rss_mb(worker)
        size, seconds = get(f"{base}/articles?limit={rows}")
        return {
            "bytes": size,
            "seconds": round(seconds, 2),
            "worker_peak_rss_mb_before": round(before),
            "worker_peak_rss_mb_after": round(peak_rss_mb(worker)),
        }
    finally:
        server.terminate()
        server.wait(30)


def narrow_page(url: str, rows: int, runs: int) -> dict:
    from api_service import create_app
    from api_service.settings import ApiSettings

    app = create_app(ApiSettings(database_url=url, tokens=(secrets.token_hex(16),)))
    client = app.test_client()
    times = []
    for _ in range(runs + 2):
        started = time.perf_counter()
        response = client.get(f"/articles?limit={rows}")
        assert response.status_code == 200 and len(response.json["items"]) == rows
        times.append(time.perf_counter() - started)
    times = times[2:]  # the first two warm the pool and the caches
    app.extensions["base_b_engine"].dispose()
    return {"median_ms": round(statistics.median(times) * 1000, 1), "min_ms": round(min(times) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wide-rows", type=int, default=200)
    parser.add_argument("--row-mb", type=float, default=1)
    parser.add_argument("--narrow-rows", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    from api_service import migrate

    url = recreate_postgres_database("bench_wide_pages")
    migrate.upgrade(url)
    fill(url, args.wide_rows, int(args.row_mb * 2**20))
    wide = wide_page(url, args.wide_rows)
    fill(url, args.narrow_rows, 200)
    narrow = narrow_page(url, args.narrow_rows, args.runs)
    report = {"wide_page": {"rows": args.wide_rows, "row_mb": args.row_mb, **wide}}
    report["narrow_page"] = {"rows": args.narrow_rows, "runs": args.runs, **narrow}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

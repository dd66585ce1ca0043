"""Memory of every component of the embedded platform, Airflow's idle footprint among them.

    .venv/bin/python bench/footprint.py [--idle 60]

Runs `make up` (embedded defaults, local Airflow settings: parallelism 4) with its own state folder
and free ports, waits `--idle` seconds after the first run finished, then reads the PSS of every
process of each component (each runs in its own process group; PSS shares forked pages fairly),
and the peak RSS the kernel recorded for its largest process. Writes bench/results/footprint.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testbed.platform import running_platform  # noqa: E402


def group_memory(leader: int) -> dict:
    """PSS of every process in the leader's process group, and the largest peak RSS among them (MB)."""
    pss = peak = 0.0
    processes = 0
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) != leader:
                continue
            pss += proc.memory_full_info().pss
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak = max(peak, int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))))
            processes += 1
    return {"pss_mb": round(pss / 2**20), "peak_rss_mb": round(peak / 1024), "processes": processes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=60, help="seconds of idling before the reading")
    args = parser.parse_args()
    with running_platform(Path(tempfile.mkdtemp(prefix="bench-footprint-")), BASE_A_CHURN_EVERY="0") as running:
        time.sleep(args.idle)
        components = {
            pidfile.stem: group_memory(int(pidfile.read_text()))
            for pidfile in sorted((running.var / "run").glob("*.pid"))
        }
    airflow = {name: c for name, c in components.items() if name.startswith("airflow-")}
    report = {
        "benchmark": "memory of each component of `make up`, idle",
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "settings": {"idle_seconds": args.idle, "airflow_parallelism": 4},
        "components": components,
        "airflow_idle_pss_mb": sum(c["pss_mb"] for c in airflow.values()),
        "total_pss_mb": sum(c["pss_mb"] for c in components.values()),
    }
    (REPO / "bench" / "results" / "footprint.json").write_text(json.dumps(report, indent=2) + "\n")
    print("| component | processes | PSS MB | peak RSS MB (largest process) |\n| --- | ---: | ---: | ---: |")
    for name, c in components.items():
        print(f"| {name} | {c['processes']} | {c['pss_mb']} | {c['peak_rss_mb']} |")
    print(f"\nAirflow idle: {report['airflow_idle_pss_mb']} MB PSS; everything: {report['total_pss_mb']} MB")


if __name__ == "__main__":
    main()

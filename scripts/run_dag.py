"""Unpause DAGs, trigger one and wait for its run, through Airflow's REST API (`make up`'s last step).

Usage: run_dag.py AIRFLOW_URL PASSWORDS_FILE DAG_ID RUN_ID [OTHER_DAG_TO_UNPAUSE ...]

One process and one token instead of an `airflow` CLI call per step and per poll (each of those
imports Airflow: ~9 s on a 2-core machine). Prints the run's final state; exits 0 on success.
"""

from __future__ import annotations

import json
import sys
import time

import requests

PARSE_TIMEOUT = 120  # the dag-processor's first pass over dags/
RUN_TIMEOUT = 600


def main(url: str, passwords_file: str, dag_id: str, run_id: str, *also_unpause: str) -> int:
    with open(passwords_file) as file:
        password = json.load(file)["admin"]
    session = requests.Session()
    answer = session.post(f"{url}/auth/token", json={"username": "admin", "password": password}, timeout=30)
    answer.raise_for_status()
    session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    api = f"{url}/api/v2"

    deadline = time.monotonic() + PARSE_TIMEOUT
    while not poll(session, f"{api}/dags/{dag_id}"):
        if time.monotonic() > deadline:
            print(f"{dag_id} was not parsed within {PARSE_TIMEOUT} s: see the dag-processor's log", file=sys.stderr)
            return 1
        time.sleep(1)
    for dag in (dag_id, *also_unpause):
        session.patch(f"{api}/dags/{dag}", json={"is_paused": False}, timeout=30).raise_for_status()
    session.post(
        f"{api}/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None}, timeout=30
    ).raise_for_status()
    print(f"triggered {dag_id} ({run_id}); waiting for it to finish", flush=True)

    state, deadline = "queued", time.monotonic() + RUN_TIMEOUT
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(1)
        answer = poll(session, f"{api}/dags/{dag_id}/dagRuns/{run_id}")
        state = answer.json()["state"] if answer else state
    print(f"{dag_id} run {run_id}: {state}")
    return 0 if state == "success" else 1


def poll(session: requests.Session, url: str) -> requests.Response | None:
    """One poll's answer when it succeeded; None otherwise, and the poll is simply repeated (the
    api-server busy on its SQLite metadata database, or not answering for a moment)."""
    try:
        answer = session.get(url, timeout=30)
    except requests.RequestException:
        return None
    return answer if answer.ok else None


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

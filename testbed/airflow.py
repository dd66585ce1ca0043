"""A real Airflow for tests: its own AIRFLOW_HOME (SQLite metadata), the repo's dags/ calling base_sync."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

from testbed.servers import REPO, free_port, venv_bin, wait_for_http


def sync_connections(base_a_url, api_url: str, token: str) -> dict:
    """The two Airflow connections the batch DAG reads: Base A (a SQLAlchemy URL) and the API."""
    api = urlsplit(api_url)
    return {
        "base_a": {
            "conn_type": "mysql",
            "host": base_a_url.host,
            "port": base_a_url.port,
            "login": base_a_url.username,
            "schema": base_a_url.database,
        },
        "base_b_api": {"conn_type": "http", "host": api.hostname, "port": api.port, "password": token},
    }


def error_lines(log: str) -> list[str]:
    """The lines of an Airflow log at error level or above (structlog's `[error    ]`, logging's `ERROR`)."""
    return [line for line in log.splitlines() if re.search(r"\[(error|critical)\s*\]|\b(ERROR|CRITICAL)\b", line)]


class Airflow:
    def __init__(self, home: Path, connections: dict[str, dict], extra_env: dict[str, str] | None = None):
        self.home = home
        self.fernet_key = Fernet.generate_key().decode()
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
            "AIRFLOW__CORE__PARALLELISM": "4",
            **{f"AIRFLOW_CONN_{name.upper()}": json.dumps(conn) for name, conn in connections.items()},
            **(extra_env or {}),
        }
        self.cli("db", "migrate")

    def cli(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """`airflow <args>` in this Airflow's environment; a non-zero exit fails the test (`check`)."""
        result = subprocess.run(
            [venv_bin("airflow"), *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
        return result

    def test_dag(self, dag_id: str, conf: dict | None = None) -> str:
        """Run the DAG once with `airflow dags test`; its log; fails unless the run succeeded."""
        args = ["dags", "test", dag_id] + (["-c", json.dumps(conf)] if conf else [])
        result = self.cli(*args)
        log = result.stdout + result.stderr
        assert "state=success" in log and "DagRun Finished" in log, log[-6000:]
        return log

    def start_dag(self, dag_id: str, log_path: Path, conf: dict | None = None) -> subprocess.Popen:
        """Start `airflow dags test` in its own process group, to kill it half way (or answer its approvals)."""
        with open(log_path, "w") as log:
            return subprocess.Popen(
                [venv_bin("airflow"), "dags", "test", dag_id] + (["-c", json.dumps(conf)] if conf else []),
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)

    def variable(self, key: str) -> dict | None:
        """A JSON Variable, read from the metadata database (decrypted with this home's Fernet key)."""
        with sqlite3.connect(self.home / "airflow.db") as conn:
            row = conn.execute("SELECT val, is_encrypted FROM variable WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value, encrypted = row
        return json.loads(Fernet(self.fernet_key.encode()).decrypt(value.encode()) if encrypted else value)

    def variables(self, prefix: str) -> dict[str, dict]:
        """The JSON Variables whose key starts with `prefix`, by key."""
        with sqlite3.connect(self.home / "airflow.db") as conn:
            keys = [k for (k,) in conn.execute("SELECT key FROM variable WHERE key LIKE ?", (prefix + "%",))]
        return {key: self.variable(key) for key in keys if key.startswith(prefix)}

    @contextlib.contextmanager
    def services(self, log_dir: Path):
        """Airflow as it runs for users: api-server, scheduler, dag-processor and triggerer processes."""
        port = free_port()
        self.env |= {
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",  # asset watchers register on a re-parse
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
        }
        processes = []
        try:
            for part in ("api-server", "scheduler", "dag-processor", "triggerer"):
                log = open(log_dir / f"airflow-{part}.log", "w")  # noqa: SIM115 - closed with the process
                processes.append(
                    (
                        subprocess.Popen(
                            [venv_bin("airflow"), part],
                            env=self.env,
                            cwd=REPO,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        ),
                        log,
                    )
                )
            wait_for_http(f"http://127.0.0.1:{port}/api/v2/monitor/health", processes[0][0], timeout=120)
            yield f"http://127.0.0.1:{port}"
        finally:
            # The task runners first, while the api-server their running tasks report to is up (a
            # task whose api-server is gone retries it for half a minute), then the api-server.
            _stop_together(processes[1:])
            _stop_together(processes[:1])

    @contextlib.contextmanager
    def api_server(self, log_path: Path):
        """Only the api-server, on this home's metadata database, every user an admin: its URL.

        Enough to answer a human-in-the-loop task of a `dags test` run (which waits for the answer
        to land in the shared database) through the REST API, as the UI does."""
        port = free_port()
        env = self.env | {
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        }
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [venv_bin("airflow"), "api-server"],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                wait_for_http(f"http://127.0.0.1:{port}/api/v2/monitor/health", process, timeout=120)
                yield f"http://127.0.0.1:{port}"
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        with sqlite3.connect(self.home / "airflow.db") as conn:
            row = conn.execute(
                "SELECT state FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?",
                (dag_id, run_id, task_id),
            ).fetchone()
        return row[0] if row else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Until the dag-processor has serialized the DAG (read from the metadata database: an
        `airflow dags details` per poll would import Airflow each time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with sqlite3.connect(self.home / "airflow.db") as conn:
                found = conn.execute("SELECT count(*) FROM serialized_dag WHERE dag_id = ?", (dag_id,)).fetchone()[0]
            if found:
                return
            time.sleep(1)
        raise TimeoutError(f"{dag_id} was not parsed within {timeout} s")

    def wait_for_watcher(self, classpath_part: str, timeout: float = 120) -> None:
        """Until the triggerer runs the asset watcher's trigger (registered when its DAG is unpaused and re-parsed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with sqlite3.connect(self.home / "airflow.db") as conn:
                running = conn.execute(
                    "SELECT count(*) FROM trigger WHERE classpath LIKE ? AND triggerer_id IS NOT NULL",
                    (f"%{classpath_part}%",),
                ).fetchone()[0]
            if running:
                return
            time.sleep(1)
        raise TimeoutError(f"no triggerer ran a {classpath_part} trigger within {timeout} s")

    def runs(self, dag_id: str) -> list[dict]:
        """The DAG's runs, from the metadata database: run_id, state, run_type."""
        with sqlite3.connect(self.home / "airflow.db") as conn:
            rows = conn.execute("SELECT run_id, state, run_type FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchall()
        return [{"run_id": r[0], "state": r[1], "run_type": r[2]} for r in rows]


def _stop_together(processes: list[tuple[subprocess.Popen, IO]]) -> None:
    """SIGTERM each process group at once, wait for all; a group still there after 30 s is killed."""
    for process, _ in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process, log in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()

"""A real Airflow for tests: its own AIRFLOW_HOME (SQLite metadata), the repo's dags/ and plugins/."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

from cryptography.fernet import Fernet

from tests.servers import REPO, venv_bin


class Airflow:
    def __init__(self, home: Path, connections: dict[str, dict], extra_env: dict[str, str] | None = None):
        self.home = home
        self.fernet_key = Fernet.generate_key().decode()
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
            "AIRFLOW__CORE__PARALLELISM": "4",
            **{f"AIRFLOW_CONN_{name.upper()}": json.dumps(conn) for name, conn in connections.items()},
            **(extra_env or {}),
        }
        self.cli("db", "migrate")

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [venv_bin("airflow"), *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
        return result

    def test_dag(self, dag_id: str, conf: dict | None = None) -> str:
        """Run the DAG once with `airflow dags test`; its log; fails unless the run succeeded."""
        args = ["dags", "test", dag_id] + (["-c", json.dumps(conf)] if conf else [])
        result = self.cli(*args)
        log = result.stdout + result.stderr
        assert "state=success" in log and "DagRun Finished" in log, log[-6000:]
        return log

    def start_dag(self, dag_id: str, log_path: Path) -> subprocess.Popen:
        """Start `airflow dags test` in its own process group, to kill it half way."""
        with open(log_path, "w") as log:
            return subprocess.Popen(
                [venv_bin("airflow"), "dags", "test", dag_id],
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

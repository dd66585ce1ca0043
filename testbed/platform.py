"""The platform as a user runs it: `make up` with its own state folder and free ports, `make down`.

Every address is chosen free so a platform the developer already runs is left alone. Everything
`make up` starts inherits PLATFORM_VAR, which is how `leftover_processes` finds what `make down`
missed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
from sqlalchemy import create_engine, select, text

from testbed.servers import REPO, free_port

DEMO_MAPPING = REPO / "mappings" / "demo.yaml"  # what `make up` reads the embedded Base A with


@dataclass
class Platform:
    var: Path
    env: dict[str, str]
    api_url: str
    graphql_url: str
    airflow_url: str
    prometheus_url: str
    kafka_bootstrap: str
    base_a_url: str
    up_log: Path
    mapping_file: str | None = None  # how the main job reads Base A (make up: the demo's on the embedded Base A)
    started_groups: set[int] = field(default_factory=set)  # the process groups make up recorded (`started`)
    # When `make up` and `make down` began, in clock ticks since boot: a process of a recorded group
    # began between the two, or its pid was reused by another session (`leftover_processes`).
    up_since: float = 0.0
    down_since: float = float("inf")
    _airflow: requests.Session = field(default_factory=requests.Session)

    @property
    def api_token(self) -> str:
        return (self.var / "api-token").read_text().strip()

    @property
    def admin_password(self) -> str:
        generated = self.var / "airflow" / "simple_auth_manager_passwords.json.generated"
        return json.loads(generated.read_text())["admin"]

    def make(self, target: str, timeout: float = 900) -> subprocess.CompletedProcess:
        if target == "down":
            self.down_since = _ticks_since_boot()
        elif target == "up":
            self.up_since, self.down_since = _ticks_since_boot(), float("inf")
        # The owner's alone, as everything make up writes (it holds the summary, Airflow's admin password);
        # the folder too, made here as scripts/airflow-env.sh makes it (the log is opened before make runs).
        self.var.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(self.var / f"make-{target}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with open(descriptor, "a") as log:
            return subprocess.run(
                ["make", target],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )

    def airflow(self, method: str, path: str, **kwargs) -> dict:
        """Airflow's REST API v2 as a user calls it, with a token from /auth/token."""
        if "Authorization" not in self._airflow.headers:
            answer = requests.post(
                f"{self.airflow_url}/auth/token",
                json={"username": "admin", "password": self.admin_password},
                timeout=90,
            )
            answer.raise_for_status()
            self._airflow.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        # Longer than the metadata database's lock wait (30 s on SQLite, scripts/airflow-env.sh): a
        # request queued behind the scheduler's write answers late, it does not fail.
        answer = self._airflow.request(method, f"{self.airflow_url}/api/v2{path}", timeout=90, **kwargs)
        assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def runs_started_since(self, dag_id: str, timestamp: float) -> int:
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
        return self.airflow("GET", f"/dags/{dag_id}/dagRuns", params={"start_date_gte": since})["total_entries"]

    def graphql(self, query: str, **variables) -> dict:
        answer = requests.post(f"{self.graphql_url}/graphql", json={"query": query, "variables": variables}, timeout=30)
        body = answer.json()
        assert answer.status_code == 200 and not body.get("errors"), body
        return body["data"]

    def kept_processes(self, name: str, program: bytes) -> set[int]:
        """Pids of the processes `make up` started as `name` (its process group) whose last argument is
        `program` or a path to it (`scheduler`, `base-a-relay`), their keeper (keep-running.sh) left out."""
        group = int((self.var / "run" / f"{name}.pid").read_text())
        found = set()
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError):
                if proc.name.isdigit() and os.getpgid(int(proc.name)) == group:
                    command = (proc / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
                    ends = command[-1] == program or command[-1].endswith(b"/" + program)
                    if ends and b"keep-running" not in b" ".join(command):
                        found.add(int(proc.name))
        return found

    def started(self) -> None:
        """Note the process groups `make up` recorded in var/run (their pid files go with `make down`)."""
        self.started_groups.clear()
        for pid_file in (self.var / "run").glob("*.pid"):
            with contextlib.suppress(ValueError):
                self.started_groups.add(int(pid_file.read_text()))

    def leftover_processes(self) -> list[str]:
        """Command lines of processes still running with this platform's PLATFORM_VAR, or in a process
        group make up started: gunicorn and Airflow's api-server retitle themselves (setproctitle),
        which overwrites their environment, marker included (found from outside)."""
        marker = f"PLATFORM_VAR={self.var}\0".encode()
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                grouped = os.getpgid(int(proc.name)) in self.started_groups
                ours = grouped and _began_between(proc, self.up_since, self.down_since)
                if marker in (proc / "environ").read_bytes() or ours:
                    found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        return found


def platform_env(var: Path, **overrides: str) -> dict[str, str]:
    """`make up`'s environment: small demo data, free ports, quick DAG parsing for a test."""
    ports = {
        name: free_port() for name in ("api", "graphql", "airflow", "kafka", "prometheus", "relay", "logs", "tlogs")
    }
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "API_", "BASE_A_", "KAFKA_"))},
        "PLATFORM_VAR": str(var),
        "API_BIND": f"127.0.0.1:{ports['api']}",
        "GRAPHQL_BIND": f"127.0.0.1:{ports['graphql']}",
        "AIRFLOW__API__PORT": str(ports["airflow"]),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["tlogs"]),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",  # asset watchers register on a re-parse
        "KAFKA_LISTEN": f"127.0.0.1:{ports['kafka']}",
        "PROMETHEUS_BIND": f"127.0.0.1:{ports['prometheus']}",
        "RELAY_HTTP_PORT": str(ports["relay"]),
        "BASE_A_SEED_EMPLOYEES": "500",
        "BASE_A_SEED_ARTICLES": "200",
        **overrides,
    }


@contextlib.contextmanager
def running_platform(var: Path, **overrides: str) -> Iterator[Platform]:
    """`make up`, the platform while it runs, then `make down` (also when the test failed)."""
    env = platform_env(var, **overrides)
    platform = Platform(
        var=var,
        env=env,
        api_url=f"http://{env['API_BIND']}",
        graphql_url=f"http://{env['GRAPHQL_BIND']}",
        airflow_url=f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}",
        prometheus_url=f"http://{env['PROMETHEUS_BIND']}",
        kafka_bootstrap=env.get("KAFKA_BOOTSTRAP", env["KAFKA_LISTEN"]),
        base_a_url=env.get("BASE_A_URL", f"sqlite:///{var / 'base_a.sqlite'}"),
        up_log=var / "make-up.log",
        mapping_file=env.get("BASE_A_MAPPING_FILE") or (None if "BASE_A_URL" in env else str(DEMO_MAPPING)),
    )
    try:
        started = time.monotonic()
        result = platform.make("up")
        assert result.returncode == 0, f"make up exited {result.returncode}:\n{platform.up_log.read_text()[-6000:]}"
        print(f"make up took {time.monotonic() - started:.0f} s")
        platform.started()
        yield platform
    finally:
        platform.make("down", timeout=120)


def wait_for(what: str, check, timeout: float = 180, every: float = 2):
    """Poll `check()` until it returns something true; that value. Fails naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)


PAGE = """query($after: ID) { %s(limit: 200, afterId: $after) { items { sourceId sourceUpdatedAt } nextAfterId } }"""


def base_b_versions(platform: Platform, entity: str) -> dict[int, datetime]:
    """Every synced row of Base B as GraphQL shows it: Base A key → the Base A version held."""
    field_name = {"articles": "getArticlesPage", "employees": "getEmployeesPage"}[entity]
    versions, after = {}, None
    while True:
        page = platform.graphql(PAGE % field_name, after=after)[field_name]
        versions |= {
            item["sourceId"]: _utc(datetime.fromisoformat(item["sourceUpdatedAt"]))
            for item in page["items"]
            if item["sourceId"] is not None
        }
        after = page["nextAfterId"]
        if not after:
            return versions


def base_a_versions(base_a_url: str, entity: str, mapping_file: str | None = None) -> dict[int, datetime]:
    """Every row of Base A: key → updated_at; with a mapping file, every live row through the mapping:
    key → version (UTC)."""
    if mapping_file:
        return _mapped_versions(base_a_url, entity, mapping_file)
    engine = create_engine(base_a_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT id, updated_at FROM {entity}"))  # noqa: S608 - a fixed table name
            return {
                key: _utc(stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp))
                for key, stamp in rows
            }
    finally:
        engine.dispose()


def _mapped_versions(base_a_url: str, entity: str, mapping_file: str) -> dict[int, datetime]:
    from base_sync.mapping import SourceMapping
    from base_sync.source import BaseA, source_engine

    engine = source_engine(base_a_url)
    try:
        view = BaseA(engine, SourceMapping.from_file(mapping_file)).view(entity)
        names = view.source_columns
        with engine.connect() as conn:
            rows = conn.execute(select(*(view.c(n) for n in names)).where(*view.live))
            return {row[0]: view.version_of(dict(zip(names, row, strict=True))) for row in rows}
    finally:
        engine.dispose()


def _utc(stamp: datetime) -> datetime:
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _ticks_since_boot() -> float:
    return float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK")


def _began_between(proc: Path, since: float, until: float) -> bool:
    """Whether the process began between the two (clock ticks since boot, /proc/PID/stat's 22nd field)."""
    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    return since <= int(fields[19]) <= until

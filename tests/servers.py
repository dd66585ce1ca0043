"""Reaching the real servers the tests need: skip locally when one is missing, fail under CI."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
    message = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI is set: this test must run")
    pytest.skip(message)


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
def api_server(database_url: str, token: str, log_path: Path, workers: int = 1, metrics_dir: Path | None = None):
    """The REST API under gunicorn on a free loopback port; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "API_DATABASE_URL": database_url,
        "API_TOKENS": token,
        "API_BIND": f"127.0.0.1:{port}",
        "API_WORKERS": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir or log_path.parent / f"metrics-{port}"),
    }
    command = [venv_bin("gunicorn"), "-c", "api_service/gunicorn.conf.py", "api_service.wsgi:app"]
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/ready", server)
            yield base
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)

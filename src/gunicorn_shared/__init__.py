"""What the two HTTP services' gunicorn settings share: the metrics folder the workers write to,
the hook that drops a dead worker's metrics, and gunicorn's own error answers as problem documents.

Imported by `api_service/gunicorn.conf.py` and `graphql_service/gunicorn.conf.py` only; it loads
neither service.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from http import HTTPStatus

from gunicorn import util

# prometheus_client is imported only after fresh_metrics_dir has exported PROMETHEUS_MULTIPROC_DIR: it
# chooses, once, at import, whether samples go to files the workers share or stay in the process (where
# /metrics, summing the files, would show none).


def fresh_metrics_dir(prefix: str) -> str:
    """PROMETHEUS_MULTIPROC_DIR (or a new temp folder), emptied and exported: the workers share
    metrics through files there, and the folder must start empty and exist before they fork."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix=prefix)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder


def child_exit(server, worker) -> None:
    """gunicorn's hook: a dead worker's live gauges leave the shared metrics."""
    from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

    GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)


def _reason(status_int: int, reason: str) -> str:
    """The status's own phrase: gunicorn passes "Bad Request" for statuses it sets without naming
    them (501 for a transfer coding it does not support, 500 for a configuration problem)."""
    try:
        return HTTPStatus(status_int).phrase
    except ValueError:
        return reason


def _problem_error(sock, status_int, reason, mesg) -> None:
    reason = _reason(status_int, reason)
    body = {"type": "about:blank", "title": reason, "status": status_int, "detail": mesg or reason}
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/problem+json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + data)


def answer_errors_as_problems() -> None:
    """gunicorn's own answers (a request line too long, bad header bytes) as RFC 9457 problem
    documents, like every answer of the apps, instead of gunicorn's HTML page. Call it from the
    settings file: the workers are forked from the master that ran it, so they inherit it."""
    util.write_error = _problem_error


# The largest counts the services' gunicorn settings take: generous, a value past one is a slip.
MOST_WORKERS, MOST_THREADS = 256, 1000
MOST_HEAD_SECONDS, MOST_BODY_RATE = 3600, 2**30  # an hour for a request's head; bytes a second


def count_from_env(name: str, default: int, most: int) -> int:
    """A count (workers, threads, seconds, bytes a second) from the environment; a value that is none
    exits with one line. `most` is generous: a value past it is a slip (10**6 workers would fork until
    the machine gave out)."""
    raw = os.environ.get(name, str(default))
    if not raw.strip().isdecimal() or not 1 <= int(raw) <= most:
        sys.exit(f"invalid settings: {name}: a whole number from 1 to {most}, got {raw!r}")
    return int(raw)


def bind_from_env(name: str, default: str) -> str:
    """gunicorn's address from the environment, checked as gunicorn will parse it: an empty value made
    it listen on nothing ("Listening at:  "), and a port above 65535 failed its bind with a traceback."""
    raw = os.environ.get(name, default)
    needed = f"host:port (port 1 to 65535), unix:PATH or fd://N, e.g. {default}"
    address = raw.strip()
    if not address:
        sys.exit(f"invalid settings: {name}: empty: {needed}")
    try:
        parsed = util.parse_address(address)
    except RuntimeError as error:  # gunicorn's words: "'abc' is not a valid port number."
        sys.exit(f"invalid settings: {name}: {error} Needed: {needed}")
    if parsed == "" or (isinstance(parsed, tuple) and not 1 <= parsed[1] <= 65535):
        sys.exit(f"invalid settings: {name}: {needed}, got {raw!r}")
    return address


def check_settings(load: Callable[[], object]) -> None:
    """Read the service's settings in the master: an invalid variable stops the server with one line
    naming it (env_settings.InvalidSettings), instead of a traceback from every worker it forks."""
    try:
        load()
    except ValueError as exc:
        sys.exit(str(exc))

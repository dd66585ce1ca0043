"""gunicorn settings for the REST API (`gunicorn -c api_service/gunicorn.conf.py api_service.wsgi:app`).

Environment: API_BIND (default 0.0.0.0:5000), API_WORKERS (default 2), API_THREADS (default 4),
PROMETHEUS_MULTIPROC_DIR (default: a fresh folder under the system temp dir).
"""

import json
import os
import shutil
import tempfile

from gunicorn import util
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

bind = os.environ.get("API_BIND", "0.0.0.0:5000")
workers = int(os.environ.get("API_WORKERS", "2"))
threads = int(os.environ.get("API_THREADS", "4"))
worker_class = "gthread"
timeout = 120  # a 20,000-record bulk request on a busy database
graceful_timeout = 30
keepalive = 75  # longer than a pooled client's idle time, so it does not reuse a closed socket
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("API_LOG_LEVEL", "info").lower()

# Workers share metrics through files; the folder must start empty and exist before they fork.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="api-metrics-")
shutil.rmtree(_metrics_dir, ignore_errors=True)
os.makedirs(_metrics_dir)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def child_exit(server, worker):
    GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)


def _problem_error(sock, status_int, reason, mesg):
    """gunicorn's own answers (a request line too long, bad header bytes) as RFC 9457 problem
    documents, like every answer of the app, instead of gunicorn's HTML page. The same hook is in
    the other service's gunicorn.conf.py: ten lines are clearer than a package shared for them."""
    body = {"type": "about:blank", "title": reason, "status": status_int, "detail": mesg or reason}
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/problem+json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + data)


# Workers are forked from the master that ran this file, so they inherit the replacement.
util.write_error = _problem_error

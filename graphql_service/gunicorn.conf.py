"""gunicorn settings for the GraphQL service (`gunicorn -c graphql_service/gunicorn.conf.py graphql_service.wsgi:app`).

Environment: GRAPHQL_BIND (default 0.0.0.0:5001), GRAPHQL_WORKERS (2), GRAPHQL_THREADS (8),
PROMETHEUS_MULTIPROC_DIR (default: a fresh folder under the system temp dir).
"""

import json
import os
import shutil
import tempfile

from gunicorn import util
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

bind = os.environ.get("GRAPHQL_BIND", "0.0.0.0:5001")
workers = int(os.environ.get("GRAPHQL_WORKERS", "2"))
threads = int(os.environ.get("GRAPHQL_THREADS", "8"))  # resolvers mostly wait on the REST API
worker_class = "gthread"
timeout = 60
keepalive = 75
accesslog = "-"
errorlog = "-"

_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="graphql-metrics-")
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

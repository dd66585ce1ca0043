"""gunicorn settings for the GraphQL service (`gunicorn -c graphql_service/gunicorn.conf.py graphql_service.wsgi:app`).

Environment: GRAPHQL_BIND (default 0.0.0.0:5001), GRAPHQL_WORKERS (2), GRAPHQL_THREADS (8),
PROMETHEUS_MULTIPROC_DIR (default: a fresh folder under the system temp dir).
"""

import os
import shutil
import tempfile

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

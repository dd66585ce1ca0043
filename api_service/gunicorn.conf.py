"""gunicorn settings for the REST API (`gunicorn -c api_service/gunicorn.conf.py api_service.wsgi:app`).

Environment: API_BIND (default 0.0.0.0:5000), API_WORKERS (default 2), API_THREADS (default 4),
PROMETHEUS_MULTIPROC_DIR (default: a fresh folder under the system temp dir).
"""

import os
import shutil
import tempfile

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

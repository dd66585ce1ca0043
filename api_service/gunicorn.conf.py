"""gunicorn settings for the REST API (`gunicorn -c api_service/gunicorn.conf.py api_service.wsgi:app`).

Environment: API_BIND (default 0.0.0.0:5000; an empty one is refused, not read as the default),
API_WORKERS (default 2), API_THREADS (default 4), API_REQUEST_HEAD_TIMEOUT
(seconds for a request's head, 10), API_REQUEST_BODY_MIN_RATE (the slowest a body may arrive,
bytes/s, 65536), PROMETHEUS_MULTIPROC_DIR (default: a fresh folder under the system temp dir).
"""

import os

from api_service.settings import ApiSettings
from gunicorn_shared import (  # noqa: F401 (child_exit: a hook)
    MOST_BODY_RATE,
    MOST_HEAD_SECONDS,
    MOST_THREADS,
    MOST_WORKERS,
    answer_errors_as_problems,
    bind_from_env,
    check_settings,
    child_exit,
    count_from_env,
    fresh_metrics_dir,
)
from gunicorn_shared.request_deadlines import worker_with_deadlines

bind = bind_from_env("API_BIND", "0.0.0.0:5000")
workers = count_from_env("API_WORKERS", 2, most=MOST_WORKERS)
threads = count_from_env("API_THREADS", 4, most=MOST_THREADS)
# gthread, with a deadline on reading a request: slow clients cannot hold every thread
worker_class = worker_with_deadlines(
    head_seconds=count_from_env("API_REQUEST_HEAD_TIMEOUT", 10, most=MOST_HEAD_SECONDS),
    body_min_rate=count_from_env("API_REQUEST_BODY_MIN_RATE", 65536, most=MOST_BODY_RATE),
)
timeout = 120  # a 20,000-record bulk request on a busy database
graceful_timeout = 30
keepalive = 75  # longer than a pooled client's idle time, so it does not reuse a closed socket
# The mount prefix is the operator's (SCRIPT_NAME in the environment), never a client's header: gunicorn
# took SCRIPT_NAME and PATH_INFO headers from 127.0.0.1, and any local client, or one through a proxy
# passing them, chose the prefix the docs page, Location and /openapi.json's servers carry.
forwarder_headers = ""
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("API_LOG_LEVEL", "info").lower()

check_settings(ApiSettings)
fresh_metrics_dir("api-metrics-")
answer_errors_as_problems()

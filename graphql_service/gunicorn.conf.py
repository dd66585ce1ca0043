"""gunicorn settings for the GraphQL service (`gunicorn -c graphql_service/gunicorn.conf.py graphql_service.wsgi:app`).

Environment: GRAPHQL_BIND (default 0.0.0.0:5001; an empty one is refused, not read as the default),
GRAPHQL_WORKERS (2), GRAPHQL_THREADS (8), GRAPHQL_REQUEST_HEAD_TIMEOUT
(seconds for a request's head, 10), GRAPHQL_REQUEST_BODY_MIN_RATE (the slowest a body may arrive,
bytes/s, 65536), PROMETHEUS_MULTIPROC_DIR (default: a fresh folder under the system temp dir).
"""

from graphql_service.settings import GraphQLSettings
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

bind = bind_from_env("GRAPHQL_BIND", "0.0.0.0:5001")
workers = count_from_env("GRAPHQL_WORKERS", 2, most=MOST_WORKERS)
threads = count_from_env("GRAPHQL_THREADS", 8, most=MOST_THREADS)  # resolvers mostly wait on the REST API
# gthread, with a deadline on reading a request: slow clients cannot hold every thread
worker_class = worker_with_deadlines(
    head_seconds=count_from_env("GRAPHQL_REQUEST_HEAD_TIMEOUT", 10, most=MOST_HEAD_SECONDS),
    body_min_rate=count_from_env("GRAPHQL_REQUEST_BODY_MIN_RATE", 65536, most=MOST_BODY_RATE),
)
timeout = 60
keepalive = 75
# The mount prefix is the operator's (SCRIPT_NAME in the environment), never a client's header: gunicorn
# took SCRIPT_NAME and PATH_INFO headers from 127.0.0.1, and any local client, or one through a proxy
# passing them, chose the prefix the docs page, Location and /openapi.json's servers carry.
forwarder_headers = ""
accesslog = "-"
errorlog = "-"

check_settings(GraphQLSettings)
fresh_metrics_dir("graphql-metrics-")
answer_errors_as_problems()

"""gunicorn settings for the GraphQL service (`gunicorn -c graphql_service/gunicorn.conf.py graphql_service.wsgi:app`).

Environment: GRAPHQL_BIND (default 0.0.0.0:5001), GRAPHQL_WORKERS (2), GRAPHQL_THREADS (8),
PROMETHEUS_MULTIPROC_DIR (default: a fresh folder under the system temp dir).
"""

import os

from graphql_service.settings import GraphQLSettings
from gunicorn_shared import (  # noqa: F401 (child_exit: a hook)
    answer_errors_as_problems,
    check_settings,
    child_exit,
    count_from_env,
    fresh_metrics_dir,
)

bind = os.environ.get("GRAPHQL_BIND", "0.0.0.0:5001")
workers = count_from_env("GRAPHQL_WORKERS", 2)
threads = count_from_env("GRAPHQL_THREADS", 8)  # resolvers mostly wait on the REST API
worker_class = "gthread"
timeout = 60
keepalive = 75
accesslog = "-"
errorlog = "-"

check_settings(GraphQLSettings)
fresh_metrics_dir("graphql-metrics-")
answer_errors_as_problems()

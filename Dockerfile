# One image for the project's Python services: the API, GraphQL, the CDC relay, the base-a tool and Airflow.
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc pkg-config libmariadb-dev curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The locked dependencies first and alone, so that this slow layer is rebuilt only when the lock
# changes: requirements-image.lock pins the runtime dependencies and the celery and kubernetes
# extras (the executors of docker-compose.yaml and of the Helm values), not the dev tools.
COPY requirements-image.lock ./
RUN pip install --no-cache-dir -r requirements-image.lock
COPY pyproject.toml README.md ./
COPY api_service ./api_service
COPY graphql_service ./graphql_service
COPY src ./src
COPY dags ./dags
# compose's housekeeping service runs these (README, Housekeeping).
COPY scripts/airflow-housekeeping.sh scripts/daily-housekeeping.sh ./scripts/
# The project itself: everything it needs is installed above.
RUN pip install --no-cache-dir --no-deps .
RUN useradd --system --uid 10001 app \
 && mkdir -p /var/lib/relay /opt/airflow && chown app /var/lib/relay /opt/airflow
USER app
EXPOSE 5000
CMD ["gunicorn", "-c", "api_service/gunicorn.conf.py", "api_service.wsgi:app"]

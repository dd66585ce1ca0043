# One image for the project's Python services: the API, GraphQL, the CDC relay, the base-a tool and Airflow.
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc pkg-config libmariadb-dev curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY api_service ./api_service
COPY graphql_service ./graphql_service
COPY src ./src
COPY dags ./dags
RUN pip install --no-cache-dir --no-deps .
RUN useradd --system --uid 10001 app \
 && mkdir -p /var/lib/relay /opt/airflow && chown app /var/lib/relay /opt/airflow
USER app
EXPOSE 5000
CMD ["gunicorn", "-c", "api_service/gunicorn.conf.py", "api_service.wsgi:app"]

"""The sync library the DAGs call: Base A (MySQL/MariaDB or SQLite) → REST API → Base B.

Nothing here imports Airflow except `airflow_glue`, so every step is testable on its own.
"""

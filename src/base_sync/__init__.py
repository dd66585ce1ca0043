"""The sync library the DAGs call: Base A (MySQL/MariaDB or SQLite) → REST API → Base B.

Only `airflow_tasks` (the task bodies), `wake_trigger` (the events DAG's trigger) and `state`'s
Airflow Variable store import Airflow, so every step is testable on its own. `relay` is the CDC
daemon (`base-a-relay`); `demo` is the tooling that makes and changes a demo Base A (`base-a`).
"""

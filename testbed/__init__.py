"""Launchers of the real servers the tests and the benchmarks share (databases, broker, API, Airflow)."""

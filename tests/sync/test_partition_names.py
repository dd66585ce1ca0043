"""How the UI names a mapped load_partition instance, rendered as Airflow's task runner renders it
before the task body runs (the DAG parsed in a fresh interpreter, no server)."""

from __future__ import annotations

import json

from base_sync import airflow_tasks
from testbed.fresh_python import answer_of

# Airflow's `_prepare` (task_runner): render_templates unmaps the task with its expanded argument and
# puts it in the context; then, before the body runs, `_render_map_index` renders the template with
# the DAG's Jinja environment and sends the name (it sends nothing for an empty one).
PROBE = """
import json, runpy, sys
from types import SimpleNamespace
import structlog
from airflow.sdk.execution_time.context import context_update_for_unmapped
from airflow.sdk.execution_time.task_runner import _render_map_index
dag = runpy.run_path('dags/base_a_to_base_b.py')['base_a_to_base_b']()
mapped = dag.get_task("employees.load_partition")
partition = json.loads(sys.argv[1])
ti = SimpleNamespace(task=mapped)
context = {"map_index_template": mapped.map_index_template, "ti": ti, "dag": dag, "dag_run": SimpleNamespace(conf={})}
context_update_for_unmapped(context, mapped.unmap({"op_kwargs": {"entity": "employees", "partition": partition}}))
print(json.dumps(_render_map_index(context, ti=ti, log=structlog.get_logger())))
"""


def test_a_partition_is_named_by_its_range_before_its_body_runs():
    """Found from outside: the UI showed the bare map index while a partition ran, and for a killed try:
    the name came from the context the body set, rendered only when the try ended by itself."""
    partition = {
        "entity": "employees",
        "index": 1,
        "of": 4,
        "low": 250001,
        "high": 500000,
        "clock": "2026-01-01T00:00:00",
    }
    assert answer_of("-c", PROBE, json.dumps(partition)) == "2/4: keys 250001..500000"
    assert airflow_tasks.partition_label(partition) == "2/4: keys 250001..500000"

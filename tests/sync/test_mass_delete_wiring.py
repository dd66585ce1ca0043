"""The circuit breaker's wiring in the batch DAG (parsed in a fresh interpreter, no server): the branch,
the approval task and the trigger rules that keep the commit right after a rejection."""

from __future__ import annotations

import os

import pytest
from airflow.sdk.exceptions import AirflowFailException

from base_sync import airflow_tasks, sync
from base_sync.delete_guard import DELETE_LOG, DeleteBudget, DeletePlan, HeldByEvents
from base_sync.errors import ConfigurationError
from base_sync.state import MemoryStateStore
from testbed.fresh_python import answer_of

PROBE = """
import json, runpy
dag = runpy.run_path('dags/base_a_to_base_b.py')['base_a_to_base_b']()
from airflow.providers.standard.operators.hitl import ApprovalOperator
tasks = {}
for t in dag.tasks:
    tasks[t.task_id] = {
        "type": type(t).__name__,
        "trigger_rule": getattr(t.trigger_rule, "value", t.trigger_rule),
        "upstream": sorted(t.upstream_task_ids),
        "downstream": sorted(t.downstream_task_ids),
    }
    if isinstance(t, ApprovalOperator):
        timeout = t.response_timeout.total_seconds()
        tasks[t.task_id] |= {"defaults": t.defaults, "timeout": timeout, "subject": t.subject}
print(json.dumps({"tasks": tasks, "params": {k: dag.params.get_param(k).value for k in dag.params}}))
"""


def _parsed() -> dict:
    env = {"SYNC_MASS_DELETE_APPROVAL_HOURS": "2"}
    return answer_of("-c", PROBE, env={**os.environ, **env})


def test_the_check_branches_to_the_deletes_or_to_an_approval_that_gates_them():
    parsed = _parsed()
    tasks = parsed["tasks"]
    assert parsed["params"]["approve_mass_delete"] is False
    for entity in ("articles", "employees"):
        check, approve = tasks[f"{entity}.check_deletes"], tasks[f"{entity}.approve_mass_delete"]
        deletes, verify = tasks[f"{entity}.propagate_deletes"], tasks[f"{entity}.verify"]
        commit = tasks[f"{entity}.commit_watermark"]
        assert check["type"] == "_BranchPythonDecoratedOperator"
        # After the load and every partition: a key comparison must see every row they wrote.
        assert check["upstream"] == [f"{entity}.load", f"{entity}.load_partition"]
        assert check["trigger_rule"] == "none_failed"  # runs when no partition was mapped (skipped)
        assert check["downstream"] == [f"{entity}.approve_mass_delete", f"{entity}.propagate_deletes"]
        assert approve["type"] == "MassDeleteApproval" and approve["upstream"] == [f"{entity}.check_deletes"]
        assert approve["downstream"] == [f"{entity}.propagate_deletes"]
        # No answer within SYNC_MASS_DELETE_APPROVAL_HOURS: Reject, nothing deleted.
        assert approve["defaults"] == ["Reject"] and approve["timeout"] == 2 * 3600
        assert "check_deletes" in approve["subject"] and "['total']" in approve["subject"]
        # After the check alone (approval skipped) or an approval; a rejection skips it.
        assert deletes["trigger_rule"] == "none_failed_min_one_success"
        assert deletes["upstream"] == [f"{entity}.approve_mass_delete", f"{entity}.check_deletes"]
        # Verify and commit run after skipped (rejected) deletes, never after a failure.
        assert verify["trigger_rule"] == "none_failed_min_one_success"
        assert set(verify["upstream"]) == {f"{entity}.load", f"{entity}.propagate_deletes"}
        # ... and not for an entity the run leaves out: its every upstream skipped, it is skipped unrun
        # (run, it resolved the skipped tasks' results: `[error] XCom not found` in Airflow 3.3's log).
        assert commit["trigger_rule"] == "none_failed_min_one_success"
        assert f"{entity}.propagate_deletes" in commit["upstream"]
        # The commit takes the plan: only its partitions' reports count (a re-planned run keeps others).
        assert {f"{entity}.plan_partitions", f"{entity}.load_partition"} <= set(commit["upstream"])


def test_withheld_deletes_keep_the_last_delete_log_position_and_comparison_time():
    store = MemoryStateStore()
    position = {"updated_at": "2026-01-01T00:00:00+00:00", "id": 7}
    store.set("articles", None, {"deletes": {"log_position": position, "keys_compared_at": "2026-01-01T00:00:00"}})
    plan = {"total": 900, "limit": 100, "message": "articles: 900 rows to delete"}
    withheld = sync.deletes_withheld("articles", store, plan)
    assert withheld["deleted"] == 0 and withheld["withheld"] == plan
    assert withheld["log_position"] == position and withheld["keys_compared_at"] == "2026-01-01T00:00:00"
    assert sync.deletes_withheld("employees", store, None)["log_position"] is None  # nothing committed yet


def test_an_approval_covers_the_rows_it_answers_and_a_cleared_prompt_needs_them():
    """Airflow keeps a cleared task's first prompt (text and field): its count may be an earlier try's."""
    plan = {"total": 330, "limit": 100}
    approve, reject = {"chosen_options": ["Approve"]}, {"chosen_options": ["Reject"]}
    assert airflow_tasks.approved_rows(reject, {"rows": 330, "fresh": True}, plan) is None
    assert airflow_tasks.approved_rows(None, None, plan) is None
    # The form's field, as shown (an earlier try's 150) or typed: that many, not today's count, and
    # fewer than the count without the limit on top (100 of 195 approved deleted all 195).
    assert airflow_tasks.approved_rows({**approve, "params_input": {"rows": 150}}, {"rows": 330}, plan) == 150
    assert airflow_tasks.approved_rows({**approve, "params_input": {"rows": 329}}, {"rows": 330}, plan) == 329
    assert airflow_tasks.approved_rows({**approve, "params_input": {"rows": 330}}, {"rows": 330}, plan) == 430
    # The option alone (a REST answer): the count asked, on a first try only.
    assert airflow_tasks.approved_rows(approve, {"rows": 330, "fresh": True}, plan) == 430
    with pytest.raises(ConfigurationError, match="this try counted 330 rows, nothing was deleted. Clear check_deletes"):
        airflow_tasks.approved_rows(approve, {"rows": 330, "fresh": False}, plan)
    # The field emptied (the form then still offers Reject): no count, no approval.
    with pytest.raises(ConfigurationError, match="field empty"):
        airflow_tasks.approved_rows({**approve, "params_input": {"rows": None}}, {"rows": 330, "fresh": True}, plan)


@pytest.mark.parametrize("rows", ["lots", 12.5, True, -3, None, [355], "³"])
def test_an_approval_whose_rows_are_no_count_fails_at_once_naming_the_answer(rows):
    """Airflow takes any value in the form's field over its REST API: a retry would read the same answer."""
    answer = {"chosen_options": ["Approve"], "params_input": {"rows": rows}}
    with pytest.raises(ConfigurationError, match=r"rows") as refused:
        airflow_tasks.approved_rows(answer, {"rows": 330, "fresh": False}, {"total": 330, "limit": 100})
    if rows is not None:
        assert repr(rows) in str(refused.value)
    # An integer typed as text, as a form may send it, is a count.
    answer = {"chosen_options": ["Approve"], "params_input": {"rows": "330"}}
    assert airflow_tasks.approved_rows(answer, {"rows": 330}, {"total": 330, "limit": 100}) == 430


def test_while_the_events_path_holds_deletes_an_approval_covers_the_rows_it_answers_only():
    """The rows answered plus the limit let deletes held after the prompt pass unseen: 8 shown and
    approved, 9 more held since, 17 deleted under a limit of 100."""
    answer = {"chosen_options": ["Approve"], "params_input": {"rows": 8}}
    held = {"total": 8, "limit": 100, "held_by_events": {"held": 8}}
    assert airflow_tasks.approved_rows(answer, {"rows": 8}, held) == 8
    assert airflow_tasks.approved_rows(answer, {"rows": 8}, {"total": 8, "limit": 100}) == 108
    budget = DeleteBudget(share=0.05, min_rows=100, synced=1000)
    holding = HeldByEvents(8, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00")
    assert DeletePlan("employees", 8, {DELETE_LOG: 8}, budget, held_by_events=holding).allowed(8)
    assert not DeletePlan("employees", 17, {DELETE_LOG: 17}, budget, held_by_events=holding).allowed(8)
    assert DeletePlan("employees", 17, {DELETE_LOG: 17}, budget).allowed(8)  # no hold: the limit as before


class _Ti:
    def __init__(self, plan: dict):
        self.plan = plan

    def xcom_pull(self, task_ids: str, key: str) -> dict:
        return self.plan


def test_the_approval_without_a_plan_renders_and_fails_at_once_naming_the_task_to_clear():
    """Found from outside: check_deletes marked success by hand left no plan; rendering the prompt
    failed (`'None' has no attribute 'exact'`), was retried with back-off and held the DAG's run."""
    import jinja2  # noqa: PLC0415

    context = {"ti": _Ti(None)}
    strict = jinja2.Environment(undefined=jinja2.StrictUndefined)  # as Airflow renders a task's fields
    subject = strict.from_string(airflow_tasks.approval_subject("employees")).render(context)
    body = strict.from_string(airflow_tasks.approval_body("employees")).render(context)
    assert subject == body == "employees: check_deletes left no plan, nothing to approve"
    approval = airflow_tasks.MassDeleteApproval(task_id="employees.approve_mass_delete", entity="employees")
    with pytest.raises(AirflowFailException, match="clear employees.check_deletes together with its downstream"):
        approval.execute(context)


@pytest.mark.parametrize("held", [None, {"held": 15}], ids=["over-the-limit", "held-by-events"])
def test_the_approval_says_why_it_asks_and_what_an_approval_covers(held):
    """While the events path held deletes, the prompt said 'as many more as the limit' (the approval
    covers the rows answered only) and its headline showed a count under the limit without a reason."""
    import jinja2  # noqa: PLC0415

    plan = {"exact": True, "total": 15 if held else 150, "limit": 24, "summary": "s", "held_by_events": held}
    context = {"ti": _Ti(plan)}
    subject = jinja2.Template(airflow_tasks.approval_subject("employees")).render(context)
    body = jinja2.Template(airflow_tasks.approval_body("employees")).render(context)
    if held:
        assert subject == "employees: delete 15 rows in Base B? (limit 24, held by the events path)"
        assert "the rows answered now, no more" in body and "as many more as the limit" not in body
        # Below the limit: not the circuit breaker's count, the events path's hold asks.
        assert "more deletes than a run makes unasked" not in body
        assert "stopped before deleting: the events path holds deletes of this entity" in body
    else:
        assert subject == "employees: delete 150 rows in Base B? (limit 24)"
        assert "as many more as the limit" in body and "no more" not in body
        assert "stopped before deleting: the circuit breaker found more deletes than a run makes unasked" in body


def test_only_a_result_of_the_current_plan_counts_as_deletes_made():
    """Cleared with its downstream tasks, check_deletes plans anew and a rejection skips propagate_deletes,
    whose earlier try's result Airflow keeps: that result is not this try's, the deletes were withheld."""
    earlier, now = {airflow_tasks.PLAN_ID: "earlier", "total": 5}, {airflow_tasks.PLAN_ID: "now", "total": 355}
    made = {"deleted": 5, "log_position": {"at": 1}, airflow_tasks.PLAN_ID: "earlier"}
    assert airflow_tasks.deletes_of_plan(made, earlier) == made
    assert airflow_tasks.deletes_of_plan(made, now) is None
    assert airflow_tasks.deletes_of_plan(None, now) is None
    # A result naming no plan beside a plan that has one (a run in flight across an upgrade): withheld,
    # the safe side (the next run finds the same deletes).
    assert airflow_tasks.deletes_of_plan({"deleted": 5}, now) is None
    # No plan (check_deletes marked success by hand): the result is all there is.
    assert airflow_tasks.deletes_of_plan(made, None) == made


def test_an_answer_to_an_earlier_plans_prompt_approves_nothing():
    """Cleared with its downstream tasks, check_deletes may find the new plan within budget: the
    approval is skipped and its earlier try's answer stays in Airflow, which must not widen this
    plan's budget (the review)."""
    plan = {"total": 5, "limit": 20, airflow_tasks.PLAN_ID: "now"}
    answer = {"chosen_options": ["Approve"], "params_input": {"rows": 355}}
    earlier = {"rows": 355, "fresh": True, airflow_tasks.PLAN_ID: "earlier"}
    assert airflow_tasks.approved_rows(answer, earlier, plan) is None
    assert airflow_tasks.approved_rows(answer, {**earlier, airflow_tasks.PLAN_ID: "now"}, plan) == 355 + 20
    # Asked by a version that named no plan (a run in flight across the upgrade): the answer counts.
    assert airflow_tasks.approved_rows(answer, {"rows": 355, "fresh": True}, plan) == 355 + 20

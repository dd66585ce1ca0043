"""The DAGs' task callables: Airflow connections and params in, `sync` and `events` steps out.

Connections are looked up only here, when a task runs, never when the DAG file is parsed. Base A's
kind is its connection type (MySqlHook or SqliteHook); its backend makes the engine (on MySQL from
the connection's fields, `base_sync.mysql_connection`); the REST API comes through an HTTP
connection whose password is the bearer token.

Every callable is wrapped by `fail_terminal`: a terminal error (`base_sync.errors`) or an invalid
setting fails the task at once with its reason, since a retry would fail the same way; anything
else gets the DAG's retries with back-off.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import ipaddress
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import pydantic
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Asset, AssetAlias, BaseHook, Param, Variable, get_current_context
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSkipException,
)
from airflow.sdk.observability.stats import Stats
from sqlalchemy.exc import DBAPIError
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from base_sync import dead_letters, delete_guard, events, metrics, partitioned, sync
from base_sync.api_client import BaseBApi
from base_sync.backends import BACKENDS, backend_named
from base_sync.debezium import Topics
from base_sync.delete_log_triggers import STALE
from base_sync.errors import ConfigurationError, TerminalError, TransientError
from base_sync.mapping.cascades import cascade_warnings
from base_sync.reports import LoadReport, Partition, PartitionReport, RunMark
from base_sync.settings import EventSettings, SyncSettings
from base_sync.source import BaseA
from base_sync.state import VariableStateStore
from baseab_contract.entities import ENTITIES
from env_settings import InvalidSettings

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def fail_terminal(step: Callable[P, R]) -> Callable[P, R]:
    """Raise Airflow's no-retry failure, with the reason, for what a retry cannot cure. Every task
    body wears it, so it also reports the task process's peak memory when the step ends (a log line
    in the task's log and a gauge, `base_sync_task_peak_rss_bytes{entity,task}`), failed or not."""
    signature = inspect.signature(step)

    @functools.wraps(step)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return step(*args, **kwargs)
        except (TerminalError, InvalidSettings, pydantic.ValidationError) as error:
            raise AirflowFailException(f"{step.__name__}: {type(error).__name__}: {error}") from error
        finally:
            _report_peak_memory(step.__name__, _entity_of(signature, args, kwargs))

    return run


def _entity_of(signature: inspect.Signature, args: tuple, kwargs: dict) -> str:
    """The step's `entity` argument; ALL_ENTITIES for a step of no one entity (or a call that did not bind)."""
    try:
        return str(signature.bind_partial(*args, **kwargs).arguments.get("entity", metrics.ALL_ENTITIES))
    except TypeError:
        return metrics.ALL_ENTITIES


def _report_peak_memory(task: str, entity: str) -> None:
    peak = metrics.peak_rss_bytes()
    if peak is not None:
        log.info("%s (%s): peak memory of this task's process: %.0f MB", task, entity, peak / 2**20)
    _emit(metrics.memory_samples(task, entity, peak))


def _settings() -> SyncSettings:
    return SyncSettings()


def _upstream(result: R | None, upstream: str, entity: str) -> R:
    """An upstream task's result; none (the task was marked success by hand, or this one runs alone,
    as `airflow tasks test` runs it) is terminal: each retry met the same missing value, and a load
    given no partition plan re-sent every row first."""
    if result is None:
        raise TerminalError(
            f"{entity}.{upstream} left no result (marked success by hand, or this task run alone): clear "
            f"{entity}.{upstream} together with its downstream tasks to run them again"
        )
    return result


def _params() -> dict:
    return get_current_context()["params"]


def _refuse_unknown_conf() -> None:
    """Airflow passes unknown keys of a run's conf through unread: a mistyped option would do nothing."""
    context = get_current_context()
    unknown = sorted(set(context["dag_run"].conf or {}) - set(context["dag"].params))
    if unknown:
        known = ", ".join(sorted(context["dag"].params)) or "none: it takes no conf"
        raise AirflowFailException(f"this run's conf has unknown keys {unknown}: the DAG's params are {known}")


def _skip_unless_selected(entity: str) -> None:
    _refuse_unknown_conf()
    if entity not in get_current_context()["params"].get("entities", [entity]):
        why = f"{entity} is not in this run's `entities` param"
        log.info("skipped: %s", why)  # the task log shows only "Skipping task." of the exception
        raise AirflowSkipException(why)


@contextlib.contextmanager
def _connected(settings: SyncSettings, entity: str, report_schema: bool = False) -> Iterator[tuple[BaseA, BaseBApi]]:
    """Base A and the API; Base A's table of `entity` checked against its mapping first (one catalogue
    read): a missing or retyped mapped column fails the task, terminally, before anything is read or
    written (only missing ones are checked again once after SYNC_SCHEMA_RECHECK_SECONDS: a rename
    under way); one that goes missing during a read is retried (`SchemaChanging`). The run's load
    reports the columns the mapping does not read (a log line and a gauge), and the foreign keys
    whose actions change mapped rows unseen (`mapping.cascades`: warnings)."""
    conn_id = settings.base_a_conn_id
    connection = _connection(conn_id)
    try:
        hook = connection.get_hook()
    except AirflowException as error:  # a connection type without a hook (a URL's `mysql+mysqldb`, `mariadb`)
        kinds = " or ".join(BACKENDS)
        raise ConfigurationError(f"Airflow connection {conn_id!r}: {error}: its type must be {kinds}") from error
    # The connection type names Base A's kind (mysql, sqlite): its backend knows the session settings.
    backend = backend_named(hook.conn_type)
    with contextlib.ExitStack() as cleanup:
        engine = backend.engine_of_connection(connection, hook, settings.api_timeout)
        cleanup.callback(engine.dispose)
        base_a = BaseA(engine, chunk_bytes=settings.chunk_bytes, schema_recheck_seconds=settings.schema_recheck_seconds)
        with _refusals_are_terminal(backend.refusal, conn_id, backend.waited):  # the task's first sessions
            absent = backend.absent(engine)
            if absent:
                raise ConfigurationError(f"Base A (connection {conn_id!r}): {absent}")
            checked = base_a.require_schema(entity)
        cleanup.enter_context(_refusals_are_terminal(backend.denied, conn_id, backend.waited))
        # Every read of the task (the checksummed comparison reads the engine itself): a table or column
        # gone since the check is a schema change in progress, retried (`BaseA.schema_changes`).
        cleanup.enter_context(base_a.schema_changes(entity))
        if report_schema:
            if checked.unmapped:
                log.info(
                    "%s: %s has columns the mapping does not read (ignored): %s",
                    entity,
                    checked.table,
                    ", ".join(checked.unmapped),
                )
            _emit(metrics.schema_samples(entity, checked.unmapped))
            _emit(metrics.delete_log_samples(entity, base_a.delete_log_state(entity).status == STALE))
            for warning in cascade_warnings(base_a.engine, base_a.mapping, backend, [entity]):
                log.warning("%s", warning)
        api = _api(settings, "batch")
        cleanup.callback(api.close)
        api.check_writes(entity)
        yield base_a, api


def _connection(conn_id: str):
    """An Airflow connection. An AIRFLOW_CONN_* variable Airflow could not read fails the task at once,
    named as such (Airflow says only "isn't defined"). One not found is a retry that says so: Airflow
    3.3 also says "isn't defined" when its secrets backend or the execution API failed for a moment."""
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as error:
        variable = f"AIRFLOW_CONN_{conn_id.upper()}"
        if os.environ.get(variable):  # read first of all the backends: set, it was unreadable
            raise ConfigurationError(
                f"Airflow connection {conn_id!r}: {variable} is set but is no valid connection URI or JSON "
                f"({error}): in a URI, percent-encode the login and password (/ # ? @ : % and spaces), or give "
                "the connection as JSON"
            ) from error
        raise TransientError(
            f"Airflow connection {conn_id!r}: {error}: define it (an {variable} variable, or in Airflow's "
            "connections); if it is defined, Airflow could not read its secrets backend just now. The task is retried"
        ) from error


@contextlib.contextmanager
def _refusals_are_terminal(
    refusal: Callable[[DBAPIError], str | None],
    conn_id: str,
    waited: Callable[[DBAPIError], str | None] | None = None,
) -> Iterator[None]:
    """Base A refusing the account for good (`refusal` says which errors are: at the first session,
    a wrong account or database too; after it, a privilege on a table or column) fails the task at
    once with the reason: no retry grants a privilege. A lock waited on in vain (`waited`) is left
    to the task's retries, with the reason too (a raw 1205 named no lock)."""
    try:
        yield
    except DBAPIError as error:
        refused = refusal(error)
        if refused is None:
            reason = waited(error) if waited is not None else None
            if reason is not None:
                raise TransientError(f"Base A (connection {conn_id!r}): {reason}: {error.orig}") from error
            raise  # any other error: the task's retries, as it came
        why = f"Base A (connection {conn_id!r}) refused the session: {refused}: {error.orig}"
        raise ConfigurationError(why) from error


def _api(settings: SyncSettings | EventSettings, sync_path: str) -> BaseBApi:
    conn = _connection(settings.api_conn_id)
    url, verify = _api_url(conn), _verify_of(conn)
    try:
        return BaseBApi(
            url,
            conn.password,
            timeout=settings.api_timeout,
            sync_path=sync_path,
            max_body_bytes=settings.max_body_bytes,
            verify=verify,
        )
    except ConfigurationError as error:  # the token as given: name the connection that holds it
        raise ConfigurationError(f"Airflow connection {conn.conn_id!r}: {error}") from error


def _verify_of(conn) -> bool | str:
    """HttpHook's extra `verify`: false, or the path of the CA bundle that signed the API's certificate;
    true (the default) trusts the system's CAs. A path that is not here fails now: requests raised
    an OSError on every call, which the task retried."""
    verify = conn.extra_dejson.get("verify", True)
    if isinstance(verify, str) and verify.strip().lower() in ("true", "false"):
        return verify.strip().lower() == "true"
    if isinstance(verify, bool) or (isinstance(verify, str) and os.path.exists(verify)):
        return verify
    raise ConfigurationError(
        f"Airflow connection {conn.conn_id!r}: extra verify={verify!r} is neither true, false nor the path of "
        "a CA bundle on this machine"
    )


def _shown_host(host: str | None) -> str | None:
    """A connection's host as a task's error may show it: userinfo (a token put there by mistake,
    `http://x:<token>@h`) as ***@, everything up to the last @."""
    if not host or "@" not in host:
        return host
    scheme, separator, rest = host.partition("://") if "://" in host else ("", "", host)
    return f"{scheme}{separator}***{rest[rest.rindex('@') :]}"


def _api_url(conn) -> str:
    """The API's base URL from an http connection: `scheme` in extra (or `schema` http/https), host,
    port, and any other `schema` as the path the API is mounted under (a URI's path lands there)."""
    # An @ too: `x:<token>@h` is no host name, and the URL made of it shows the token in every error.
    if not conn.host or "://" in conn.host or "/" in conn.host or "@" in conn.host:
        raise ConfigurationError(
            f"Airflow connection {conn.conn_id!r}: host must be a host name, got {_shown_host(conn.host)!r} "
            '(the scheme goes in the connection type or extra {"scheme": "https"}, a path in schema)'
        )
    schema = (conn.schema or "").strip("/")
    # A URI https://... gives the connection type https; the http provider's type is http.
    typed = {"https": "https"}.get(conn.conn_type, "http")
    scheme = conn.extra_dejson.get("scheme") or (schema if schema in ("http", "https") else typed)
    path = "" if schema in ("", "http", "https") else f"/{schema}"
    port = f":{conn.port}" if conn.port else ""
    url = f"{scheme}://{_url_host(conn.host)}{port}{path}"
    # A URL urllib3 cannot parse fails every request and every retry alike: refuse it now, named.
    try:
        parse_url(url)
    except LocationParseError as error:
        raise ConfigurationError(f"Airflow connection {conn.conn_id!r}: no usable API URL {url!r}: {error}") from None
    return url


def _url_host(host: str) -> str:
    """The host as a URL holds it: an IPv6 address in brackets (`http://::1:15000` parses as no URL).
    Airflow gives `::1` for both a JSON host "::1" and a URI's `[::1]`."""
    bare = host.strip("[]")
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return host  # a name or an IPv4 address; anything else the URL check refuses
    return f"[{bare}]" if address.version == 6 else bare


def base_b_asset(entity: str) -> Asset:
    """What both DAGs write: an entity's table in Base B, behind the API."""
    return Asset(name=f"base_b.{entity}", uri=f"base-b://api/{entity}", group="base_b")


# The outlet of the tasks that write Base B: through an alias, so a run that changed nothing emits
# no asset event (a static outlet emits one on every success: a DAG scheduled on base_b.<entity>
# would run every minute for the events DAG's empty drains).
BASE_B_CHANGES = AssetAlias("base_b.changes")
# The events DAG's task takes the next free executor slot before any batch task waiting for one: a
# partitioned first load queues many tasks, and the events lagged minutes behind them. Absolute: no
# batch task's weight (1 plus its downstream tasks under Airflow's default rule) comes near it.
EVENTS_PRIORITY_WEIGHT = 1000


def _announce(changed: dict[str, int]) -> None:
    """An asset event for each entity whose rows in Base B this task changed, with the counts."""
    outlet = get_current_context()["outlet_events"][BASE_B_CHANGES]
    for entity, count in changed.items():
        if count:
            outlet.add(base_b_asset(entity), extra={"changed_rows": count})


@fail_terminal
def plan_partitions(entity: str) -> list[dict]:
    """The key ranges of a large first load or full refresh, computed now (never at parse time); [] otherwise."""
    _skip_unless_selected(entity)
    settings = _settings()
    with _connected(settings, entity) as (base_a, api):
        store = VariableStateStore()
        full_refresh = sync.refresh_wanted(entity, base_a, store, bool(_params().get("full_refresh")))
        planned = partitioned.plan(entity, base_a, store, settings, full_refresh)
        if planned:  # read before any partition reads a row: what the commit records (`load`)
            ti = get_current_context()["ti"]
            ti.xcom_push(key=READ_WITH_KEY, value=sync.read_with(entity, base_a))
            # The partitions and the load start together after this task: the run's mark goes first.
            ti.xcom_push(key=RUN_MARK, value=sync.mark_run(entity, api, store).to_json())
    return [partition.to_json() for partition in planned]


READ_WITH_KEY = "read_with"  # plan_partitions' XCom: the mapping digest and column definitions of a partitioned load
# The run's sync mark in Base B (`sync.mark_run`), written before the run's first write there: in
# plan_partitions' XCom for a partitioned load, and in load's result always (the later tasks read it).
RUN_MARK = "run_mark"


@fail_terminal
def load(entity: str, partitions: list[dict]) -> dict:
    """Extract after the watermark (everything on `full_refresh`) and push to the bulk endpoint;
    nothing to extract when the run's load is partitioned (the mapped `load_partition` tasks do it)."""
    _skip_unless_selected(entity)
    partitions = _upstream(partitions, "plan_partitions", entity)
    settings, params, store = _settings(), _params(), VariableStateStore()
    with _connected(settings, entity, report_schema=True) as (base_a, api):
        if partitions:  # written by plan_partitions, before the partitions (none from an earlier version's plan)
            run_mark = RunMark.from_json(
                get_current_context()["ti"].xcom_pull(task_ids=f"{entity}.plan_partitions", key=RUN_MARK)
            )
        else:  # before this task's first write (the replay's, the load's); each try writes its own
            run_mark = sync.mark_run(entity, api, store)
        replayed = (
            sync.replay_rejections(entity, base_a, api, settings).to_json() if params.get("replay_rejections") else None
        )
        if partitions:
            report = partitioned.left_to_partitions(entity, store, len(partitions))
        else:
            full_refresh = sync.refresh_wanted(entity, base_a, store, bool(params.get("full_refresh")))
            report = sync.load(entity, base_a, api, store, settings, full_refresh)
        # The mapping and column definitions this load read with: the commit records them (read then, a
        # mapping deployed or an ALTER made between the two tasks would be recorded over rows read the
        # old way, and no refresh would follow). Partitions read beside this task, maybe long before it
        # runs: what plan_partitions read before any of them (read now only for a run planned by a
        # version that did not push it).
        planned_with = partitions and get_current_context()["ti"].xcom_pull(
            task_ids=f"{entity}.plan_partitions", key=READ_WITH_KEY
        )
        read_with = planned_with or sync.read_with(entity, base_a)
    mark = run_mark.to_json() if run_mark else None
    return {**report.to_json(), "replayed": replayed, PARTITIONS_KEY: len(partitions), **read_with, RUN_MARK: mark}


PARTITIONS_KEY = "partitions"  # in load's XCom: how many key ranges the mapped tasks load (0: none)
# The mapped load_partition's name in the UI (its map_index_template): its range, `Partition.label`,
# through the DAG's filter `partition_label` (PARTITION_FILTERS), from the task's own argument.
# Airflow (3.3 here; apache/airflow#57208) renders the template once before the task body runs, with
# the task's expanded arguments in the context, and sends it: the name shows while the partition
# runs, and stays on a try killed mid-way. A name the body set in the context would show only once
# the try ended by itself.
PARTITION_LABEL = "partition_label"
PARTITION_MAP_INDEX = "{{ task.op_kwargs['partition'] | " + PARTITION_LABEL + " }}"


def partition_label(partition: dict) -> str:
    """A planned partition's name in the UI: "2/4: keys 250001..500000"."""
    return Partition.from_json(partition).label


PARTITION_FILTERS = {PARTITION_LABEL: partition_label}  # the DAG's user_defined_filters


@fail_terminal
def load_partition(entity: str, partition: dict) -> dict:
    """Stream one key range of a partitioned load to the bulk endpoint and verify that range (a mapped task)."""
    settings, planned = _settings(), Partition.from_json(partition)
    with _connected(settings, planned.entity) as (base_a, api):
        return partitioned.load_partition(planned, base_a, api, settings).to_json()


# The circuit breaker's tasks in an entity's group (the group id is the entity).
CHECK_DELETES, APPROVE_MASS_DELETE, PROPAGATE_DELETES = "check_deletes", "approve_mass_delete", "propagate_deletes"
PLAN_KEY = "plan"  # the XCom key of check_deletes' plan (its return value is the branch taken)
PLAN_ID = "plan_id"  # each plan's own; propagate_deletes' result names the plan it deleted by


def deletes_of_plan(deleted: dict | None, plan: dict | None) -> dict | None:
    """propagate_deletes' result (`deleted`) when it deleted by this try's `plan`; None when it did not run
    on it (a rejected mass delete skipped it). Airflow (3.3) removes a task's XComs only when the task runs
    again: after check_deletes is cleared with its downstream tasks and the new prompt rejected, the skipped
    task's result of an earlier try is still there, and taken for this try's it moved the delete log
    position past deletes never made."""
    if deleted is None or (plan is not None and deleted.get(PLAN_ID) != plan.get(PLAN_ID)):
        return None
    return deleted


def _plan_xcom(entity: str) -> str:
    return f"ti.xcom_pull(task_ids='{entity}.{CHECK_DELETES}', key='{PLAN_KEY}')"


def _with_plan(entity: str, template: str) -> str:
    """`template` over `plan`, check_deletes' plan. Without one (check_deletes marked success by hand,
    or the approval run alone) it says so instead: the fields render before `execute`, which then
    fails naming the task to clear (an error while rendering was retried, holding the DAG's run)."""
    missing = f"{entity}: {CHECK_DELETES} left no plan, nothing to approve"
    return f"{{% set plan = {_plan_xcom(entity)} %}}{{% if plan %}}{template}{{% else %}}{missing}{{% endif %}}"


def approval_subject(entity: str) -> str:
    """The approval's headline (a template: rendered with the plan when the task runs)."""
    return _with_plan(
        entity,
        f"{entity}: delete {{{{ '' if plan['exact'] else 'at most ' }}}}{{{{ plan['total'] }}}} rows in Base B? "
        "(limit {{ plan['limit'] }}{{ ', held by the events path' if plan['held_by_events'] else '' }})",
    )


def approval_body(entity: str) -> str:
    """The approval's details for the operator (a Markdown template over the plan)."""
    return _with_plan(
        entity,
        # Why it asks: over the limit, or any delete at all while the events path holds some (below the limit).
        f"The batch sync of **{entity}** stopped before deleting: "
        "{% if plan['total'] > plan['limit'] %}the circuit breaker found more deletes than a run makes unasked."
        "{% else %}the events path holds deletes of this entity (a mass delete it met), so every delete the batch "
        "finds of it asks first, however few.{% endif %}\n\n{{ plan['summary'] }}.\n\n"
        "{% if plan['held_by_events'] %}**Approve** to delete the rows answered now, no more: the events path "
        "holds deletes of this entity, so deletes found after the count ask again. {% else %}**Approve** to delete "
        "them now (and as many more as the limit, for changes since the count). {% endif %}"
        "**Reject**, or no answer in time, deletes nothing: the load and the watermark go on, the deletes wait, and "
        "the next run asks again. Fix the cause in Base A first when the deletes are a mistake.",
    )


def _compare_keys(params: dict) -> bool:
    return bool(params.get("full_refresh") or params.get("compare_keys"))


@fail_terminal
def check_deletes(entity: str) -> str:
    """Count the deletes the run would make (no writes) against the circuit breaker's budget; the branch:
    `propagate_deletes` when within it or approved by the `approve_mass_delete` param, else the approval."""
    _skip_unless_selected(entity)
    settings, params = _settings(), _params()
    run_mark = _run_mark(_loaded(entity))  # what Base B held before the load: no read of the mark here
    approved = bool(params.get("approve_mass_delete"))
    with _connected(settings, entity) as (base_a, api):  # the plan's log line says what follows
        plan = sync.plan_deletes(
            entity,
            base_a,
            api,
            VariableStateStore(),
            settings,
            _compare_keys(params),
            run_mark=run_mark,
            approved_by_param=approved,
        )
    get_current_context()["ti"].xcom_push(key=PLAN_KEY, value={**plan.to_json(), PLAN_ID: uuid.uuid4().hex})
    if plan.within_budget or approved:
        return f"{entity}.{PROPAGATE_DELETES}"
    log.warning("%s: waiting for an operator's answer to %s", entity, APPROVE_MASS_DELETE)
    return f"{entity}.{APPROVE_MASS_DELETE}"


ROWS = "rows"  # the approval's field: how many rows the operator approves
ASKED_KEY = "asked"  # the XCom key of what an approval task asked: {"rows": n, "fresh": bool}


class MassDeleteApproval(ApprovalOperator):
    """Airflow 3's `ApprovalOperator` whose answer is bound to a count: a field `rows`, filled with the
    plan's count, names how many rows the operator approves (the UI's form shows it beside the text).

    A cleared task asks again with the prompt its first try wrote: Airflow keeps a task instance's
    human-in-the-loop detail, subject, body and fields, across clears. An approval of such a prompt
    must not cover the count of today's try, which the operator never saw: only the `rows` answered
    count, and an answer without them (a REST call with the chosen option alone) counts the plan's
    rows only on a first try, whose prompt is its own."""

    def __init__(self, *, entity: str, **kwargs):
        super().__init__(
            subject=approval_subject(entity),
            body=approval_body(entity),
            defaults=ApprovalOperator.REJECT,  # no answer in time: nothing is deleted
            **kwargs,
        )
        self.entity = entity

    def execute(self, context):
        ti = context["ti"]
        try:
            plan = _upstream(
                ti.xcom_pull(task_ids=f"{self.entity}.{CHECK_DELETES}", key=PLAN_KEY), CHECK_DELETES, self.entity
            )
        except TerminalError as error:  # no retry asks anything else
            raise AirflowFailException(f"{APPROVE_MASS_DELETE}: {error}") from error
        rows = plan["total"]
        description = "approve deleting at most this many rows" + (
            " (no more: the events path holds deletes of this entity)"
            if plan.get("held_by_events")
            else " (and the limit more, for deletes since the count)"
        )
        # Nullable: a form with the field emptied still offers Reject (Airflow greys out both options
        # while a required field is empty); an Approve without a count is refused in `approved_rows`.
        field = Param(rows, type=["integer", "null"], minimum=0, description=description)
        self.params = ParamsDict({ROWS: field})
        ti.xcom_push(key=ASKED_KEY, value={ROWS: rows, "fresh": ti.try_number <= 1, PLAN_ID: plan.get(PLAN_ID)})
        return super().execute(context)


def approved_rows(answer: dict | None, asked: dict | None, plan: dict) -> int | None:
    """The rows an approval allows (the rows approved, plus the limit for deletes since the count
    when they cover it); None when it was no approval. `asked`: what the approval task asked, see
    `MassDeleteApproval`."""
    if not answer or ApprovalOperator.APPROVE not in (answer.get("chosen_options") or []):
        return None
    if asked and PLAN_ID in asked and asked[PLAN_ID] != plan.get(PLAN_ID):
        # An answer to an earlier plan's prompt: Airflow keeps a skipped task's XComs, so a run whose
        # check_deletes was cleared and found this plan within budget (no prompt) still holds it. (A
        # prompt asked by a version that named no plan, in a run across the upgrade, counts as before.)
        return None
    given = answer.get("params_input") or {}
    if ROWS in given and given[ROWS] is None:
        raise ConfigurationError(
            f"the approval was answered with the `{ROWS}` field empty: nothing was deleted. This try counted "
            f"{plan['total']} rows; clear {CHECK_DELETES} with its downstream tasks and approve with `{ROWS}` at "
            "that count or more, or trigger a run with approve_mass_delete"
        )
    rows = given.get(ROWS)
    if rows is None and asked and asked.get("fresh"):
        rows = asked[ROWS]
    if rows is None:
        raise ConfigurationError(
            "the approval answered no rows on a prompt that may show an earlier try's count (Airflow keeps a "
            f"cleared task's first prompt): this try counted {plan['total']} rows, nothing was deleted. Clear "
            f"{CHECK_DELETES} with its downstream tasks and approve with params_input "
            f'{{"{ROWS}": {plan["total"]}}} (the UI\'s form may show the earlier count: type this one; an answer '
            "given cannot be changed), or trigger a run with approve_mass_delete"
        )
    count = _approved_count(rows)
    # The limit on top covers deletes found since the count, never rows of it the operator left out
    # (100 approved of 195 asked let all 195 go under a limit of 100); nor, while the events path
    # holds deletes, deletes held since the prompt.
    if plan.get("held_by_events") or count < plan["total"]:
        return count
    return count + plan["limit"]


def _approved_count(rows) -> int:
    """The `rows` answered as a count. Airflow stores whatever a REST answer sends in the field, and a
    retry reads the same answer: anything but a whole number of rows fails at once, named."""
    if isinstance(rows, str) and re.fullmatch(r"[0-9]+", rows.strip()):  # isdigit() takes "³", int() not
        rows = int(rows)
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise ConfigurationError(
            f"the approval answered rows={rows!r}, which is no count of rows: nothing was deleted. Clear "
            f"{CHECK_DELETES} with its downstream tasks and approve with `{ROWS}` a whole number, at least the rows "
            "to delete, or trigger a run with approve_mass_delete"
        )
    return rows


def _approved(entity: str, params: dict, plan: dict | None) -> int | None:
    """What an operator approved: any number (the run's param), or, answered to the approval task,
    `approved_rows`; None when no one was asked."""
    if params.get("approve_mass_delete"):
        return delete_guard.ANY_NUMBER
    ti = get_current_context()["ti"]
    approval = f"{entity}.{APPROVE_MASS_DELETE}"
    return approved_rows(ti.xcom_pull(task_ids=approval), ti.xcom_pull(task_ids=approval, key=ASKED_KEY), plan)


def _plan(entity: str) -> dict | None:
    return get_current_context()["ti"].xcom_pull(task_ids=f"{entity}.{CHECK_DELETES}", key=PLAN_KEY)


def _run_mark(loaded: dict | None) -> RunMark | None:
    """The run's sync mark, from load's result (None: loaded by an earlier version, which wrote none)."""
    return RunMark.from_json((loaded or {}).get(RUN_MARK))


def _loaded(entity: str) -> dict | None:
    return get_current_context()["ti"].xcom_pull(task_ids=f"{entity}.load")


@fail_terminal
def propagate_deletes(entity: str) -> dict:
    """Delete in Base B the synced rows whose key Base A no longer has (its delete log, a key comparison),
    within the circuit breaker's budget or what an operator approved."""
    settings, params, plan = _settings(), _params(), _plan(entity)
    approved, run_mark = _approved(entity, params, plan), _run_mark(_loaded(entity))
    with _connected(settings, entity) as (base_a, api):
        report = sync.propagate_deletes(
            entity, base_a, api, VariableStateStore(), settings, _compare_keys(params), approved, run_mark
        )
    return {**report.to_json(), PLAN_ID: (plan or {}).get(PLAN_ID)}


@fail_terminal
def verify(entity: str, loaded: dict) -> dict:
    """Base A against Base B over the loaded window; repairs what it can, else fails the run."""
    settings, loaded = _settings(), _upstream(loaded, "load", entity)
    if loaded.get(PARTITIONS_KEY):
        return partitioned.verified_by_partitions(entity, loaded[PARTITIONS_KEY]).to_json()
    with _connected(settings, entity) as (base_a, api):
        return sync.verify(entity, base_a, api, LoadReport.from_json(loaded), settings).to_json()


@fail_terminal
def commit_watermark(
    entity: str,
    loaded: dict,
    verified: dict,
    partitions: list[dict] | None,
    planned: list[dict] | None,
) -> dict:
    """Advance the watermark to the verified window's end (of every partition of the run's plan,
    `planned`, when the load was partitioned); record the run's statistics with it.

    `partitions` holds every result Airflow kept of the mapped load_partition, those of map indexes
    an earlier plan of the run made and a new one dropped too: only the current plan's count
    (`partitioned.reports_of_plan`).

    It runs when nothing upstream failed (the mapped partitions are skipped on unpartitioned runs)
    and something succeeded: not for an entity the run's `entities` leaves out, whose every task is
    skipped (checked here too). When the deletes were withheld (a rejected mass delete), the delete
    log position and key comparison time stay where they were: the next run finds the same deletes
    and asks again.

    propagate_deletes' result is read here, not taken as an argument: a rejection skips that task,
    and Airflow (3.3) resolving a skipped task's result as a TaskFlow argument logs
    `[error] XCom not found` in a successful run; `xcom_pull` without map indexes finds none quietly."""
    _skip_unless_selected(entity)
    loaded, verified = _upstream(loaded, "load", entity), _upstream(verified, "verify", entity)
    plan = _plan(entity)
    deleted = deletes_of_plan(get_current_context()["ti"].xcom_pull(task_ids=f"{entity}.{PROPAGATE_DELETES}"), plan)
    withheld = deleted is None  # propagate_deletes was skipped: the mass delete was rejected (or not answered)
    if withheld:
        deleted = sync.deletes_withheld(entity, VariableStateStore(), plan)
    current = [Partition.from_json(p) for p in _upstream(planned, "plan_partitions", entity)]
    # One slice read of them all: iterated, Airflow's lazy sequence reads item by item until one past
    # the end, which Airflow (3.3) logs as `[error] XCom not found` in every partitioned run.
    gathered = [PartitionReport.from_json(p) for p in (partitions or [])[:]]
    reports = partitioned.reports_of_plan(entity, current, gathered)
    report, partition_verify = partitioned.combine(LoadReport.from_json(loaded), reports)
    stats = {"run_id": get_current_context()["run_id"], "load": loaded, "verify": verified, "deletes": deleted}
    for key in (sync.MAPPING_DIGEST, sync.COLUMN_DEFINITIONS):  # what the load read with
        stats[key] = loaded.get(key)
    if reports:
        stats |= {
            "load": {**report.to_json(), "replayed": loaded.get("replayed")},
            "verify": partition_verify.to_json(),
            "partitions": [p.to_json() for p in reports],
        }
    # Withheld deletes too: the commit checks the run's mark (a restore during the run), and writes none
    # over a restore the run found and, its deletes withheld, did not mend (`sync.commit`).
    api = _api(_settings(), "batch")
    try:
        watermark = sync.commit(entity, VariableStateStore(), report, stats, api, _run_mark(loaded))
    finally:
        api.close()
    _emit(metrics.batch_samples(entity, report.counts, deleted.get("deleted", 0), watermark and watermark.updated_at))
    mended = sum(deleted.get(name, 0) for name in ("resent_behind", "replaced_ahead", "resent_unique"))
    mended += (verified or {}).get("repaired", 0)
    _announce({entity: _changed(report.counts) + deleted.get("deleted", 0) + mended})
    return {"watermark": watermark.to_json() if watermark else None, **stats}


@fail_terminal
def apply_changes() -> dict:
    """Drain the change-event topics through the bulk endpoints; commit offsets after each accepted batch."""
    _refuse_unknown_conf()
    settings = EventSettings()
    kafka_config = _connection(settings.kafka_conn_id).extra_dejson
    consumer = events.consumer_for(kafka_config, settings)
    producer = events.producer_for(kafka_config)
    api = _api(settings, "events")
    try:
        # The token is the API's, for every entity: checked on one the events path syncs (a failure names it).
        synced = Topics.from_settings(settings).entities
        api.check_writes(synced[0] if synced else next(iter(ENTITIES)))
        report = events.drain(
            consumer, producer, api, settings, held_deletes=VariableStateStore().held_deletes, kafka_config=kafka_config
        )
    finally:
        consumer.close()
        producer.flush(30)
        api.close()
    _emit(
        metrics.events_samples(
            report.entities,
            report.by_entity,
            report.dead_by_kind,
            report.lag,
            report.event_lag_seconds(),
            lost_to_retention=report.counts["lost_to_retention"],
        )
    )
    _emit(_waiting_letters(settings, kafka_config))
    _announce({entity: _changed(counts) + counts.get("deleted", 0) for entity, counts in report.by_entity.items()})
    return report.to_json()


# When a drain last counted the dead letters waiting (epoch seconds): each run is a new process.
DEAD_LETTERS_COUNTED_AT = "base_a_events.dead_letters_counted_at"


def _waiting_letters(settings: EventSettings, kafka_config: dict) -> list[tuple[str, str, float]]:
    """The dead letters waiting (not replayed), by kind, when the last count is EVENTS_DLQ_COUNT_SECONDS
    old: a count reads the whole dead-letter topic. Between counts statsd-exporter keeps the last one.
    A count that fails is not the run's failure (the drain's work is done, the next run counts): it
    is logged and sent as a failed count, since the waiting gauges stay as last counted."""
    now = time.time()
    # Any error, the Variable's too, is logged, never the run's failure (review: an Airflow API error
    # failed a run whose offsets were committed); with its traceback, so a fault here is seen.
    try:
        counted_at = Variable.get(DEAD_LETTERS_COUNTED_AT, default=None)
        if not dead_letters.count_due(counted_at, now, settings.dlq_count_seconds):
            return []
        waiting = dead_letters.waiting_by_kind(kafka_config, settings.dlq_topic)
    except Exception as error:
        log.warning("the dead letters waiting were not counted (the next run tries again): %s", error, exc_info=True)
        return metrics.dead_letters_count_samples(metrics.COUNT_FAILED, time.time())
    try:
        Variable.set(DEAD_LETTERS_COUNTED_AT, str(now), description="when base_a_events last counted its dead letters")
    except Exception as error:
        log.warning("the time of this count was not kept (the next run counts again): %s", error, exc_info=True)
    log.info("dead letters waiting (not replayed): %s", {kind: n for kind, n in waiting.items() if n} or "none")
    return metrics.waiting_samples(waiting) + metrics.dead_letters_count_samples(metrics.COUNTED, now)


def _changed(counts) -> int:
    return counts.get("inserted", 0) + counts.get("updated", 0)


def _emit(samples: list[tuple[str, str, float]]) -> None:
    """Through Airflow's StatsD client (no-op unless [metrics] statsd_on), beside Airflow's own metrics."""
    for kind, name, value in samples:
        if kind == "incr":
            Stats.incr(name, int(value))
        else:
            Stats.gauge(name, value)

"""docker-compose.yaml is well formed (no Docker engine here to run it)."""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from testbed.servers import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
# The Compose specification's schema, vendored unchanged (data/README.md says from where).
SPEC = json.loads((Path(__file__).parent / "data" / "compose-spec.json").read_text())


def validator_class(schema: dict) -> type[jsonschema.protocols.Validator]:
    """The jsonschema validator for the draft the schema's `$schema` names."""
    named = schema["$schema"]
    # compose-spec names "https://json-schema.org/draft-07/schema"; jsonschema knows the draft by its
    # http:// id and, for a name it does not know, silently falls back to the newest draft.
    for uri in (named, named.replace("https://", "http://", 1)):
        found = jsonschema.validators.validator_for({"$schema": uri}, default=None)
        if found is not None:
            return found
    raise AssertionError(f"jsonschema has no validator for $schema {named!r}")


def spec_errors(document: object) -> list[str]:
    """Every way the document breaks the Compose specification, as sorted "path: message" lines."""
    lines = []
    for error in validator_class(SPEC)(SPEC).iter_errors(document):
        # A failed oneOf/anyOf only says "not valid under any of the given schemas"; the alternative
        # that got furthest into the document is the one its author meant, so report that.
        meant = error
        while meant.context:
            meant = max(meant.context, key=lambda alternative: len(alternative.absolute_path))
        lines.append(f"{meant.json_path}: {meant.message}")
    return sorted(lines)


def test_the_vendored_compose_schema_is_a_valid_schema():
    validator = validator_class(SPEC)
    assert validator is jsonschema.Draft7Validator, "the schema moved to a new draft: check data/README.md"
    validator.check_schema(SPEC)


def test_docker_compose_follows_the_compose_specification():
    errors = spec_errors(COMPOSE)
    assert not errors, "docker-compose.yaml breaks the Compose specification:\n" + "\n".join(errors)


def test_the_schema_check_rejects_a_broken_compose_file():
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["api"]["healthchek"] = broken["services"]["api"].pop("healthcheck")
    broken["services"]["graphql"]["depends_on"]["api"]["condition"] = "service_ready"
    errors = spec_errors(broken)
    assert len(errors) == 2, errors  # every error, not only the first
    assert errors[0].startswith("$.services.api: ") and "'healthchek'" in errors[0], errors
    assert errors[1].startswith("$.services.graphql.depends_on.api.condition: 'service_ready' is not one of"), errors


def test_every_service_has_an_image_or_a_build_that_exists():
    for name, service in COMPOSE["services"].items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            assert (REPO / service["build"] / "Dockerfile").is_file(), name


def test_dependencies_name_real_services_and_servers_have_health_checks():
    services = COMPOSE["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], dependency


def test_secrets_have_no_defaults():
    text = (REPO / "docker-compose.yaml").read_text()
    for variable in (
        "MYSQL_ROOT_PASSWORD",
        "BASE_A_PASSWORD",
        "BASE_A_SYNC_PASSWORD",
        "BASE_A_RELAY_PASSWORD",
        "POSTGRES_PASSWORD",
        "API_TOKENS",
        "GRAFANA_ADMIN_PASSWORD",
    ):
        uses = re.findall(r"\$\{" + variable + r"(:?[-?][^}]*)?\}", text)
        assert uses, variable
        assert all(not use or use.startswith(":?") for use in uses if use), variable
        assert f"{variable}=" in (REPO / ".env.example").read_text()


# A secret's variable as compose ($${NAME}, $$NAME: the container's) or a shell ($NAME) writes it.
SECRET_VARIABLE = re.compile(r"\$+\{?(?P<name>\w*(?:PASSWORD|PASSWD|PWD|SECRET|TOKENS?|KEY)\w*)", re.I)
SHELL_OPERATORS = frozenset(";&|()")


def argv_secrets(shell: str) -> list[str]:
    """The secret variables a shell command line puts in some process's arguments, which `ps` and
    /proc/*/cmdline show every user of the host (a container's processes too). A secret may reach a
    command only by its environment (`MYSQL_PWD=$X mysql ...`, before the command's name) or on stdin."""
    lexer = shlex.shlex(shell.replace("\\\n", " "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    found, assigning = [], True
    for token in lexer:
        if set(token) <= SHELL_OPERATORS:  # the next command begins
            assigning = True
            continue
        if assigning and re.match(r"[A-Za-z_]\w*=", token):  # NAME=value: the command's environment
            continue
        assigning = False
        found += [m["name"] for m in SECRET_VARIABLE.finditer(token)]
        if re.match(r"-p['\"]?\$", token):  # mysql's -p$PASSWORD, whatever the variable's name
            found.append(token)
    return found


def _command_lines(compose: dict) -> Iterator[tuple[str, str, bool]]:
    """(where, text, is_shell) of every service's command, entrypoint and health check."""
    for name, service in compose["services"].items():
        for key, value in (
            ("command", service.get("command")),
            ("entrypoint", service.get("entrypoint")),
            ("healthcheck", (service.get("healthcheck") or {}).get("test")),
        ):
            if isinstance(value, str):
                yield f"{name}.{key}", value, True
            elif isinstance(value, list) and value and value[0] == "CMD-SHELL":
                yield f"{name}.{key}", " ".join(value[1:]), True
            elif isinstance(value, list):  # exec form: each item is an argument as it stands
                for item in value:
                    yield f"{name}.{key}", str(item), False


def _script_lines(path: Path) -> Iterator[str]:
    """A shell script's command lines, continuations joined; heredoc bodies (stdin) left out."""
    end = None
    for line in path.read_text().replace("\\\n", " ").splitlines():
        if end is not None:
            end = None if line.strip() == end else end
            continue
        heredoc = re.search(r"<<-?\s*['\"]?(\w+)", line)
        end = heredoc[1] if heredoc else None
        yield line


def test_no_command_or_health_check_puts_a_password_on_its_command_line():
    """The probe found the MySQL health check running `mysqladmin -p"$MYSQL_ROOT_PASSWORD"` every 5 s."""
    for where, text, is_shell in _command_lines(COMPOSE):
        found = argv_secrets(text) if is_shell else [m["name"] for m in SECRET_VARIABLE.finditer(text)]
        assert not found, f"{where} puts {found} on a command line: pass it by environment ({text})"


@pytest.mark.parametrize("script", sorted((REPO / "deploy").glob("*-init/*.sh")), ids=lambda p: p.parent.name)
def test_the_database_init_scripts_put_no_password_on_a_command_line(script):
    """01-accounts.sh ran `mysql -uroot -p"$MYSQL_ROOT_PASSWORD"`, 01-airflow.sh `psql -v airflow_password=...`."""
    for line in _script_lines(script):
        assert not argv_secrets(line), f"{script.name} puts a password on a command line: {line.strip()}"


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ('mysqladmin ping -uroot -p"$$MYSQL_ROOT_PASSWORD" --silent', True),
        ("mysql -uroot -p$X -e 'select 1'", True),
        ('psql -v airflow_password="$AIRFLOW_DB_PASSWORD" -d x', True),
        ("cd /x && curl -u admin:${GRAFANA_ADMIN_PASSWORD} http://g", True),
        ('MYSQL_PWD="$$MYSQL_ROOT_PASSWORD" mysqladmin ping -h 127.0.0.1 -uroot --silent', False),
        ("set -e; PGPASSWORD=$POSTGRES_PASSWORD psql -h db -U base_b <<'SQL'", False),
        ("pg_isready -U base_b -d base_b", False),
    ],
)
def test_the_command_line_check_tells_an_argument_from_the_environment(line, found):
    assert bool(argv_secrets(line)) == found, argv_secrets(line)


def test_every_mounted_host_path_exists():
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repository"


def test_the_relay_reads_the_binlog_the_mysql_service_writes():
    mysql = " ".join(COMPOSE["services"]["mysql"]["command"])
    for setting in ("--log-bin", "--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL"):
        assert setting in mysql
    relay = COMPOSE["services"]["relay"]["environment"]
    assert relay["RELAY_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert COMPOSE["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft


def test_every_service_that_runs_for_ever_is_restarted_and_no_one_shot_job_is():
    """Found from outside: only the relay had a restart policy. A PostgreSQL restart ended the
    scheduler, the dag-processor and the triggerer (exit 1) and a kill -9 the gateway, for good: runs
    stayed queued until someone ran `up -d`, and a host reboot would have brought back the relay
    alone. The one-shot jobs others wait for (`service_completed_successfully`) must not be
    restarted: `unless-stopped` would run a finished migration again and again."""
    services = COMPOSE["services"]
    one_shot = {
        name
        for service in services.values()
        for name, condition in (service.get("depends_on") or {}).items()
        if isinstance(condition, dict) and condition.get("condition") == "service_completed_successfully"
    }
    assert {"api-migrate", "airflow-init", "kafka-topics", "base-a-init"} <= one_shot
    for name, service in services.items():
        if name in one_shot:
            assert service.get("restart") in (None, "no", "on-failure"), name
        else:
            assert service.get("restart") in ("unless-stopped", "always"), f"{name} stays down after it exits"


def test_every_airflow_process_shares_one_jwt_secret_database_and_the_connections():
    airflow = {n: s for n, s in COMPOSE["services"].items() if n.startswith("airflow-")}
    assert set(airflow) == {
        "airflow-init",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
    }
    environments = [s["environment"] for s in airflow.values()]
    assert all(env == environments[0] for env in environments)
    env = environments[0]
    assert "AIRFLOW_JWT_SECRET" in env["AIRFLOW__API_AUTH__JWT_SECRET"]
    for connection in ("AIRFLOW_CONN_BASE_A", "AIRFLOW_CONN_BASE_B_API", "AIRFLOW_CONN_BASE_A_KAFKA"):
        assert connection in env
    assert '"enable.auto.commit": "false"' in env["AIRFLOW_CONN_BASE_A_KAFKA"]
    for name, service in airflow.items():
        if name != "airflow-init":
            assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_the_change_topics_exist_before_the_triggerer_starts():
    """The events DAG's asset watcher reads them from the triggerer's start; the relay makes them only
    once it reaches Base A, and the triggerer logged a failure every 2 s until then."""
    services = COMPOSE["services"]
    topics = services["kafka-topics"]
    assert topics["command"][:3] == ["python", "-m", "base_sync.topics"]
    assert topics["environment"] == services["airflow-triggerer"]["environment"]  # the topics the DAG reads
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["airflow-triggerer"]["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully"


def test_housekeeping_runs_by_itself_with_airflow_and_base_b_within_reach():
    """Found from outside: nothing ran Airflow's housekeeping or Base B's purge by itself, so a compose
    stack grew for ever unless someone added cron lines. A service runs the daily round, with every
    Airflow setting (its `airflow db clean` reads the metadata database, its task logs live in the
    shared volume) and Base B's database (the purge), after both are migrated, restarted if it dies;
    the image carries the scripts it runs."""
    services = COMPOSE["services"]
    housekeeping = services["housekeeping"]
    assert housekeeping["command"] == ["bash", "scripts/daily-housekeeping.sh"]
    env = housekeeping["environment"]
    assert env.items() >= services["airflow-scheduler"]["environment"].items()
    assert env["API_DATABASE_URL"] == services["api-migrate"]["environment"]["API_DATABASE_URL"]
    assert housekeeping["volumes"] == services["airflow-scheduler"]["volumes"]
    for first in ("airflow-init", "api-migrate"):
        assert housekeeping["depends_on"][first]["condition"] == "service_completed_successfully"
    assert housekeeping.get("restart") == "unless-stopped"
    # Review: the check read the status's `ok` without its age (a hung round healthy for ever), and a
    # first round longer than its 10 min start period showed unhealthy. The script checks the age; the
    # start period is the time a round may take, the setting the script reads.
    check = housekeeping["healthcheck"]
    assert check["test"] == ["CMD", "bash", "scripts/daily-housekeeping.sh", "--health"]
    assert env["HOUSEKEEPING_ROUND_SECONDS"] == "${HOUSEKEEPING_ROUND_SECONDS:-7200}"
    assert check["start_period"] == "${HOUSEKEEPING_ROUND_SECONDS:-7200}s"
    copied = " ".join(line for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("COPY"))
    for script in ("scripts/daily-housekeeping.sh", "scripts/airflow-housekeeping.sh"):
        assert script in copied, f"the image lacks {script}"


def test_airflow_runs_on_celery_workers_with_redis_as_the_broker():
    services = COMPOSE["services"]
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    worker = services["airflow-worker"]
    assert worker["command"] == ["airflow", "celery", "worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert "healthcheck" in services["redis"] and "healthcheck" in worker
    assert services["airflow-init"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_api_and_graphql_run_several_replicas_behind_the_gateway():
    services = COMPOSE["services"]
    for name in ("api", "graphql"):
        assert services[name]["deploy"]["replicas"] >= 2, name
        assert "ports" not in services[name], f"{name}: replicas cannot share a host port; the gateway publishes it"
    assert services["gateway"]["ports"] == ["5000:5000", "5001:5001"]
    gateway_conf = (REPO / "deploy" / "gateway" / "gateway.conf").read_text()
    assert "http://api:5000" in gateway_conf and "http://graphql:5001" in gateway_conf
    # Clients inside the stack go through the gateway too, or one replica takes all their traffic.
    assert services["graphql"]["environment"]["REST_API_URL"] == "http://gateway:5000"
    assert '"host": "gateway"' in services["airflow-worker"]["environment"]["AIRFLOW_CONN_BASE_B_API"]


def test_kafka_ui_sits_beside_the_kafka_exporter():
    services = COMPOSE["services"]
    assert services["kafka-ui"]["image"].startswith("provectuslabs/kafka-ui:")
    assert services["kafka-ui"]["environment"]["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == "kafka:9092"
    assert "kafka-exporter" in services


class _ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags (`!reset`, `!override`), which an override file uses."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> tuple[str, object]:
    if isinstance(node, yaml.SequenceNode):
        return node.tag, loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return node.tag, loader.construct_mapping(node, deep=True)
    return node.tag, loader.construct_scalar(node)


_ComposeLoader.add_constructor("!reset", _tagged)
_ComposeLoader.add_constructor("!override", _tagged)


def test_the_standins_override_replaces_every_upstream_image_and_publishes_no_port():
    # tests/deploy/test_compose_stack.py cannot pull images: a service added with an upstream image
    # needs a stand-in (or the no-standin profile) in the override, or that test fails at pull time.
    override = yaml.load((Path(__file__).parent / "compose.standins.yaml").read_text(), _ComposeLoader)["services"]
    assert set(override) <= set(COMPOSE["services"]), "the override names services docker-compose.yaml lacks"
    for name, service in COMPOSE["services"].items():
        if "image" in service:
            replaced = override.get(name, {})
            assert replaced.get("image", "").startswith("baseab-standin/") or replaced.get("profiles") == [
                "no-standin"
            ], f"{name} ({service['image']}) has no stand-in in compose.standins.yaml"
        if "ports" in service and override.get(name, {}).get("profiles") != ["no-standin"]:
            assert override.get(name, {}).get("ports") == ("!reset", []), f"{name} publishes a port in the stack test"


def _megabytes(size: str) -> float:
    """Docker's json-file max-size ("10m", "512k", "1g") in MB."""
    number, unit = re.fullmatch(r"(\d+)([kmg])", size).groups()
    return int(number) * {"k": 1 / 1024, "m": 1, "g": 1024}[unit]


def test_every_service_rotates_its_log():
    """Found from outside: no service set a log limit, so every container's json-file log grew
    forever (Docker's default). Each one, a service added later too, rotates at most 5 x 10 MB."""
    for name, service in COMPOSE["services"].items():
        logging = service.get("logging")
        assert logging, f"{name} has no logging: its log grows without bound (use `logging: *logging`)"
        assert logging["driver"] == "json-file", name
        options = logging["options"]
        assert 0 < _megabytes(options["max-size"]) * int(options["max-file"]) <= 100, (name, options)
    assert COMPOSE["x-logging"] == {"driver": "json-file", "options": {"max-size": "10m", "max-file": "5"}}

"""Every settings class of the platform is an EnvSettings, and so shares its refusals."""

from __future__ import annotations

import importlib
import re
import typing
from pathlib import Path

import annotated_types
import pytest
import yaml
from pydantic_settings import BaseSettings

from env_settings import EnvSettings, InvalidSettings, variable_of, variables_read

# Where the platform declares settings: the services, the pipelines and the relay.
MODULES = (
    "api_service.settings",
    "graphql_service.settings",
    "base_sync.settings",
    "base_sync.mapping",
    "base_sync.relay",
)
OURS = ("api_service", "graphql_service", "base_sync", "env_settings")


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def settings_classes() -> list[type[BaseSettings]]:
    for module in MODULES:
        importlib.import_module(module)
    ours = [cls for cls in _subclasses(BaseSettings) if cls.__module__.split(".")[0] in OURS]
    return sorted((cls for cls in ours if cls is not EnvSettings), key=lambda cls: cls.__name__)


def float_variables() -> list[tuple[type[BaseSettings], str]]:
    return [
        (cls, variable_of(cls, name))
        for cls in settings_classes()
        for name, field in cls.model_fields.items()
        if field.annotation in (float, float | None)
    ]


def test_every_settings_class_is_an_env_settings():
    """A class on BaseSettings alone would refuse a value by its field name, in a traceback, and take inf."""
    classes = settings_classes()
    assert len(classes) >= 6, classes  # the modules above were imported: the walk found them
    assert [cls.__name__ for cls in classes if not issubclass(cls, EnvSettings)] == []


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
@pytest.mark.parametrize(("settings", "variable"), float_variables(), ids=lambda item: getattr(item, "__name__", item))
def test_no_float_setting_takes_an_infinite_or_nan_value(monkeypatch, settings, variable, value):
    """pydantic takes "inf" for a float: SYNC_API_TIMEOUT=inf failed a task with an OverflowError,
    API_DB_LOCK_TIMEOUT=inf every request, and "nan" was refused as "greater than 0". Refused at once,
    naming the variable and that a finite number is needed."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidSettings, match=f"^invalid settings: {variable}: Input should be a finite number$"):
        settings()


def _number_type(annotation: object) -> type | None:
    """int or float, for a field of that type (optional or not); None for any other (bool is no number)."""
    kinds = [kind for kind in typing.get_args(annotation) or (annotation,) if kind is not type(None)]
    if len(kinds) == 1 and kinds[0] in (int, float):
        return kinds[0]
    return None


def numeric_fields() -> list[tuple[type[BaseSettings], str, str]]:
    return [
        (cls, name, variable_of(cls, name))
        for cls in settings_classes()
        for name, field in cls.model_fields.items()
        if _number_type(field.annotation)
    ]


def upper_bound(settings: type[BaseSettings], name: str) -> float | None:
    """The field's `le` (or `lt`), None without one."""
    for rule in settings.model_fields[name].metadata:
        if isinstance(rule, annotated_types.Le):
            return rule.le
        if isinstance(rule, annotated_types.Lt):
            return rule.lt
    return None


def test_every_numeric_setting_has_an_upper_bound():
    """Found from outside: large but finite values were taken and failed far from their variable.
    API_DB_LOCK_TIMEOUT=1e20 is past PostgreSQL's lock_timeout (an int32 of milliseconds) and failed
    every request; SYNC_TASK_TIMEOUT_HOURS=1e300 overflowed a timedelta when the DAG was parsed. Every
    number a setting holds has an upper bound, a new one too (env_settings has the usual ones)."""
    fields = numeric_fields()
    assert len(fields) >= 40, fields  # the walk found the settings' numbers
    assert [variable for settings, name, variable in fields if upper_bound(settings, name) is None] == []


@pytest.mark.parametrize(
    ("settings", "name", "variable"), numeric_fields(), ids=lambda item: getattr(item, "__name__", item)
)
def test_a_number_past_its_bound_is_refused_naming_the_variable(monkeypatch, settings, name, variable):
    bound = upper_bound(settings, name)
    monkeypatch.setenv(variable, str(int(bound) + 1))
    with pytest.raises(InvalidSettings, match=f"^invalid settings: {variable}: Input should be less than"):
        settings()
    monkeypatch.setenv(variable, "1e300")  # a float the type takes, an int it does not: either way refused
    with pytest.raises(InvalidSettings, match=f"^invalid settings: {variable}: Input should be "):
        settings()


@pytest.mark.parametrize("settings", settings_classes(), ids=lambda cls: cls.__name__)
def test_every_default_number_is_within_its_bounds(monkeypatch, settings):
    """pydantic does not check a default: set as the variable (as the README's tables document it),
    each default is taken, so no bound refuses a value the platform ships with."""
    # A None default is no number: unset, the value is computed from others (SYNC_RUN_TIMEOUT_HOURS).
    given = [
        (n, v) for cls, n, v in numeric_fields() if cls is settings and settings.model_fields[n].default is not None
    ]
    for name, variable in given:
        monkeypatch.setenv(variable, str(settings.model_fields[name].default))
    made = settings()
    assert {name: getattr(made, name) for name, _ in given} == {
        name: settings.model_fields[name].default for name, _ in given
    }


# Where the repository reads environment variables, and how: the settings classes, the gunicorn settings,
# the DAGs, the scripts, the compose file and the deployment files (not tests, nor the benchmarks).
REPO = Path(__file__).resolve().parents[2]
PYTHON_READ = re.compile(  # os.environ["X"], os.environ.get("X"), os.getenv("X"), count_from_env("X", ...)
    r"""(?:environ\s*\[|environ\.(?:get|pop|setdefault)\(|getenv\(|_from_env\()\s*["']([A-Z][A-Z0-9_]*)["']"""
)
SHELL_READ = re.compile(r"\$[{(]?([A-Z][A-Z0-9_]*)")  # $X, ${X:-default}, $(X) in make
SHELL_SET = re.compile(r"(?:^|[\s;(])(?:export\s+)?([A-Z][A-Z0-9_]*)=", re.MULTILINE)  # X=... cmd, export X=...
HELM_ENV = re.compile(r"^\s*-\s*name:\s*([A-Z][A-Z0-9_]*)\s*$", re.MULTILINE)  # env: [{name: X, value: ...}]

# A name each way of reading is seen by (a rule that found nothing would let the list go stale): Python
# (gunicorn's settings, the CLI), a shell read and an assignment, compose's environment and its ${...},
# the helm values' env, a deploy script.
SEEN_BY_EACH_RULE = {
    "API_THREADS",
    "API_LOG_LEVEL",
    "BASE_A_URL",
    "BASE_A_SEED_EMPLOYEES",
    "RELAY_ADDRESS",
    "RELAY_HTTP_HOST",
    "BASE_A_PASSWORD",
    "SYNC_CHUNK_SIZE",
    "BASE_A_RELAY_PASSWORD",
}


def _files(*patterns: str) -> list[Path]:
    return sorted({path for pattern in patterns for path in REPO.glob(pattern) if path.is_file()})


def _compose_environment(compose: dict) -> set[str]:
    """The names a compose file sets for its services (mapping or `X=value` list): they read them."""
    names = set()
    shared = [value for key, value in compose.items() if key.startswith("x-")]  # anchors: x-airflow
    for service in [*compose.get("services", {}).values(), *shared]:
        environment = (service or {}).get("environment") or {}
        if isinstance(environment, dict):
            names.update(environment)
        else:
            names.update(item.split("=", 1)[0] for item in environment)
    return names


def variables_the_repository_reads() -> dict[str, set[str]]:
    """Every environment variable name the repository's own code reads or sets for its processes, and where."""
    found: dict[str, set[str]] = {}

    def add(names, path: Path) -> None:
        for name in names:
            found.setdefault(name, set()).add(str(path.relative_to(REPO)))

    for path in _files(
        "src/**/*.py",
        "api_service/**/*.py",
        "graphql_service/**/*.py",
        "dags/**/*.py",
        "scripts/**/*.py",
        "testbed/**/*.py",
        "deploy/**/*.py",
    ):
        add(PYTHON_READ.findall(path.read_text()), path)
    for path in _files("scripts/**/*.sh", "deploy/**/*.sh", "Makefile", "Dockerfile"):
        text = "\n".join(
            line.split(" #", 1)[0] for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        )
        add(SHELL_READ.findall(text) + SHELL_SET.findall(text), path)
    for path in _files("docker-compose.yaml", "deploy/**/*.yaml", "deploy/**/*.yml"):
        text = path.read_text()
        add(SHELL_READ.findall(text) + HELM_ENV.findall(text), path)
        if path.name.startswith("docker-compose"):
            add(_compose_environment(yaml.safe_load(text)), path)
    return found


def test_every_variable_read_with_a_settings_prefix_is_known_to_its_class():
    """A variable with a class's prefix that the class does not know is warned of as a misspelling when
    it is close to one it knows (SYNC_CHUNK_SZE). So every name the platform reads with a class's prefix,
    in the class or elsewhere (API_WORKERS in gunicorn's settings, BASE_A_URL in the CLI and the scripts),
    is a field's or in the class's `read_elsewhere`: a new one read elsewhere and not listed fails here."""
    classes = {cls.model_config["env_prefix"]: cls for cls in settings_classes()}
    found = variables_the_repository_reads()
    assert SEEN_BY_EACH_RULE <= set(found)  # the scan still sees every way of reading one
    unknown = {
        name: sorted(found[name])
        for name in found
        for prefix, cls in classes.items()
        if name.startswith(prefix) and name not in variables_read(cls)
    }
    assert unknown == {}, "add each to its class's read_elsewhere (or make it a field)"


def test_every_name_read_elsewhere_is_read():
    """The other way round: a name in `read_elsewhere` that nothing reads any more would be ignored when
    set, without a warning. And each has its class's prefix (the others are never checked)."""
    found = variables_the_repository_reads()
    listed = {name for cls in settings_classes() for name in cls.read_elsewhere}
    assert sorted(listed - set(found)) == []
    assert [
        name
        for cls in settings_classes()
        for name in cls.read_elsewhere
        if not name.startswith(cls.model_config["env_prefix"])
    ] == []

"""Every settings class of the platform is an EnvSettings, and so shares its refusals."""

from __future__ import annotations

import importlib

import pytest
from pydantic_settings import BaseSettings

from env_settings import EnvSettings, InvalidSettings, variable_of

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

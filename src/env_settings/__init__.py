"""Settings read from environment variables, whose errors name the variables.

pydantic names the field (`db_pool_size`), and the services' workers each printed a traceback of
it; an operator set `API_DB_POOL_SIZE`. Every settings class of the platform derives from
`EnvSettings`: an invalid value fails at once with one line per variable, never echoing the value
(a URL or a token may be secret). Shared by the services and the pipelines; it loads neither.

A variable with a class's prefix that nothing reads, but close to a name that is read (SYNC_CHUNK_SZE,
RELAY_BASEA_URL), was ignored silently and its setting kept its default: it is logged once per process
(`unread_variable_warnings`), a warning and not a refusal, as a stray variable must not stop a service.
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from typing import ClassVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class InvalidSettings(ValueError):
    """Some environment variables hold values the settings cannot take; the message names each."""


# Upper bounds of the settings: every numeric field has one (tests/layout/test_settings_classes.py). A
# value past what its consumer takes was accepted and failed far from its variable: API_DB_LOCK_TIMEOUT=1e20
# in every request (PostgreSQL's lock_timeout is an int32 of milliseconds), SYNC_TASK_TIMEOUT_HOURS=1e300
# when the DAG was parsed (timedelta). The bounds are generous, far above any sane value, and within what
# the consumers take: a day in milliseconds (86,400,000) fits PostgreSQL's int32, a week of hours a
# timedelta and Airflow's execution_timeout, a day of seconds a socket timeout and MySQL's wait_timeout.
HOUR = 3_600  # seconds
DAY = 24 * HOUR  # seconds: a timeout, a wait
WEEK = 7 * DAY  # seconds
WEEK_HOURS = 7 * 24  # hours: a task's timeout, a wait for an operator
YEAR_HOURS = 366 * 24  # hours: a retention, how often a full comparison runs
YEAR = 366 * DAY  # seconds
GIB = 2**30  # bytes: a request body, a batch held in memory

log = logging.getLogger("env_settings")

# How close (difflib's ratio of the parts after the prefix) a variable nothing reads must be to one that is
# read to be called a misspelling of it: SYNC_CHUNK_SZE (0.95), RELAY_BASEA_URL (0.95), API_DB_POOLSIZE
# (0.96) are; a host's own API_KEY (0.44), API_VERSION (0.70), API_HOST (0.40), API_URL (0.40), API_BASE_URL
# (0.80) and API_TIMEOUT (0.64) are not (tests/sync/test_settings.py).
CLOSE_ENOUGH = 0.85

_warned: set[str] = set()  # the variables this process has warned of: each once
_warned_lock = threading.Lock()


class EnvSettings(BaseSettings):
    # pydantic takes "inf" (and "nan") for a float: a timeout of inf failed far from its variable, as an
    # OverflowError in a request or a task. A subclass's model_config is merged with this one.
    model_config = SettingsConfigDict(allow_inf_nan=False)

    # The variables with this class's prefix the platform reads outside the class (gunicorn's settings, the
    # scripts, docker-compose.yaml): not misspellings. tests/layout/test_settings_classes.py finds every name
    # the repository reads with the prefix, and fails on one that is neither a field's nor listed here.
    read_elsewhere: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **values):
        for warning in unread_variable_warnings(type(self), os.environ):
            log.warning("%s", warning)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise InvalidSettings(describe(exc, type(self))) from None


def variable_of(settings: type[BaseSettings], name: str) -> str:
    """The environment variable a field (or an alias) is read from."""
    field = settings.model_fields.get(name)
    if field is None:  # pydantic reports an aliased field by its alias
        return name.upper()
    if isinstance(field.validation_alias, str):
        return field.validation_alias
    return f"{settings.model_config.get('env_prefix', '')}{name}".upper()


def variables_read(settings: type[EnvSettings]) -> set[str]:
    """Every environment variable read for a settings class: its fields' (an aliased field's alias, and
    its prefixed name too where pydantic-settings takes the name, populate_by_name) and `read_elsewhere`."""
    prefix = settings.model_config.get("env_prefix", "")
    by_name = settings.model_config.get("validate_by_name", settings.model_config.get("populate_by_name", False))
    names = set(settings.read_elsewhere)
    for name in settings.model_fields:
        names.add(variable_of(settings, name))
        if by_name:
            names.add(f"{prefix}{name}".upper())
    return {name.upper() for name in names}


def unread_variable_warnings(settings: type[EnvSettings], environ: Mapping[str, str]) -> list[str]:
    """A line for each variable of `environ` with the class's prefix that is not read, is close to one
    that is, and was not warned of yet in this process. Names only: a value may be secret."""
    prefix = settings.model_config.get("env_prefix", "").upper()
    if not prefix:
        return []
    read = variables_read(settings)
    # Compared without the prefix, which every candidate shares: it would make any two names look alike.
    # An alias (REST_API_URL) is named rather than its field's prefixed name (GRAPHQL_REST_API_URL).
    candidates: dict[str, str] = {}
    for name in sorted(read, key=lambda name: (name.startswith(prefix), name)):
        candidates.setdefault(name.removeprefix(prefix), name)
    warnings = []
    for variable in _unread(environ, prefix, read):
        close = difflib.get_close_matches(variable.upper().removeprefix(prefix), candidates, n=1, cutoff=CLOSE_ENOUGH)
        if not close:
            continue
        with _warned_lock:
            if variable in _warned:
                continue
            _warned.add(variable)
        warnings.append(f"{variable} is not a setting and is ignored: did you mean {candidates[close[0]]}?")
    return warnings


def _unread(environ: Iterable[str], prefix: str, read: set[str]) -> list[str]:
    # pydantic-settings reads names case-insensitively: sync_chunk_size is SYNC_CHUNK_SIZE.
    return sorted(name for name in environ if name.upper().startswith(prefix) and name.upper() not in read)


def describe(error: ValidationError, settings: type[BaseSettings]) -> str:
    lines = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        where = variable_of(settings, str(item["loc"][0])) if item["loc"] else settings.__name__
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "invalid settings: " + "; ".join(lines)

"""Settings read from environment variables, whose errors name the variables.

pydantic names the field (`db_pool_size`), and the services' workers each printed a traceback of
it; an operator set `API_DB_POOL_SIZE`. Every settings class of the platform derives from
`EnvSettings`: an invalid value fails at once with one line per variable, never echoing the value
(a URL or a token may be secret). Shared by the services and the pipelines; it loads neither.
"""

from __future__ import annotations

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


class EnvSettings(BaseSettings):
    # pydantic takes "inf" (and "nan") for a float: a timeout of inf failed far from its variable, as an
    # OverflowError in a request or a task. A subclass's model_config is merged with this one.
    model_config = SettingsConfigDict(allow_inf_nan=False)

    def __init__(self, **values):
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


def describe(error: ValidationError, settings: type[BaseSettings]) -> str:
    lines = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        where = variable_of(settings, str(item["loc"][0])) if item["loc"] else settings.__name__
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "invalid settings: " + "; ".join(lines)
